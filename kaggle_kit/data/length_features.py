"""Length-aware inputs: a short header with each field's full size and markdown structure, computed from the whole
untruncated text, so the model still sees how long and how structured an answer is when truncation cuts it.

The header is a turn of its own, placed first: the encoder's water-filling keeps short turns whole, so truncation
shortens the text and never the header. Plain words and commas, which every tokenizer knows."""

from __future__ import annotations

import re

LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M)
MD_HEADER = re.compile(r"^\s{0,3}#{1,6}\s", re.M)
CODE_FENCE = re.compile(r"^\s*```", re.M)


def text_stats(text: str) -> dict[str, int]:
    """Words, lines, list items, markdown headers and fenced code blocks of the full text."""
    return {
        "words": len(text.split()),
        "lines": text.count("\n") + 1 if text.strip() else 0,
        "list items": len(LIST_ITEM.findall(text)),
        "headers": len(MD_HEADER.findall(text)),
        "code blocks": len(CODE_FENCE.findall(text)) // 2,
    }


def length_header(text: str) -> str:
    """'words 231, lines 14, list items 6, headers 2, code blocks 1' for a field's full text."""
    return ", ".join(f"{k} {v}" for k, v in text_stats(text).items())


def with_header(turns: list[str]) -> list[str]:
    """A field's turns, preceded by the header of all of them together."""
    return [length_header("\n\n".join(turns)), *turns]
