"""Generate competition-shaped sample data with a learnable preference signal (the embedded default for
quickstart/tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import atomic_path, refuse_overwrite
from kaggle_kit.competition.spec import LMSYS, CompetitionSpec

TOPICS = (
    "photosynthesis", "black holes", "the french revolution", "binary search", "compound interest", "climate change",
    "neural networks", "the roman empire", "quantum computing", "sourdough bread", "marathon training", "jazz music",
    "supply and demand", "plate tectonics", "the immune system", "recursion", "electric cars", "the stock market",
    "volcanoes", "machine translation", "chess openings", "the water cycle", "vaccines", "renewable energy",
    "linked lists", "ancient egypt", "meditation", "inflation", "coral reefs", "sql joins",
)
VERBS = ("sort", "parse", "reverse", "merge", "cache", "validate", "download", "plot", "encrypt", "compress")
NOUNS = ("a list", "a json file", "a string", "two dictionaries", "a csv file", "an image", "a web page", "a matrix")
FILLER = (
    "the", "a", "of", "and", "to", "in", "is", "that", "it", "for", "on", "with", "as", "this", "by", "are", "be",
    "can", "which", "also", "more", "most", "many", "some", "each", "other", "when", "how", "what", "because",
    "process", "system", "energy", "people", "time", "data", "value", "result", "change", "level", "part", "form",
    "important", "different", "large", "small", "common", "simple", "often", "usually", "called", "known", "used",
    "makes", "allows", "helps", "means", "leads", "between", "through", "during", "without", "within", "across",
)
# Style words mixed into every sentence: a preference signal spread over the whole response, as real style is.
GOOD_WORDS = ("clearly", "specifically", "example", "step", "because", "therefore", "detailed", "precisely", "evidence",
              "structured", "consider", "explained", "accurate", "summary", "key", "insight")
BAD_WORDS = ("sorry", "unsure", "maybe", "cannot", "unclear", "perhaps", "apologize", "unable", "guess", "whatever",
             "dunno", "vague", "probably", "somehow", "stuff", "things")
GOOD_OPENERS = ("Certainly! Here is a detailed answer.", "Great question. Let me explain step by step.",
                "Sure, here is a clear overview with an example.", "Absolutely. Below is a structured explanation.")
GOOD_LINKS = ("First,", "Second,", "For example,", "In addition,", "Step 3:", "To summarize,", "Note that",
              "In practice,")
REFUSALS = ("I'm sorry, but I cannot help with that request.",
            "Sorry, I am unable to answer this. I cannot provide that.",
            "I apologize, but I can't assist with this. Sorry.", "Unfortunately I cannot do that. I'm sorry.")
MODELS = ("gpt-4-1106-preview", "claude-2.1", "llama-2-70b-chat", "mixtral-8x7b-instruct-v0.1", "gemini-pro",
          "vicuna-13b", "gpt-3.5-turbo-0613", "mistral-medium", "claude-instant-1", "qwen-14b-chat")

# P(class) given the two response styles: the learnable signal. Two poor answers -> mostly "tie (both bad)", as in the
# arena; two good ones -> either may win; otherwise the good one wins.
BOTH_GOOD = (0.40, 0.40, 0.20)
BOTH_BAD = (0.10, 0.10, 0.80)
A_BETTER = (0.90, 0.03, 0.07)


@dataclass
class SampleFiles:
    train: Path
    test: Path
    sample_submission: Path


def _sentence(rng: np.random.Generator, topic: str, n_words: int, style: tuple[str, ...] = ()) -> str:
    words = rng.choice(FILLER, size=max(3, n_words)).tolist()
    for k in range(len(words)):
        if style and rng.random() < 0.4:
            words[k] = style[int(rng.integers(len(style)))]
    words.insert(int(rng.integers(0, len(words))), topic)
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: np.random.Generator, topic: str, n_words: int, style: tuple[str, ...] = ()) -> str:
    parts, written = [], 0
    while written < n_words:
        k = int(rng.integers(6, 18))
        link = GOOD_LINKS[int(rng.integers(len(GOOD_LINKS)))] + " " if rng.random() < 0.3 else ""
        parts.append(link + _sentence(rng, topic, k, style))
        written += k
    return " ".join(parts)


def _prompt(rng: np.random.Generator, topic: str) -> str:
    kind = rng.random()
    if kind < 0.35:
        return f"Explain {topic} in simple terms."
    if kind < 0.55:
        return f"Write a short poem about {topic}."
    if kind < 0.75:
        other = TOPICS[int(rng.integers(len(TOPICS)))]
        return f"What is the difference between {topic} and {other}?"
    if kind < 0.9:
        return f"How do I {rng.choice(VERBS)} {rng.choice(NOUNS)} in Python?"
    return _paragraphs(rng, topic, int(rng.lognormal(4.0, 1.0)))  # a pasted document: the long tail


def _response(rng: np.random.Generator, topic: str, good: bool) -> str:
    if not good:
        refusal = REFUSALS[int(rng.integers(len(REFUSALS)))]
        return (refusal + " " + _paragraphs(rng, topic, int(rng.lognormal(3.4, 0.8)), BAD_WORDS)
                if rng.random() < 0.7 else refusal)
    opener = GOOD_OPENERS[int(rng.integers(len(GOOD_OPENERS)))]
    return opener + " " + _paragraphs(rng, topic, int(rng.lognormal(4.6, 0.9)), GOOD_WORDS)


def _cell(turns: list[str | None], rng: np.random.Generator, odd_rate: float) -> str:
    """JSON-encode like Kaggle's files, sometimes with the oddities real cells have."""
    text = json.dumps(turns)
    if rng.random() < odd_rate and turns and turns[-1]:
        text = text[:-2] + '\\ud83d"]'  # a lone UTF-16 surrogate escape at the end of the last turn
    return text


def generate_rows(n: int, seed: int, with_labels: bool, id_start: int, odd_rate: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        n_turns = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.05)
        good_a, good_b = rng.random() < 0.5, rng.random() < 0.5
        prompts, resp_a, resp_b = [], [], []
        for _ in range(n_turns):
            topic = TOPICS[int(rng.integers(len(TOPICS)))]
            prompts.append(_prompt(rng, topic))
            resp_a.append(_response(rng, topic, good_a))
            resp_b.append(_response(rng, topic, good_b))
        if rng.random() < odd_rate:
            (resp_a if rng.random() < 0.5 else resp_b)[-1] = None  # a null turn, as in the real data
        if good_a == good_b:
            probs = BOTH_GOOD if good_a else BOTH_BAD
        else:
            probs = A_BETTER if good_a else (A_BETTER[1], A_BETTER[0], A_BETTER[2])
        label = int(rng.choice(3, p=probs))
        model_a, model_b = rng.choice(MODELS, size=2, replace=False)
        row = {"id": str(id_start + i * 7 + int(rng.integers(7))), "model_a": model_a, "model_b": model_b,
               "prompt": _cell(prompts, rng, odd_rate), "response_a": _cell(resp_a, rng, odd_rate),
               "response_b": _cell(resp_b, rng, odd_rate)}
        if with_labels:
            row.update({"winner_model_a": int(label == 0), "winner_model_b": int(label == 1),
                        "winner_tie": int(label == 2)})
        rows.append(row)
    return pd.DataFrame(rows)


def write_sample_data(
    directory: Path, rows: int = 1000, test_rows: int | None = None, seed: int = 0,
    spec: CompetitionSpec = LMSYS, overwrite: bool = False,
) -> SampleFiles:
    """Write train.csv, test.csv and sample_submission.csv in exactly the competition's format."""
    files = SampleFiles(directory / "train.csv", directory / "test.csv", directory / "sample_submission.csv")
    for path in (files.train, files.test, files.sample_submission):
        refuse_overwrite(path, overwrite)
    test_rows = test_rows if test_rows is not None else max(3, rows // 4)
    train = generate_rows(rows, seed, with_labels=True, id_start=30_192)[spec.train_columns]
    test = generate_rows(test_rows, seed + 1_000_003, with_labels=False, id_start=136_060)[spec.test_columns]
    sample = pd.DataFrame({spec.id_column: test[spec.id_column]})
    for column in spec.label_columns:
        sample[column] = 1 / spec.num_labels
    for frame, path in ((train, files.train), (test, files.test), (sample, files.sample_submission)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
    return files


def corpus_lines(n: int = 4000, seed: int = 123) -> list[str]:
    """Plain text for training a tiny tokenizer: the same generator, so sample data tokenises sensibly."""
    rng = np.random.default_rng(seed)
    lines = (list(REFUSALS) + list(GOOD_OPENERS) + list(GOOD_LINKS) + list(MODELS)
             + [" ".join(GOOD_WORDS + BAD_WORDS)] * 20)
    for _ in range(n):
        topic = TOPICS[int(rng.integers(len(TOPICS)))]
        lines.append(_prompt(rng, topic) if rng.random() < 0.3 else _response(rng, topic, rng.random() < 0.7))
    return lines
