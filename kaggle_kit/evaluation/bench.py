"""Benchmarks, not tests: the notebook's inference path against ours (padded, and packed on a decoder), and padding
with/without length grouping."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS
from kaggle_kit.data.encode import Encoder, EncodingSpec
from kaggle_kit.data.reading import Pairs, read_train
from kaggle_kit.model.batching import Batching, BatchStats, batching_for, predict_logits, token_budget_batches
from kaggle_kit.model.packing import PACK_TOKENS


class PeakRSS:
    """Peak resident memory above the starting point, sampled every 10 ms while the block runs."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


@dataclass
class PathResult:
    rows_per_s: float
    padding_fraction: float
    peak_rss_mib: float
    seconds: float
    tokens_per_s: float  # padded tokens per second, tokenising included (what `plan infer` projects from)


@dataclass
class PredictBench:
    rows: int
    max_len: int
    model: str
    notebook: PathResult
    ours: PathResult  # padded token-budget batches
    max_abs_diff: float
    length_quantiles: list[int]  # row lengths (at max_len) at 0, 5, ..., 100 %
    packed: PathResult | None = None  # packed batches (decoders only)
    max_abs_diff_packed: float | None = None  # packed vs the notebook
    pack_tokens: int | None = None

    @property
    def speedup(self) -> float:
        return self.ours.rows_per_s / self.notebook.rows_per_s

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup}

    def table(self) -> str:
        rows = [("path", "rows/s", "padding", "peak RSS MiB"),
                ("notebook (map + unsorted 16 + Trainer.predict)", f"{self.notebook.rows_per_s:.2f}",
                 f"{self.notebook.padding_fraction:.1%}", f"{self.notebook.peak_rss_mib:.0f}"),
                ("kaggle-kit padded (sorted token budget)", f"{self.ours.rows_per_s:.2f}",
                 f"{self.ours.padding_fraction:.1%}", f"{self.ours.peak_rss_mib:.0f}")]
        if self.packed is not None:
            rows.append((f"kaggle-kit packed ({self.pack_tokens}-token packs)", f"{self.packed.rows_per_s:.2f}",
                         f"{self.packed.padding_fraction:.1%}", f"{self.packed.peak_rss_mib:.0f}"))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, width)) + " |" for r in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in width) + "|")
        packed = "" if self.packed is None else (f"; packed x{self.packed.rows_per_s / self.notebook.rows_per_s:.2f}, "
                                                 f"max |prob diff| {self.max_abs_diff_packed:.2e}")
        return "\n".join([f"{self.rows} rows, max_len {self.max_len}, {self.model}", *lines,
                          f"padded speed-up x{self.speedup:.2f}; max |prob diff| {self.max_abs_diff:.2e}{packed}"])


def _padding(lengths: list[int], batches: list[list[int]]) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def _rows(pairs: Pairs):
    from datasets import Dataset

    return Dataset.from_dict({"id": pairs.ids, **{k: [list(t) for t in v] for k, v in pairs.texts.items()}})


def bench_predict(rows: int = 200, max_len: int = 1024, hidden: int = 256, layers: int = 4, max_tokens: int = 8192,
                  seed: int = 0, arch: str = "deberta-v3", pack_tokens: int = PACK_TOKENS) -> PredictBench:
    """The notebook path, ours padded and (a decoder `arch`) ours packed on the same sample rows and random backbone;
    scratch files are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kk-bench-") as scratch:
        return _bench_predict(Path(scratch), rows, max_len, hidden, layers, max_tokens, seed, arch, pack_tokens)


def _bench_predict(work: Path, rows: int, max_len: int, hidden: int, layers: int, max_tokens: int,
                   seed: int, arch: str, pack_tokens: int) -> PredictBench:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from kaggle_kit.metrics import softmax
    from kaggle_kit.model.backbone import choose_precision, load_backbone_model, load_tokenizer
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    files = write_sample_data(work / "data", rows=rows, test_rows=3, seed=seed)
    pairs = read_train(files.train, LMSYS)
    backbone = build_tiny_backbone(work / "backbone", arch=arch, hidden_size=hidden, layers=layers,
                                   heads=max(1, hidden // 64), max_positions=max(512, max_len))
    model, tokenizer = load_backbone_model(backbone, choose_precision("auto"), training=False)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()  # every path on the same device and dtype
    template = "decoder" if arch not in ("deberta-v3", "bert") else "encoder"
    spec = EncodingSpec(max_len=max_len, template=template, fields=LMSYS.text_columns)

    # (a) the notebook: per-row tokenisation with dataset.map, unsorted batches of 16, Trainer.predict
    with PeakRSS() as mem_a:
        t0 = time.perf_counter()
        encoder = Encoder(load_tokenizer(backbone), spec)

        def encode_row(row):
            one = Pairs(ids=[row["id"]], texts={k: [row[k]] for k in LMSYS.text_columns})
            return {"input_ids": encoder.encode(one)[0]}

        dataset = _rows(pairs).map(encode_row, remove_columns=["id", *LMSYS.text_columns])
        args = TrainingArguments(output_dir=str(work / "trainer"), per_device_eval_batch_size=16, report_to=[],
                                 use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
        trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))
        logits_a = trainer.predict(dataset).predictions
        seconds_a = time.perf_counter() - t0
    lengths = [len(x) for x in dataset["input_ids"]]
    pad_a = _padding(lengths, [list(range(i, min(i + 16, rows))) for i in range(0, rows, 16)])

    # (b) ours: batched tokenisation, longest-first token-budget batches, inference_mode
    with PeakRSS() as mem_b:
        t0 = time.perf_counter()
        encoded = Encoder(tokenizer, spec).encode(pairs)
        logits_b = predict_logits(model, tokenizer.pad_token_id, encoded, max_tokens, LMSYS.num_labels, progress=False,
                                  batching=Batching(False))
        seconds_b = time.perf_counter() - t0
    # (c) ours packed (decoders): rows back to back in packs of pack_tokens, no padding computed
    packed = diff_c = None
    if batching_for(model, "auto").packed:
        how, stats = replace(batching_for(model, "packed"), capacity=pack_tokens), BatchStats()
        with PeakRSS() as mem_c:
            t0 = time.perf_counter()
            encoded = Encoder(tokenizer, spec).encode(pairs)
            logits_c = predict_logits(model, tokenizer.pad_token_id, encoded, max_tokens, LMSYS.num_labels,
                                      progress=False, batching=how, stats=stats)
            seconds_c = time.perf_counter() - t0
        packed = PathResult(rows / seconds_c, stats.padding_fraction, mem_c.mib, seconds_c, stats.computed / seconds_c)
        diff_c = float(np.abs(softmax(np.asarray(logits_a, dtype=np.float64))
                              - softmax(logits_c.astype(np.float64))).max())
    pad_b = _padding(lengths, token_budget_batches(lengths, max_tokens))

    padded_a = sum(len(b) * max(lengths[i] for i in b) for b in [list(range(i, min(i + 16, rows)))
                                                                   for i in range(0, rows, 16)])
    padded_b = sum(len(b) * max(lengths[i] for i in b) for b in token_budget_batches(lengths, max_tokens))
    diff = float(np.abs(softmax(np.asarray(logits_a, dtype=np.float64)) - softmax(logits_b.astype(np.float64))).max())
    n_params = sum(p.numel() for p in model.parameters())
    return PredictBench(
        rows=rows, max_len=max_len,
        model=f"random {arch}-style, hidden {hidden}, {layers} layers, {n_params / 1e6:.1f} M params",
        notebook=PathResult(rows / seconds_a, pad_a, mem_a.mib, seconds_a, padded_a / seconds_a),
        ours=PathResult(rows / seconds_b, pad_b, mem_b.mib, seconds_b, padded_b / seconds_b), max_abs_diff=diff,
        length_quantiles=[int(q) for q in np.percentile(lengths, list(range(0, 101, 5)))],
        packed=packed, max_abs_diff_packed=diff_c, pack_tokens=pack_tokens if packed is not None else None,
    )


def bench_padding(rows: int = 1000, max_len: int = 1024, batch_size: int = 8, seed: int = 0) -> dict:
    """Padding tokens per training batch: random batches vs HF's LengthGroupedSampler (what --train uses)."""
    with tempfile.TemporaryDirectory(prefix="kk-bench-") as scratch:
        return _bench_padding(Path(scratch), rows, max_len, batch_size, seed)


def _bench_padding(work: Path, rows: int, max_len: int, batch_size: int, seed: int) -> dict:
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from kaggle_kit.model.backbone import load_tokenizer
    from kaggle_kit.model.tiny_backbone import build_tiny_backbone

    files = write_sample_data(work / "data", rows=rows, test_rows=3, seed=seed)
    tokenizer = load_tokenizer(build_tiny_backbone(work / "backbone"))
    encoder = Encoder(tokenizer, EncodingSpec(max_len, "encoder"))
    lengths = [len(x) for x in encoder.encode(read_train(files.train, LMSYS))]
    generator = torch.Generator().manual_seed(seed)
    random_order = torch.randperm(rows, generator=generator).tolist()
    grouped_order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))

    def per_batch(order):
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches) / len(batches)

    random_pad, grouped_pad = per_batch(random_order), per_batch(grouped_order)
    return {"rows": rows, "max_len": max_len, "batch_size": batch_size,
            "padding_tokens_per_batch_random": round(random_pad, 1),
            "padding_tokens_per_batch_grouped": round(grouped_pad, 1),
            "reduction": f"x{random_pad / max(grouped_pad, 1e-9):.1f}"}
