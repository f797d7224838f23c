"""Time-budgeted predict: durations, the scheduler on a deterministic clock, real runs (killed, halfway, kernel)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from conftest import run_cli
from kaggle_kit.cli import main
from kaggle_kit.config import PredictConfig, config_from_dict
from kaggle_kit.config.durations import parse_duration
from kaggle_kit.data.reading import read_test
from kaggle_kit.errors import KitError
from kaggle_kit.inference.budget import Budget, Throughput, Unit, plan, truncation_for
from kaggle_kit.inference.budgeted import WRITE_SHARE, BudgetedPredictor
from kaggle_kit.inference.run import predict_to_submission
from kaggle_kit.model.model_dir import TrainedModel, load_trained
from kaggle_kit.submission import submission_order, validate_file

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("45m", 2700), ("8h30m", 30600), ("1h2m3s", 3723),
                                          ("1.5h", 5400), (3600, 3600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_toml_and_flag_take_the_same_forms(trained, small_files, tmp_path):
    assert config_from_dict({"predict": {"time_budget": "8h30m"}}).predict.time_budget == "8h30m"
    assert config_from_dict({"predict": {"time_budget": 600}}).predict.time_budget == 600
    for bad in ("5q", "0s", "30d", ""):
        with pytest.raises(KitError, match="time_budget must be"):
            config_from_dict({"predict": {"time_budget": bad}})
    result = run("predict", "--test", small_files.test, "--model", trained.out_dir, "--out", tmp_path / "x.csv",
                 "--time-budget", "5q")
    assert result.exit_code == 2 and "must be a duration" in result.output and not (tmp_path / "x.csv").exists()


def test_plan_spends_on_the_best_value_per_second():
    rate = Throughput(prior_s_per_token=0.01)  # 100 tokens a second
    swap = Unit("swap:1", 0, "swap", [[0, 1, 2, 3], [4, 5], [6]], [100, 100, 100])  # shortest rows first
    assert plan([swap], 2.5, rate, loaded=0) == {"swap:1": 2}
    # a second model is worth more per row, but its 5 s load must be paid first
    swap = Unit("swap:1", 0, "swap", [[0], [1], [2]], [100, 100, 100])
    other = Unit("model:2", 1, "model", [[0, 1, 2, 3], [4, 5], [6]], [100, 100, 100], setup_s=5.0)
    assert plan([swap, other], 3.0, rate, loaded=0) == {"swap:1": 3, "model:2": 0}
    assert plan([swap, other], 8.0, rate, loaded=0) == {"swap:1": 0, "model:2": 3}
    assert plan([swap, other], 8.0, rate, loaded=1) == {"swap:1": 3, "model:2": 3}  # loaded already: no setup
    # a swap pass of model 2 only runs on rows its model's pass reached
    swap2 = Unit("swap:2", 1, "swap", other.batches, other.tokens, setup_s=5.0, needs="model:2")
    picks = plan([other, swap2], 7.0, rate, loaded=0)
    assert picks["model:2"] == 2 and picks["swap:2"] == 0
    picks = plan([other, swap2], 100.0, rate, loaded=0)
    assert picks == {"model:2": 3, "swap:2": 3}


def test_truncation_fits_the_time_left():
    rate = Throughput(prior_s_per_token=0.001)
    lengths = [1000, 800, 100, 50]
    assert truncation_for(lengths, 10.0, rate, 1.0, 32) == 1000  # everything fits
    cap = truncation_for(lengths, 1.0, rate, 1.0, 32)
    assert cap is not None and sum(min(n, cap) for n in lengths) <= 1000 < sum(min(n, cap + 1) for n in lengths)
    assert truncation_for(lengths, 0.05, rate, 1.0, 32) is None


class FakeClock:
    """Time moves only when the model runs: seconds_per_token for every (padded) token it sees."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ClockedModel(torch.nn.Module):
    """A real forward pass (the trained tiny model) that also advances the fake clock by its padded tokens."""

    def __init__(self, inner, clock: FakeClock, seconds_per_token: float):
        super().__init__()
        self.inner, self.clock, self.spt = inner, clock, seconds_per_token

    def forward(self, input_ids, attention_mask):
        self.clock.now += input_ids.numel() * self.spt
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def _budgeted(trained_dirs, pairs, spec, seconds, clock, tta="swap", spt=0.001, written=None, weights=None,
              write_s=0.0, max_tokens=2048):
    def loader(model_dir, **kw):
        real = load_trained(model_dir, **kw)
        return TrainedModel(ClockedModel(real.model, clock, spt), real.tokenizer, real.info)

    def write(probs):
        clock.now += write_s  # what writing the file costs (a large test set): the plan must count it
        assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)
        if written is not None:
            written.append(probs.copy())

    budget = Budget(seconds, clock=clock)
    return BudgetedPredictor(trained_dirs, pairs, spec, PredictConfig(max_tokens=max_tokens, tta=tta), weights, None,
                             budget, write, progress=False, loader=loader).run()


def _encoded_tokens(trained, pairs, max_tokens=2048):
    from kaggle_kit.inference.predict import encoder_for
    from kaggle_kit.model.batching import token_budget_batches

    lengths = [len(e) for e in encoder_for(load_trained(trained.out_dir)).encode(pairs)]
    return sum(len(b) * max(lengths[i] for i in b) for b in token_budget_batches(lengths, max_tokens)), lengths


def test_swap_pass_fills_what_is_left(trained, small_files, spec):
    """Deterministic clock: the base pass costs T seconds; a budget of margin + 1.5 T buys part of the swap pass,
    spent on the shortest rows first (most rows per second)."""
    pairs = read_test(small_files.test, spec)
    tokens, lengths = _encoded_tokens(trained, pairs)
    base_s = tokens * 0.001
    written = []
    report = _budgeted([trained.out_dir], pairs, spec, 1.0 + 1.5 * base_s, FakeClock(), written=written)
    assert report["predicted_rows"] == report["rows"] == len(pairs) and report["prior_rows"] == 0
    assert 0 < report["tta_rows"] < report["rows"]
    assert report["projection"]["planned_rows"]["swap:1"] < report["rows"]
    assert report["projection"]["base_s"] == pytest.approx(base_s, rel=0.01)
    assert report["elapsed_s"] <= 1.0 + 1.5 * base_s
    stages = [s["stage"] for s in report["stages"]]
    assert stages[:4] == ["start", "write", "load", "tokenize"] and "base" in stages and "swap" in stages
    assert len(written) >= 3  # the prior at once, after the base pass, at the end
    swap_rows = [i for i in range(len(pairs)) if not np.allclose(written[-1][i], written[1][i])]
    assert len(swap_rows) <= report["tta_rows"]
    assert max(lengths[i] for i in swap_rows) <= np.median(lengths)
    everything = _budgeted([trained.out_dir], pairs, spec, 1e6, FakeClock())
    assert everything["tta_rows"] == everything["rows"] and everything["projection"]["fits_everything"]


def test_base_pass_that_cannot_fit_still_covers_every_row(trained, small_files, spec):
    pairs = read_test(small_files.test, spec)
    tokens, _ = _encoded_tokens(trained, pairs)
    written = []
    report = _budgeted([trained.out_dir], pairs, spec, 1.0 + 0.4 * tokens * 0.001, FakeClock(), written=written)
    assert report["truncated_rows"] > 0 or report["prior_rows"] > 0
    assert report["tta_rows"] == 0 and report["projection"]["fits_everything"] is False
    assert all(p.shape == (len(pairs), 3) for p in written)
    tiny = _budgeted([trained.out_dir], pairs, spec, 1.0, FakeClock(), written=written)
    assert tiny["prior_rows"] == len(pairs) and tiny["predicted_rows"] == 0  # all prior, still a row for each id


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory, small_files, tiny_backbone, spec):
    """A few steps at 64 tokens: enough for tests about scheduling, not about what the model learned."""
    from conftest import quick_config
    from kaggle_kit.training.train import train

    return train([small_files.train], tmp_path_factory.mktemp("quick") / "model",
                 quick_config(tiny_backbone, max_len=64, max_steps=2, eval_steps=2), spec)


def test_costly_writes_are_made_less_often_and_counted_in_the_plan(quick_model, small_files, spec):
    """Each write costs 2 s on the fake clock and the base pass 60 s: refreshes take at most WRITE_SHARE of the time
    between them (the old fixed 5 s interval spent a third of the run writing), and the swap pass is planned with
    the remaining writes counted, so the run still ends inside its budget."""
    pairs = read_test(small_files.test, spec)
    tokens, _ = _encoded_tokens(quick_model, pairs, max_tokens=256)  # 4 rows a batch: the swap pass can be cut
    spt = 60.0 / tokens
    written = []
    budget = 2 + 60 + 45 + 8
    report = _budgeted([quick_model.out_dir], pairs, spec, budget, FakeClock(), spt=spt, written=written, write_s=2.0,
                       max_tokens=256)
    assert report["predicted_rows"] == report["rows"] and 0 < report["tta_rows"] < report["rows"], json.dumps(report)
    assert report["elapsed_s"] <= budget
    refreshes = len(written) - 3  # beyond the prior, the end of the base pass and the final file
    assert refreshes * 2.0 <= WRITE_SHARE * report["elapsed_s"] + 2.0, (len(written), report["elapsed_s"])
    assert report["writes"] == len(written) and report["write_s"] == pytest.approx(2.0 * len(written))


def test_second_model_of_a_blend_on_part_of_the_rows(trained, small_files, spec):
    pairs = read_test(small_files.test, spec)
    tokens, _ = _encoded_tokens(trained, pairs)
    report = _budgeted([trained.out_dir, trained.out_dir], pairs, spec, 1.0 + 1.5 * tokens * 0.001, FakeClock(),
                       tta="none", weights=[1.0, 1.0])
    assert report["model_rows"][0] == len(pairs) and 0 < report["model_rows"][1] < len(pairs)
    assert [s["model"] for s in report["stages"] if s["stage"] == "load"] == [1, 2]


def test_everything_fits_gives_the_unbudgeted_bytes(trained, small_files, spec, tmp_path):
    cfg = PredictConfig(max_tokens=2048, tta="swap")
    plain = predict_to_submission([trained.out_dir], small_files.test, tmp_path / "plain.csv", spec, cfg,
                                  progress=False)
    budgeted = predict_to_submission([trained.out_dir], small_files.test, tmp_path / "budget.csv", spec,
                                     PredictConfig(max_tokens=2048, tta="swap", time_budget="1h"), progress=False)
    assert "tta_rows" not in plain and budgeted["tta_rows"] == budgeted["rows"]
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "budget.csv").read_bytes()


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "kaggle_kit.cli", *map(str, args)], env=env, text=True, **kw)


def test_killed_run_leaves_a_valid_file(trained, sample_files, spec, tmp_path):
    out = tmp_path / "killed.csv"
    proc = _cli("predict", "--test", sample_files.test, "--model", trained.out_dir, "--out", out, "--tta", "swap",
                "--time-budget", "10m", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = ""
    deadline = time.monotonic() + 300
    while "kaggle-kit: base" not in seen and proc.poll() is None and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert "kaggle-kit: base" in seen, seen[-2000:]
    ids = read_test(sample_files.test, spec).ids
    report = validate_file(out, submission_order(spec, ids, sample_files.sample_submission), spec)
    assert report.ok, report.summary()


@pytest.mark.bench
@pytest.mark.skipif(os.environ.get("KAGGLE_KIT_BENCH") != "1",
                    reason="a timing measurement, not a unit test: make bench-budget (KAGGLE_KIT_BENCH=1)")
def test_halfway_budget_end_to_end(trained, sample_files, spec, tmp_path):
    """The issue's acceptance run, measured as whole commands: a full swap run gives T_swap and its swap pass S;
    a no-TTA command takes T_swap - S. With a budget halfway between, the run does part of the swap pass."""
    test = tmp_path / "big" / "test.csv"  # 1,000 rows: the swap pass outweighs start-up noise on a busy machine
    test.parent.mkdir()
    pd.read_csv(sample_files.train)[spec.test_columns].to_csv(test, index=False)

    def timed(out, budget):
        start = time.monotonic()
        proc = _cli("predict", "--test", test, "--model", trained.out_dir, "--out", out, "--tta", "swap",
                    "--time-budget", budget, "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-2000:]
        return time.monotonic() - start, json.loads(stdout)

    full_s, full = timed(tmp_path / "full.csv", "1h")
    swap_s = sum(s["seconds"] for s in full["stages"] if s["stage"] == "swap")
    assert full["tta_rows"] == full["rows"]
    budget = full_s - swap_s / 2
    wall, half = timed(tmp_path / "half.csv", f"{budget:.1f}")
    assert 0 < half["tta_rows"] < half["rows"], (full_s, swap_s, budget, half["stages"])
    assert wall <= 1.1 * budget, (wall, budget, half["stages"])
    assert validate_file(tmp_path / "half.csv", read_test(test, spec).ids, spec).ok


def test_infer_kernel_with_a_tiny_budget_writes_its_run_report(project, trained, small_files, tiny_backbone):
    with open(project / "kaggle-kit.toml", "a") as fh:
        fh.write('[predict]\ntime_budget = "20s"\ntta = "swap"\n')
    assert run("build-kernel", "infer", "--out", "kb/infer").exit_code == 0
    result = run("run-kernel", "kb/infer", "--input", f"lmsys-chatbot-arena={small_files.train.parent}", "--input",
                 f"tiny-deberta-v3={tiny_backbone}", "--input", f"lmsys-train={trained.out_dir}",
                 "--working", "work-infer")
    assert result.exit_code == 0, result.output
    report = json.loads((project / "work-infer" / "kaggle_kit_run.json").read_text())
    assert report["budget_s"] == 20 and report["rows"] == len(pd.read_csv(small_files.test))
    assert {"start", "write"} <= {s["stage"] for s in report["stages"]}
    log = (project / "work-infer" / "kernel.log").read_text()
    assert log.count("kaggle-kit: ") >= len(report["stages"])
    assert run("validate", "work-infer/submission.csv", "--test", small_files.test).exit_code == 0


def test_kernel_default_budget_is_a_share_of_the_limit(spec):
    from kaggle_kit.config.durations import SAFE_SHARE, default_budget

    assert spec.time_limit_s == 9 * 3600 and default_budget(spec.time_limit_s) == SAFE_SHARE * 9 * 3600 < 9 * 3600


MEASURED = {"measured": {"device": "cuda", "replicas": 2, "rows": 1000, "max_len": 1024, "max_tokens": 16384,
                         "tokens_per_s": 20000.0, "pad_factor": 1.05, "load_s": 60.0, "tokenize_s_per_row": 0.002,
                         "startup_s": 30.0, "length_quantiles": [2100 + 100 * k for k in range(21)]}}


def test_plan_infer_flags_what_does_not_fit(tmp_path):
    source = tmp_path / "kaggle_kit_run.json"
    source.write_text(json.dumps(MEASURED))
    result = run("plan", "infer", "--from", source, "--max-len", 1024, "--max-len", 2048, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"] == 25_000 and data["limit_s"] == 9 * 3600 and len(data["options"]) == 2 * 2 * 2
    by = {(o["tta"], o["max_len"], o["models"]): o for o in data["options"]}
    # 25,000 rows x mean min(len, 1024) 1,024 x 1.05 / 20,000 tokens/s = 1,344 s of forward passes
    one = by[("none", 1024, 1)]
    assert one["seconds"] == pytest.approx(30 + 60 + 25_000 * 0.002 + 25_000 * 1024 * 1.05 / 20_000, rel=1e-3)
    assert one["status"] == "fits" and by[("swap", 2048, 2)]["extrapolated"]
    slow = dict(MEASURED, measured={**MEASURED["measured"], "tokens_per_s": 2000.0})
    source.write_text(json.dumps(slow))
    data = json.loads(run("plan", "infer", "--from", source, "--json").output)
    status = {(o["tta"], o["models"]): o["status"] for o in data["options"]}
    assert status[("none", 1)] == "fits" and status[("swap", 1)] == "cut" and status[("swap", 2)] == "over"
    text = run("plan", "infer", "--from", source).output
    assert "OVER the limit" in text and "CUT" in text


def test_plan_infer_for_t4x2_and_l4(tmp_path):
    source = tmp_path / "kaggle_kit_run.json"
    source.write_text(json.dumps(MEASURED))  # measured with 2 replicas at 20,000 tokens/s
    forward = 25_000 * 1024 * 1.05
    fixed = 30 + 60 + 25_000 * 0.002
    for gpus, tokens_per_s in (("t4x2", 20_000), ("l4", 10_000)):
        data = json.loads(run("plan", "infer", "--from", source, "--gpus", gpus, "--json").output)
        one = {(o["tta"], o["models"]): o for o in data["options"]}[("none", 1)]
        assert one["seconds"] == pytest.approx(fixed + forward / tokens_per_s, rel=1e-3)
    assert "on l4 (per-GPU speed of cuda x2) x1" in run("plan", "infer", "--from", source, "--gpus", "l4").output
    assert run("plan", "infer", "--from", source, "--gpus", "p100").exit_code == 2
    assert run("plan", "train", "--recipe", "deberta-v3-base", "--gpus", "p100").exit_code == 2


def test_plan_infer_bad_input_is_one_line(tmp_path):
    (tmp_path / "x.json").write_text('{"rows": 3}')
    result = run("plan", "infer", "--from", tmp_path / "x.json")
    assert result.exit_code == 1 and "no measured throughput" in result.output and "Traceback" not in result.output
    result = run("plan", "infer", "--from", tmp_path / "missing.json")
    assert result.exit_code == 1 and "not found" in result.output
    (tmp_path / "y.json").write_text(json.dumps(MEASURED))
    result = run("plan", "infer", "--from", tmp_path / "y.json", "--limit", "9 hours")
    assert result.exit_code == 2 and "must be a duration" in result.output


class ScheduledModel(torch.nn.Module):
    """Like ClockedModel, with a warm-up cost on the first call and a rate per call from `spt_of(call)`."""

    def __init__(self, inner, clock: FakeClock, spt_of, warmup_s: float = 0.0):
        super().__init__()
        self.inner, self.clock, self.spt_of, self.warmup_s, self.calls = inner, clock, spt_of, warmup_s, 0

    def forward(self, input_ids, attention_mask):
        self.clock.now += input_ids.numel() * self.spt_of(self.calls) + (self.warmup_s if self.calls == 0 else 0.0)
        self.calls += 1
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def _scheduled(trained, pairs, spec, seconds, spt_of, warmup_s=0.0, max_tokens=256):
    clock = FakeClock()

    def loader(model_dir, **kw):
        real = load_trained(model_dir, **kw)
        return TrainedModel(ScheduledModel(real.model, clock, spt_of, warmup_s), real.tokenizer, real.info)

    cfg = PredictConfig(max_tokens=max_tokens, tta="none")
    return BudgetedPredictor([trained.out_dir], pairs, spec, cfg, None, None, Budget(seconds, clock=clock),
                             lambda probs: None, progress=False, loader=loader).run()


def _base_seconds(trained, pairs, max_tokens, spt):
    from kaggle_kit.inference.predict import encoder_for
    from kaggle_kit.model.batching import token_budget_batches

    lengths = [len(e) for e in encoder_for(load_trained(trained.out_dir)).encode(pairs)]
    return spt * sum(len(b) * max(lengths[i] for i in b) for b in token_budget_batches(lengths, max_tokens))


@pytest.fixture(scope="module")
def quick_trained(tmp_path_factory, small_files, tiny_backbone, spec):
    """A few steps are enough here: the scheduler's decisions, not the model's quality, are tested."""
    from conftest import quick_config
    from kaggle_kit.training.train import train

    return train([small_files.train], tmp_path_factory.mktemp("quick") / "model", quick_config(tiny_backbone,
                 max_steps=2, eval_steps=2, max_len=256), spec)


def test_warm_up_is_not_taken_for_the_throughput(quick_trained, small_files, spec):
    trained = quick_trained
    pairs = read_test(small_files.test, spec)
    base_s = _base_seconds(trained, pairs, 256, 0.001)
    # the first step also pays a warm-up as long as the whole pass: counted, it projects twice the time left
    report = _scheduled(trained, pairs, spec, 2.0 + 2.3 * base_s, lambda call: 0.001, warmup_s=base_s)
    assert report["truncated_rows"] == 0 and report["prior_rows"] == 0 and report["cap_changes"] == []
    assert report["measured"]["tokens_per_s"] == pytest.approx(1000, rel=0.01)


def test_token_cap_waits_for_agreement_and_rises_again(quick_trained, small_files, spec):
    trained = quick_trained
    pairs = read_test(small_files.test, spec)
    base_s = _base_seconds(trained, pairs, 256, 0.001)
    # slow for the first steps (the cap comes down), then 20x faster: the time left allows full length again
    report = _scheduled(trained, pairs, spec, 2.0 + 2.0 * base_s, lambda call: 0.004 if call < 6 else 0.0002)
    caps = report["cap_changes"]
    assert len(caps) >= 2 and caps[0]["cap"] is not None, report["stages"]
    assert caps[0]["at_row"] >= 4  # one row a step: the warm-up step, then three steady steps agreeing
    assert caps[-1]["cap"] is None or caps[-1]["cap"] > caps[0]["cap"]  # raised again
    assert report["prior_rows"] == 0


def test_few_steps_left_cut_without_waiting_for_agreement(quick_trained, small_files, spec):
    pairs = read_test(small_files.test, spec)
    base_s = _base_seconds(quick_trained, pairs, 2048, 0.001)
    report = _scheduled(quick_trained, pairs, spec, 2.0 + 0.6 * base_s, lambda call: 0.001, max_tokens=2048)
    caps = report["cap_changes"]  # 3 steps of 8 rows: the warm-up, one steady step, then the last one cut at once
    assert len(caps) == 1 and caps[0]["at_row"] == 16 and report["truncated_rows"] > 0, report["stages"]


def test_twenty_thousand_rows_in_a_budget_of_seconds(quick_model, small_files, spec, tmp_path):
    """Issue 24: at 20,000 rows every write of the submission validated in quadratic time; the writes ate a 3 minute
    budget and no row was predicted. Rows (the small test's, repeated under new ids) are tokenised, predicted and
    written inside a 60 s budget: the run report must show predicted rows and a valid file."""
    small = pd.read_csv(small_files.test, dtype=str, keep_default_na=False)
    big = pd.concat([small] * (20_000 // len(small) + 1), ignore_index=True).iloc[:20_000]
    big["id"] = [str(10_000_000 + k) for k in range(len(big))]
    (tmp_path / "big").mkdir()
    test = tmp_path / "big" / "test.csv"
    big.to_csv(test, index=False)
    out = tmp_path / "submission.csv"
    report = predict_to_submission([quick_model.out_dir], test, out, spec, PredictConfig(tta="swap"),
                                   budget=Budget(60.0), progress=False)
    assert report["rows"] == 20_000 and report["predicted_rows"] > 0, report
    assert report["writes"] >= 2 and {"base", "write"} <= {s["stage"] for s in report["stages"]}
    assert validate_file(out, big["id"].tolist(), spec).ok


def test_plan_infer_refuses_a_budget_above_the_limit(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps(MEASURED))
    result = run_cli("plan", "infer", "--from", tmp_path / "m.json", "--limit", "90s", "--budget", "2h")
    assert result.exit_code == 2 and "above the runtime limit" in result.output and "fits" not in result.output
