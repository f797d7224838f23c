"""Generate competition-shaped sample data with a learnable preference signal (the embedded default for
quickstart/tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kaggle_kit.atomic import atomic_path, refuse_overwrite
from kaggle_kit.competition.spec import FILE_KEYS, LMSYS, CompetitionSpec, plain_name_problem
from kaggle_kit.errors import KitError

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


def generate_rows(n: int, seed: int, with_labels: bool, id_start: int, odd_rate: float = 0.02,
                  num_labels: int = 3, cells: str = "json_list") -> pd.DataFrame:
    """LMSYS-shaped rows (a `label` column: 0 A wins, 1 B wins, 2 tie); 2 classes draw no ties; text cells hold
    one plain-text turn (None now and then, as missing cells are)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        n_turns = 1 + int(rng.random() < 0.15) + int(rng.random() < 0.05)
        n_turns = 1 if cells == "text" else n_turns
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
        two = np.divide(probs[:2], sum(probs[:2]))  # no ties: A or B, in the same proportion
        label = int(rng.choice(3, p=probs)) if num_labels == 3 else int(rng.choice(2, p=two))
        model_a, model_b = rng.choice(MODELS, size=2, replace=False)
        cell = (lambda turns: turns[0]) if cells == "text" else (lambda turns: _cell(turns, rng, odd_rate))  # noqa: E731
        row = {"id": str(id_start + i * 7 + int(rng.integers(7))), "model_a": model_a, "model_b": model_b,
               "prompt": cell(prompts), "response_a": cell(resp_a), "response_b": cell(resp_b), "label": label}
        if with_labels:
            row.update({"winner_model_a": int(label == 0), "winner_model_b": int(label == 1),
                        "winner_tie": int(label == 2)})
        rows.append(row)
    return pd.DataFrame(rows)


def _shaped(rows: pd.DataFrame, spec: CompetitionSpec, train: bool, rng: np.random.Generator) -> pd.DataFrame:
    """The generator's LMSYS-named columns under the spec's names, ids and labels in its types."""
    prompt, (a, b) = spec.text_columns[0], spec.swap_pairs[0]
    ids = spec.train_ids if train else spec.test_ids
    out = pd.DataFrame({spec.id_column: rows["id"] if ids == "int" else
                        [f"{int(x):016x}{rng.integers(16**8):08x}" for x in rows["id"]]})
    for column in spec.train_extra_columns if train else spec.test_extra_columns:
        out[column] = EXTRA_VALUES.get(column, lambda r, n: [""] * n)(rng, len(rows))
    extra_texts = [c for c in spec.text_columns if c not in (prompt, a, b)]
    for column, source in ((prompt, "prompt"), (a, "response_a"), (b, "response_b")):
        out[column] = rows[source]
    for column in extra_texts:
        out[column] = rows["prompt"]
    for x, y in spec.swap_pairs[1:]:  # the model-name pair, when the spec swaps one: two distinct models
        if x in out and y in out:
            out[x], out[y] = rows["model_a"], rows["model_b"]
    if train:
        labels = rows["label"].to_numpy()
        if spec.labels == "one_hot":
            for k, column in enumerate(spec.one_hot_columns):
                out[column] = (labels == k).astype(int)
        else:
            out[str(spec.label_column)] = np.asarray(spec.label_values, dtype=object)[labels]
    return out[spec.train_columns if train else [*spec.test_columns, *spec.test_extra_columns]]


LANGUAGES = ("English", "Chinese", "Russian", "Spanish", "German", "French", "Japanese", "Korean", "Portuguese")
EXTRA_VALUES = {  # sample values of the extra columns the shipped specs name; any other gets empty cells
    "model_a": lambda rng, n: rng.choice(MODELS, size=n).tolist(),
    "model_b": lambda rng, n: rng.choice(MODELS, size=n).tolist(),
    "language": lambda rng, n: rng.choice(LANGUAGES, size=n).tolist(),
    "scored": lambda rng, n: [True] * n,
}


def write_sample_data(
    directory: Path, rows: int = 1000, test_rows: int | None = None, seed: int = 0,
    spec: CompetitionSpec = LMSYS, overwrite: bool = False,
) -> SampleFiles:
    """Write the spec's train, test (CSV or parquet) and sample_submission.csv in exactly the competition's format."""
    for key in FILE_KEYS[:3]:  # joined to `directory`: a name with a folder part could write outside it
        if problem := plain_name_problem(getattr(spec, key)):  # again here: a spec built in code skips the table check
            raise KitError(f"{spec.slug}: {key} '{getattr(spec, key)}' {problem}")
    files = SampleFiles(directory / spec.train_file, directory / spec.test_file,
                        directory / spec.sample_submission_file)
    for path in (files.train, files.test, files.sample_submission):
        refuse_overwrite(path, overwrite)
    test_rows = test_rows if test_rows is not None else max(3, rows // 4)
    rng = np.random.default_rng(seed + 7)
    train = _shaped(generate_rows(rows, seed, True, 30_192, num_labels=spec.num_labels, cells=spec.cells), spec,
                    True, rng)
    test = _shaped(generate_rows(test_rows, seed + 1_000_003, False, 136_060, num_labels=spec.num_labels,
                                 cells=spec.cells), spec, False, rng)
    sample = pd.DataFrame({spec.id_column: test[spec.id_column]})
    if spec.submission == "labels":
        sample[str(spec.label_column)] = spec.label_values[0]
    else:
        for column in spec.label_columns:
            sample[column] = 1 / spec.num_labels
    for frame, path, ids in ((train, files.train, spec.train_ids), (test, files.test, spec.test_ids),
                             (sample, files.sample_submission, spec.test_ids)):
        with atomic_path(path) as tmp:
            if path.suffix == ".parquet":  # typed columns: integer ids stay integers, as in the competition's files
                frame.astype({spec.id_column: "int64"} if ids == "int" else {}).to_parquet(tmp, index=False)
            else:
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
