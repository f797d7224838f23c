"""Turn lists -> token ids within --max-len: per-field and per-turn budgets, head+tail truncation, one template."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from kaggle_kit.data.length_features import with_header
from kaggle_kit.data.reading import Pairs
from kaggle_kit.progress import progress_bar

TRUNCATIONS = ("head-tail", "left", "right")  # keep both ends / the end (left cut) / the start (right cut)
CHAR_CAP_PER_TOKEN = 8  # characters kept from each end of a huge turn before tokenising (a token is >= 1 char)


@dataclass(frozen=True)
class EncodingSpec:
    """How rows become token ids; saved in the model dir so predict encodes exactly as training did."""

    max_len: int
    template: str  # "encoder": [CLS] P [SEP] A [SEP] B [SEP]; "decoder": plain text with role markers
    fields: tuple[str, ...] = ("prompt", "response_a", "response_b")
    truncate: str = "head-tail"  # one of TRUNCATIONS: which tokens of a too-long field are kept
    prompt_budget: int | None = None  # tokens at most for the first field; the others share the rest
    length_header: bool = False  # each field starts with its full length and structure (length_features.py)

    @property
    def turn_separator(self) -> str:
        return "\n\n" if self.template == "decoder" else " | "

    @property
    def markers(self) -> tuple[str, ...]:
        """Text before each field and after the last one (decoder template only)."""
        return ("User prompt:\n", "\n\nResponse A:\n", "\n\nResponse B:\n", "\n\nWhich response is better?")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncodingSpec:
        """Keys missing from older model dirs keep their defaults (today's behaviour for those models)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.update(max_len=int(data["max_len"]), fields=tuple(data["fields"]))
        if values.get("prompt_budget") is not None:
            values["prompt_budget"] = int(values["prompt_budget"])
        return cls(**values)

    def turn_texts(self, turns: list[str]) -> list[str]:
        """The texts that get tokenised for one field of one row (with length headers if the spec asks)."""
        return with_header(turns) if self.length_header else turns


def allocate(lengths: list[int], budget: int) -> list[int]:
    """Water-filling: short items keep their full length, the budget they leave goes to the longer ones."""
    allocation = [0] * len(lengths)
    remaining = max(0, budget)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for rank, i in enumerate(order):
        share = remaining // (len(order) - rank)
        allocation[i] = min(lengths[i], share)
        remaining -= allocation[i]
    return allocation


def head_tail(ids: list[int], keep: int) -> list[int]:
    """Keep the start and the end of a long sequence (answers open with a summary and close with a conclusion)."""
    if len(ids) <= keep:
        return list(ids)
    if keep <= 0:
        return []
    head = (keep + 1) // 2
    tail = keep - head
    return list(ids[:head]) + (list(ids[-tail:]) if tail else [])


def cap_chars(text: str, max_len: int) -> str:
    cap = max_len * CHAR_CAP_PER_TOKEN
    return text if len(text) <= 2 * cap else text[:cap] + text[-cap:]


def join_turns(turns: list[list[int]], separator: list[int]) -> list[int]:
    out: list[int] = []
    for i, turn in enumerate(turns):
        if i:
            out.extend(separator)
        out.extend(turn)
    return out


def fit_field(turns: list[list[int]], separator: list[int], budget: int, truncate: str = "head-tail") -> list[int]:
    """One field within `budget`. head-tail: turns share it by water-filling, each cut in the middle; left: the
    field's last `budget` tokens (the end of the conversation); right: its first `budget` tokens."""
    if not turns:
        return []
    if truncate in ("left", "right"):
        ids = join_turns(turns, separator)
        if len(ids) <= budget:
            return ids
        if budget <= 0:
            return []
        return ids[-budget:] if truncate == "left" else ids[:budget]
    sep_cost = len(separator) * (len(turns) - 1)
    if sep_cost >= budget:
        separator, sep_cost = [], 0
    kept = [head_tail(t, k) for t, k in zip(turns, allocate([len(t) for t in turns], budget - sep_cost))]
    return join_turns(kept, separator)


def field_budgets(demands: list[int], budget: int, prompt_budget: int | None = None) -> list[int]:
    """Tokens per field: water-filling (unused budget flows to the others, the longest field is cut first); with a
    prompt budget the first field gets at most that many and the others share the rest."""
    if prompt_budget is None or not demands:
        return allocate(demands, budget)
    first = min(demands[0], prompt_budget, max(0, budget))
    return [first, *allocate(demands[1:], budget - first)]


def field_demand(turns: list[list[int]], separator: list[int]) -> int:
    return sum(len(t) for t in turns) + len(separator) * max(0, len(turns) - 1)


class Encoder:
    """Applies an EncodingSpec with a given tokenizer; batched fast tokenisation of every turn at once."""

    def __init__(self, tokenizer, spec: EncodingSpec):
        self.tokenizer = tokenizer
        self.spec = spec
        ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        self.separator = ids(spec.turn_separator)
        if spec.template == "encoder":
            cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
            self.pieces = [[cls_id], [sep_id], [sep_id], [sep_id]]
        else:
            bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
            self.pieces = [bos + ids(spec.markers[0]), *(ids(m) for m in spec.markers[1:])]
        self.overhead = sum(len(p) for p in self.pieces)
        if self.overhead >= spec.max_len:
            raise ValueError(f"max_len {spec.max_len} leaves no room for text (template needs {self.overhead})")

    def tokenize_turns(self, pairs: Pairs, progress: bool = False,
                       chunk: int = 4096) -> dict[str, list[list[list[int]]]]:
        flat: list[str] = []
        shape: list[tuple[str, int, int]] = []
        for field in self.spec.fields:
            for row, turns in enumerate(pairs.texts[field]):
                texts = self.spec.turn_texts(turns)
                shape.append((field, row, len(texts)))
                flat.extend(cap_chars(t, self.spec.max_len) for t in texts)
        token_ids: list[list[int]] = []
        bar = progress_bar(len(flat), "tokenize", "turn", enabled=progress, leave=False)
        for start in range(0, len(flat), chunk):
            batch = flat[start:start + chunk]
            token_ids.extend(self.tokenizer(batch, add_special_tokens=False)["input_ids"] if batch else [])
            bar.update(len(batch))
        bar.close()
        out: dict[str, list[list[list[int]]]] = {f: [[] for _ in range(len(pairs))] for f in self.spec.fields}
        cursor = 0
        for field, row, n in shape:
            out[field][row] = token_ids[cursor:cursor + n]
            cursor += n
        return out

    def assemble(self, fields: list[list[list[int]]]) -> list[int]:
        """Token budgets per field (unused budget flows to the others), then the template."""
        budget = self.spec.max_len - self.overhead
        budgets = field_budgets([field_demand(f, self.separator) for f in fields], budget, self.spec.prompt_budget)
        ids: list[int] = list(self.pieces[0])
        for i, (turns, field_budget) in enumerate(zip(fields, budgets)):
            ids.extend(fit_field(turns, self.separator, field_budget, self.spec.truncate))
            ids.extend(self.pieces[i + 1])
        return ids

    def encode(self, pairs: Pairs, progress: bool = False) -> list[list[int]]:
        tokens = self.tokenize_turns(pairs, progress=progress)
        return [self.assemble([tokens[f][row] for f in self.spec.fields]) for row in range(len(pairs))]
