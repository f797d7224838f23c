"""Training inside a session limit: [train] time_budget stops at a step boundary with a complete, usable model dir
that a second session resumes."""

import json
import time
from types import SimpleNamespace

import pytest

from conftest import quick_config
from kaggle_kit.config import PredictConfig, TrainConfig
from kaggle_kit.data.reading import read_test
from kaggle_kit.errors import KitError
from kaggle_kit.inference.run import predict_to_submission
from kaggle_kit.model.model_dir import MODEL_FILE, read_model_info
from kaggle_kit.submission import validate_file
from kaggle_kit.training.time_limit import time_budget_callback
from kaggle_kit.training.train import train


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _step(callback, clock, seconds, step, max_steps=1000):
    clock.now += seconds
    state = SimpleNamespace(global_step=step, max_steps=max_steps)
    control = SimpleNamespace(should_training_stop=False, should_evaluate=False, should_save=False)
    callback.on_step_end(None, state, control)
    return control


def test_budget_stops_before_the_next_step_would_overrun():
    clock = Clock()
    cb = time_budget_callback(100.0, started=clock(), clock=clock)
    cb.on_train_begin(None, None, None)
    assert not _step(cb, clock, 20.0, 1).should_training_stop  # the warm-up step is not the rate
    for step in range(2, 40):
        control = _step(cb, clock, 2.0, step)
        if control.should_training_stop:
            break
    # 20 + 2 (s - 1) + 2 x 2 (slack) + 20 (finish) > 100 first at step s = 30: it stops there, evaluating and saving
    assert cb.stopped_at == step == 30 and control.should_evaluate and control.should_save
    slow_eval = time_budget_callback(100.0, started=clock.now, clock=clock)
    start = clock.now
    slow_eval.on_train_begin(None, None, None)
    assert not _step(slow_eval, clock, 0.5, 1).should_training_stop
    clock.now += 10.0
    slow_eval.on_evaluate(None, None, None)  # a 10 s evaluation: three of them are kept free at the end
    for step in range(2, 200):
        if _step(slow_eval, clock, 0.5, step).should_training_stop:
            break
    # 0.5 s steps (the evaluation not counted in them): elapsed + 2 x 0.5 + 3 x 10 + 20 > 100 first at 49.5 s
    assert clock.now - start == pytest.approx(49.5)
    late = time_budget_callback(100.0, started=clock.now, clock=clock)
    clock.now += 40.0  # start-up and data preparation: spent, but no step's time
    late.on_train_begin(None, None, None)
    assert not _step(late, clock, 2.0, 1).should_training_stop  # 42 + 2 x 2 + 20 < 100


def test_time_budget_writes_a_usable_model_dir_and_a_second_session_resumes(tmp_path, small_files, spec,
                                                                            tiny_backbone):
    budget = 30  # the finish keeps at least 20 s, so about 10 s of steps
    # patience at its maximum: only the budget may end the run, however fast the machine is
    cfg = quick_config(tiny_backbone, max_steps=2000, eval_steps=4, time_budget=budget, learning_rate=5e-3,
                       patience=1000)
    start = time.monotonic()
    first = train([small_files.train], tmp_path / "m", cfg, spec, budget_start=start).metrics
    took = time.monotonic() - start
    stop = first["stopped_early"]
    assert stop["reason"] == "time budget" and 0 < stop["step"] < 2000 and stop["max_steps"] == 2000
    assert took < 1.5 * budget, took  # stopped inside the budget (a loose bound: the machine is shared)
    assert any("training stopped at step" in w for w in first["warnings"])
    assert read_model_info(tmp_path / "m")["stopped_early"] is True
    assert first["eval_history"][-1]["step"] == stop["step"]  # the steps since the last evaluation were judged
    sub = tmp_path / "sub.csv"
    predict_to_submission([tmp_path / "m"], small_files.test, sub, spec, PredictConfig(), progress=False)
    assert validate_file(sub, read_test(small_files.test, spec).ids, spec).ok

    with pytest.raises(KitError, match="differ"):
        train([small_files.train], tmp_path / "m", quick_config(tiny_backbone, max_steps=2000, eval_steps=4,
              time_budget=budget, learning_rate=1e-3, patience=1000), spec, resume=True)
    second = train([small_files.train], tmp_path / "m", cfg, spec, resume=True, budget_start=time.monotonic()).metrics
    assert second["stopped_early"]["step"] > stop["step"]
    assert [e["step"] for e in second["eval_history"]][:len(first["eval_history"])] == [
        e["step"] for e in first["eval_history"]]
    assert json.loads((tmp_path / "m" / MODEL_FILE).read_text())["stopped_early"] is True


def test_train_kernels_default_to_a_safe_share_of_the_session():
    from kaggle_kit.config.durations import KAGGLE_SESSION_S, default_train_budget

    assert 0.7 * KAGGLE_SESSION_S < default_train_budget() < KAGGLE_SESSION_S
    assert TrainConfig().time_budget is None  # locally no budget unless asked


def _run(*args):
    from click.testing import CliRunner

    from kaggle_kit.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_kernel_with_the_chains_inputs_stops_in_its_budget_and_resumes(project, small_files, tiny_backbone,
                                                                            tmp_path):
    import pandas as pd

    extra = tmp_path / "extra"  # a dataset with an extra training file and a teacher's OOF probabilities
    extra.mkdir()
    frame = pd.read_csv(small_files.train, dtype=str, keep_default_na=False)
    frame.assign(id=frame["id"].astype(int) + 10_000_000).to_csv(extra / "more.csv", index=False)  # ids of its own
    teacher = frame[["id"]].assign(winner_model_a=0.2, winner_model_b=0.2, winner_tie=0.6)
    teacher.to_csv(extra / "oof.csv", index=False)
    with open(project / "kaggle-kit.toml", "a") as fh:
        fh.write('time_budget = "30s"\ndistill_weight = 0.5\npatience = 1000\n')  # only the budget ends it
    toml = (project / "kaggle-kit.toml").read_text().replace("max_steps = 4", "max_steps = 2000")
    toml = toml.replace("[datasets]\n", '[datasets]\nextra_train = ["tester/lmsys-extra:more.csv"]\n'
                                        'teacher = "tester/lmsys-extra:oof.csv"\n')
    (project / "kaggle-kit.toml").write_text(toml)
    built = _run("build-kernel", "train", "--out", "kb/train", "--json")
    assert built.exit_code == 0, built.output
    assert set(json.loads(built.stdout)["metadata"]["dataset_sources"]) == {"tester/lmsys-extra",
                                                                             "tester/tiny-deberta-v3"}
    inputs = ["--input", f"lmsys-chatbot-arena={small_files.train.parent}", "--input",
              f"tester/tiny-deberta-v3={tiny_backbone}", "--input", f"tester/lmsys-extra={extra}"]
    start = time.monotonic()
    first = _run("run-kernel", "kb/train", *inputs, "--working", "work1")
    took = time.monotonic() - start
    assert first.exit_code == 0, first.output
    metrics = json.loads((project / "work1" / "model" / "metrics.json").read_text())
    assert metrics["stopped_early"]["step"] < 2000 and took < 30 * 1.5 + 60  # + start-up, on a shared machine
    assert len(metrics["rows"]["per_file"]) == 2 and metrics["teacher_rows"] > 0
    assert read_model_info(project / "work1" / "model")["stopped_early"] is True

    resumed_build = _run("build-kernel", "train", "--out", "kb/train2", "--resume-from", "tester/lmsys-train",
                         "--json")
    assert resumed_build.exit_code == 0, resumed_build.output
    assert json.loads(resumed_build.stdout)["metadata"]["kernel_sources"] == ["tester/lmsys-train"]
    second = _run("run-kernel", "kb/train2", *inputs, "--input", f"kernel:tester/lmsys-train={project / 'work1'}",
                  "--working", "work2")
    assert second.exit_code == 0, second.output
    again = json.loads((project / "work2" / "model" / "metrics.json").read_text())
    assert again["eval_history"][-1]["step"] > metrics["eval_history"][-1]["step"]
    assert "resuming the run of tester/lmsys-train" in (project / "work2" / "kernel.log").read_text()

    (project / "kaggle-kit.toml").write_text(toml.replace("distill_weight = 0.5", "distill_weight = 0.3"))
    assert _run("build-kernel", "train", "--out", "kb/train3", "--resume-from", "tester/lmsys-train").exit_code == 0
    changed = _run("run-kernel", "kb/train3", *inputs, "--input", f"kernel:tester/lmsys-train={project / 'work1'}",
                   "--working", "work3")
    assert changed.exit_code != 0 and "differ from the checkpoints'" in changed.output


def test_cv_refuses_one_budget_for_all_its_folds(tmp_path, small_files, tiny_backbone):
    """cv has no --time-budget flag (its help would promise a --resume it lacks); a [train] time_budget is refused."""
    config = tmp_path / "kaggle-kit.toml"
    config.write_text('[train]\ntime_budget = "1h"\n')
    result = _run("--config", config, "cv", "--train", small_files.train, "--folds", 2, "--out", tmp_path / "cv",
                  "--backbone", tiny_backbone)
    assert result.exit_code != 0 and "time_budget applies to one training run" in result.output
    assert "train --fold i/K --time-budget D" in result.output
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert not (tmp_path / "cv").exists()
