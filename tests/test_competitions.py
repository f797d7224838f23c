"""Competitions as data: the shipped specs, a project's [competition] table, and every command following the spec
(WSDM: parquet, plain-text cells, string train ids, integer test ids, two classes, accuracy, `id,winner`)."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import one_line_error, quick_config, run_cli
from kaggle_kit.cli import main
from kaggle_kit.competition.sample_data import write_sample_data
from kaggle_kit.competition.spec import LMSYS, get_spec, project_spec, shipped_specs
from kaggle_kit.config import config_from_dict
from kaggle_kit.data.reading import read_test, read_train
from kaggle_kit.errors import DataError, KitError
from kaggle_kit.submission import expected_ids, validate_file, write_submission

LMSYS_SLUG, LCF, WSDM = "lmsys-chatbot-arena", "llm-classification-finetuning", "wsdm-cup-multilingual-chatbot-arena"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_three_competitions_ship_and_are_listed():
    assert set(shipped_specs()) == {LMSYS_SLUG, LCF, WSDM}
    wsdm = get_spec(WSDM)
    assert (wsdm.train_file, wsdm.test_file, wsdm.format, wsdm.cells) == ("train.parquet", "test.parquet", "parquet",
                                                                          "text")
    assert (wsdm.train_ids, wsdm.test_ids, wsdm.metric, wsdm.submission) == ("str", "int", "accuracy", "labels")
    assert wsdm.submission_columns == ["id", "winner"] and wsdm.label_values == ("model_a", "model_b")
    assert wsdm.label_swap == (1, 0) and wsdm.tie_class is None and wsdm.num_labels == 2
    assert get_spec(LCF).submission_columns == get_spec(LMSYS_SLUG).submission_columns
    assert get_spec(LMSYS_SLUG).label_swap == (1, 0, 2) and get_spec(LMSYS_SLUG).time_limit_s == 9 * 3600
    listed = json.loads(run("competitions", "--json").output)
    assert [c["slug"] for c in listed] == sorted([LMSYS_SLUG, LCF, WSDM])
    assert next(c for c in listed if c["slug"] == WSDM)["submission_columns"] == ["id", "winner"]
    text = run("competitions").output
    assert WSDM in text and "accuracy" in text and "parquet" in text


def test_a_project_describes_another_competition_in_its_toml():
    cfg = config_from_dict({"competition": {"slug": "my-arena", "based_on": WSDM, "metric": "log_loss",
                                            "submission": "probabilities", "test_ids": "str"}}, "kaggle-kit.toml")
    assert cfg.competition == "my-arena" and cfg.spec.slug == "my-arena"
    assert cfg.spec.metric == "log_loss" and cfg.spec.label_columns == ("winner_model_a", "winner_model_b")
    assert cfg.spec.submission_columns == ["id", "winner_model_a", "winner_model_b"]
    again = config_from_dict(cfg.to_dict())  # what a kernel receives
    assert again.spec == cfg.spec
    three = project_spec({"slug": "x-arena", "text_columns": ["question", "answer_1", "answer_2"],
                          "classes": ["first", "second", "same"], "class_swap": {"first": "second"},
                          "labels": "one_hot", "label_columns": ["w1", "w2", "wt"], "metric": "log_loss",
                          "submission": "probabilities"})
    assert three.swap_pairs[0] == ("answer_1", "answer_2") and three.label_swap == (1, 0, 2)


@pytest.mark.parametrize("table, message", [
    ({"slug": "a", "based_on": WSDM, "metric": "auc"}, "metric must be one of log_loss, accuracy, got 'auc'"),
    ({"slug": "a", "based_on": WSDM, "classes": ["x"]}, "classes must be 2 or 3 distinct names"),
    ({"slug": "a", "based_on": WSDM, "time_limit_s": 0}, "time_limit_s must be >= 1, got 0"),
    ({"slug": "a", "based_on": WSDM, "time_limit_s": "9h"}, "time_limit_s must be an integer, got '9h'"),
    ({"slug": "a", "based_on": WSDM, "train_file": "train.csv"}, "train_file 'train.csv' must be a plain file name "
                                                                 "ending in .parquet"),
    ({"slug": "a", "based_on": WSDM, "class_swap": {"model_a": "tie"}}, "names a class not in classes"),
    ({"slug": "a", "based_on": LMSYS_SLUG, "submission": "labels"}, 'submission = "labels" needs labels = "column"'),
    ({"slug": "a", "based_on": "kaggle-x"}, "based_on 'kaggle-x' is not a shipped competition"),
    ({"slug": "a", "colour": "red"}, "unknown key(s) colour"),
    ({"based_on": WSDM, "label_values": ["model_a", "model_a"]}, "label_values must name each class once"),
    ({"text_columns": ["p", "a", "b"]}, "needs slug ="),
])
def test_bad_competition_tables_are_one_line_errors(table, message):
    with pytest.raises(KitError) as caught:
        config_from_dict({"competition": table}, "kaggle-kit.toml")
    assert message in caught.value.message and "\n" not in caught.value.message
    assert caught.value.message.startswith("kaggle-kit.toml [competition]")


def test_bad_competition_table_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[competition]\nbased_on = "wsdm-cup-multilingual-chatbot-arena"\n'
                                              'metric = "f1"\n')
    out = run("config")
    assert out.exit_code != 0 and "metric must be one of log_loss, accuracy, got 'f1'" in out.output
    assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def wsdm_files(tmp_path_factory):
    return write_sample_data(tmp_path_factory.mktemp("wsdm"), rows=160, test_rows=30, seed=5, spec=get_spec(WSDM))


def test_wsdm_sample_data_has_the_competition_shape(wsdm_files):
    train, test = pd.read_parquet(wsdm_files.train), pd.read_parquet(wsdm_files.test)
    assert list(train.columns) == ["id", "model_a", "model_b", "language", "prompt", "response_a", "response_b",
                                   "winner"]
    assert list(test.columns) == ["id", "prompt", "response_a", "response_b", "scored"]
    assert pd.api.types.is_string_dtype(train["id"]) and not train["id"].str.fullmatch(r"\d+").all()
    assert pd.api.types.is_integer_dtype(test["id"])
    assert set(train["winner"]) == {"model_a", "model_b"}
    assert pd.read_csv(wsdm_files.sample_submission).columns.tolist() == ["id", "winner"]
    spec = get_spec(WSDM)
    pairs = read_train(wsdm_files.train, spec)
    assert set(pairs.labels) == {0, 1} and pairs.targets is None
    assert all(len(t) <= 1 for t in pairs.texts["response_a"])  # one plain-text turn, not JSON
    assert read_test(wsdm_files.test, spec).ids[:1] == [str(test["id"].iloc[0])]


def test_wsdm_labels_outside_the_spec_are_named(tmp_path, wsdm_files):
    spec = get_spec(WSDM)
    frame = pd.read_parquet(wsdm_files.train)
    frame.loc[:2, "winner"] = "tie"
    frame.to_parquet(tmp_path / "train.parquet", index=False)
    with pytest.raises(DataError, match=r"3 row\(s\) with winner not one of model_a, model_b \(found 'tie' x3\)"):
        read_train(tmp_path / "train.parquet", spec)
    test = pd.read_parquet(wsdm_files.test)
    test["id"] = test["id"].astype(str) + "x"
    test.to_parquet(tmp_path / "test.parquet", index=False)
    with pytest.raises(DataError, match="must hold integers for this competition"):
        read_test(tmp_path / "test.parquet", spec)


def test_wsdm_train_predict_validate_from_kaggle_kit_toml(tmp_path, monkeypatch, wsdm_files, tiny_backbone):
    """The issue's acceptance: competition = WSDM in kaggle-kit.toml; train -> predict -> validate on parquet."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(f'competition = "{WSDM}"\n[train]\nmax_len = 128\nmax_steps = 6\n'
                                              f'eval_steps = 3\nbackbone = "{tiny_backbone}"\n')
    trained = run("train", "--train", wsdm_files.train, "--out", "model", "--json")
    assert trained.exit_code == 0, trained.output
    assert "scores accuracy" in trained.output  # the metric-aware choice is said
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["metric"] == "accuracy" and len(metrics["class_prior"]) == 2
    predicted = run("predict", "--test", wsdm_files.test, "--model", "model", "--out", "sub.csv", "--tta", "swap",
                    "--rules", "--probabilities", "probs.csv", "--json")
    assert predicted.exit_code == 0, predicted.output
    result = json.loads(predicted.output[predicted.output.index("{"):])
    assert any("--rules not applied" in n for n in result["notes"])
    sub = pd.read_csv(tmp_path / "sub.csv", dtype={"id": str})
    assert sub.columns.tolist() == ["id", "winner"] and set(sub["winner"]) <= {"model_a", "model_b"}
    assert sub["id"].tolist() == [str(i) for i in pd.read_parquet(wsdm_files.test)["id"]]
    probs = pd.read_csv(tmp_path / "probs.csv", dtype={"id": str})
    assert probs.columns.tolist() == ["id", "winner_model_a", "winner_model_b"]
    best = np.where(probs["winner_model_a"] >= probs["winner_model_b"], "model_a", "model_b")
    assert (sub["winner"].to_numpy() == best).all()  # the label of the most probable class
    assert run("validate", "sub.csv", "--test", wsdm_files.test).exit_code == 0
    sub.loc[0, "winner"] = "tie"
    sub.to_csv(tmp_path / "tie.csv", index=False)
    refused = run("validate", "tie.csv", "--sample-submission", wsdm_files.sample_submission)
    assert refused.exit_code != 0 and "1 row(s) with winner not one of model_a, model_b (found 'tie' x1)" in \
        refused.output


@pytest.mark.parametrize("slug", [LMSYS_SLUG, LCF, WSDM])
def test_each_shipped_spec_trains_predicts_and_validates_on_its_sample_data(slug, tmp_path, tiny_backbone):
    from kaggle_kit.config import PredictConfig
    from kaggle_kit.inference.run import predict_to_submission
    from kaggle_kit.training.train import train

    spec = get_spec(slug)
    files = write_sample_data(tmp_path / "data", rows=100, test_rows=12, seed=1, spec=spec)
    assert files.train.name == spec.train_file
    result = train([files.train], tmp_path / "model", quick_config(tiny_backbone), spec)
    assert result.metrics["metric"] == spec.metric
    out = predict_to_submission([tmp_path / "model"], files.test, tmp_path / "sub.csv", spec,
                                PredictConfig(tta="swap"), progress=False)
    assert out["rows"] == 12
    report = validate_file(tmp_path / "sub.csv", expected_ids(spec, files.sample_submission), spec)
    assert report.ok, report.summary()
    assert pd.read_csv(tmp_path / "sub.csv").columns.tolist() == spec.submission_columns


def test_label_submissions_are_written_and_checked(tmp_path):
    spec = get_spec(WSDM)
    ids = ["3", "1", "2"]
    frame = pd.DataFrame({"id": ids, "winner": ["model_b", "tie", None]})
    report = validate_file_frame(frame, ids, spec)
    assert "2 row(s) with winner not one of model_a, model_b" in report.problems[0]
    with pytest.raises(DataError, match=r"shape \(3, 3\), expected one column per class"):
        write_submission(ids, np.full((3, 3), 1 / 3), ids, spec, tmp_path / "x.csv")  # an LMSYS model's rows
    assert not (tmp_path / "x.csv").exists()
    write_submission(ids, np.array([[0.2, 0.8], [0.9, 0.1], [0.5, 0.5]]), ["1", "2", "3"], spec, tmp_path / "x.csv")
    assert (tmp_path / "x.csv").read_text() == "id,winner\n1,model_a\n2,model_a\n3,model_b\n"


def validate_file_frame(frame, ids, spec):
    from kaggle_kit.submission import validate_frame

    return validate_frame(frame, ids, spec, "x.csv")


def test_kernel_for_llm_classification_finetuning_mounts_it(tmp_path, monkeypatch):
    from kaggle_kit.config import load_config
    from kaggle_kit.kernel.build import build_kernel, package_archive

    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(f'competition = "{LCF}"\nusername = "tester"\n[datasets]\n'
                                              'backbone = "tester/tiny-deberta-v3"\n')
    build_kernel("infer", load_config(), tmp_path / "k")
    meta = json.loads((tmp_path / "k" / "kernel-metadata.json").read_text())
    assert meta["competition_sources"] == [LCF]
    names = zipfile.ZipFile(io.BytesIO(package_archive())).namelist()
    assert "kaggle_kit/competition/competitions.toml" in names  # the specs travel with the code into the kernel


def test_bench_validate_times_every_competition_shape():
    out = run("bench", "validate", "--rows", "50", "--repeat", "1", "--json")
    assert out.exit_code == 0, out.output
    results = json.loads(out.output)
    assert {r["competition"] for r in results} == {LMSYS_SLUG, LCF, WSDM}
    assert all(r["rows"] == 50 and r["write_s"] > 0 and r["validate_s"] > 0 for r in results)


def test_wsdm_download_verifies_parquet_and_submit_refuses_a_tie(project, fake, wsdm_files):
    from datetime import datetime, timezone

    from kaggle_kit.remote.submit import submit_file

    files = [wsdm_files.train, wsdm_files.test, wsdm_files.sample_submission]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in files:
            zf.write(path, path.name)
    fake.competitions[WSDM] = {"files": {p.name: p.read_bytes() for p in files}, "zip": buffer.getvalue(),
                               "deadline": "2026-12-31T23:59:00Z"}
    got = run("download", "--competition", WSDM, "--to", "data", "--json")
    assert got.exit_code == 0, got.output
    summary = json.loads(got.stdout)
    assert summary["train_rows"] == 160 and summary["test_rows"] == 30
    assert set(summary["class_balance"]) == {"winner_model_a", "winner_model_b"}
    assert (project / "data" / "train.parquet").exists()
    tie = pd.read_csv(wsdm_files.sample_submission)
    tie.loc[0, "winner"] = "tie"
    tie.to_csv(project / "tie.csv", index=False)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    before = len(fake.requests)
    with pytest.raises(KitError, match="winner not one of model_a, model_b"):
        submit_file(project / "tie.csv", "x", get_spec(WSDM), wsdm_files.sample_submission, now)
    assert len(fake.requests) == before  # refused before any request
    done = submit_file(wsdm_files.sample_submission, "ok", get_spec(WSDM), wsdm_files.sample_submission, now)
    assert done["remaining_today"] >= 0


def test_wsdm_cv_blend_side_head_budget_and_pseudo_labels(tmp_path, wsdm_files, tiny_backbone):
    """Two classes through every stage that assumed three: side head, cv (accuracy beside log loss), blend (rules
    not applied), budgeted predict, pseudo-labels (hard, in the label column)."""
    from kaggle_kit.config import PredictConfig
    from kaggle_kit.inference.blending import fit_blend, parse_member
    from kaggle_kit.inference.budget import Budget
    from kaggle_kit.inference.pseudo_label import pseudo_label
    from kaggle_kit.inference.run import predict_to_submission
    from kaggle_kit.training.cv import run_cv

    spec = get_spec(WSDM)
    summary = run_cv([wsdm_files.train], tmp_path / "cv", 2, quick_config(tiny_backbone, length_head=True), spec,
                     echo=lambda m: None)
    assert 0 <= summary["oof_accuracy"] <= 1 and all("accuracy" in f for f in summary["per_fold"])
    fitted = fit_blend([parse_member(str(tmp_path / "cv" / "oof.csv"))], spec, [wsdm_files.train])
    assert "blend_accuracy" in fitted.report and fitted.report["rules"].startswith("not applied")
    (tmp_path / "wsdm.toml").write_text(f'competition = "{WSDM}"\n')
    text = run("--config", tmp_path / "wsdm.toml", "blend", "--oof", tmp_path / "cv" / "oof.csv", "--out",
               tmp_path / "blend.json").output
    assert "OOF accuracy" in text and "in-sample (the competition's metric" in text, text  # not under the CV figure
    model = tmp_path / "cv" / "fold-0"
    # The budgeted path with a budget that starts now: `time_budget` counts from process start, and this pytest
    # process can be past 10 minutes old by here on a slow or shared machine (then no time is left for swap TTA).
    out = predict_to_submission([model], wsdm_files.test, tmp_path / "sub.csv", spec, PredictConfig(tta="swap"),
                                budget=Budget(600.0), progress=False)
    assert out["rows"] == 30 and out["tta_rows"] == 30
    assert validate_file(tmp_path / "sub.csv", expected_ids(spec, wsdm_files.sample_submission), spec).ok
    labelled = pseudo_label([model], wsdm_files.test, tmp_path / "pseudo.csv", spec, PredictConfig(), None, 0.0)
    assert labelled["rows"] == 30
    pseudo = read_train(tmp_path / "pseudo.csv", spec)  # reads back as WSDM training data
    assert len(pseudo) == 30 and set(pseudo.labels) <= {0, 1}
    import shutil

    other = tmp_path / "lmsys-model"  # a model trained for three classes is refused before any forward pass
    shutil.copytree(model, other)
    info = json.loads((other / "kaggle_kit_model.json").read_text())
    (other / "kaggle_kit_model.json").write_text(json.dumps({**info, "num_labels": 3, "competition": LMSYS_SLUG}))
    with pytest.raises(KitError, match=r"trained for lmsys-chatbot-arena \(3 classes\); wsdm-cup-multilingual-chatbot"
                                       r"-arena has 2 \(model_a, model_b\)"):
        predict_to_submission([other], wsdm_files.test, tmp_path / "x.csv", spec, PredictConfig(), progress=False)
    assert not (tmp_path / "x.csv").exists()


def test_wsdm_kernels_train_and_infer_on_parquet_locally(project, wsdm_files, tiny_backbone):
    """A kernel built for WSDM reads its parquet files from the mounted competition and writes `id,winner`; the
    specs travel inside the kernel's code bundle."""
    toml = (project / "kaggle-kit.toml").read_text()
    (project / "kaggle-kit.toml").write_text(f'competition = "{WSDM}"\n' + toml)
    comp = wsdm_files.train.parent
    assert run("build-kernel", "train", "--out", "kb/train").exit_code == 0
    meta = json.loads((project / "kb" / "train" / "kernel-metadata.json").read_text())
    assert meta["competition_sources"] == [WSDM]
    trained = run("run-kernel", "kb/train", "--input", f"{WSDM}={comp}", "--input", f"tiny-deberta-v3={tiny_backbone}",
                  "--working", "work-train", "--json")
    assert trained.exit_code == 0, trained.output
    assert run("build-kernel", "infer", "--out", "kb/infer").exit_code == 0
    inferred = run("run-kernel", "kb/infer", "--input", f"{WSDM}={comp}", "--input", f"tiny-deberta-v3={tiny_backbone}",
                   "--input", f"lmsys-train={project / 'work-train'}", "--working", "work-infer")
    assert inferred.exit_code == 0, inferred.output
    sub = pd.read_csv(project / "work-infer" / "submission.csv")
    assert sub.columns.tolist() == ["id", "winner"] and set(sub["winner"]) <= {"model_a", "model_b"}
    assert run("validate", "work-infer/submission.csv", "--test", wsdm_files.test).exit_code == 0


@pytest.mark.parametrize("key, value", [("sample_submission_file", "../victim.csv"),
                                        ("submission_file", "out/submission.csv"), ("train_file", "../t.parquet"),
                                        ("test_file", "..")])
def test_every_spec_file_name_is_a_plain_name(key, value):
    table = {"slug": "my-arena", "based_on": WSDM, key: value}
    with pytest.raises(KitError, match=f"{key} '{value}' must be a plain file name"):
        project_spec(table)


@pytest.mark.parametrize("slug", ["My Arena/../x", "../x", "a/b", "UPPER", "x-"])
def test_a_competition_slug_is_a_kaggle_slug(slug):
    with pytest.raises(KitError, match="must be a Kaggle competition slug"):
        config_from_dict({"competition": {"slug": slug, "based_on": WSDM}})
    assert project_spec({"slug": "my-arena-2", "based_on": WSDM}).slug == "my-arena-2"


def test_sample_data_never_writes_outside_its_folder(tmp_path, monkeypatch):
    """The repro: sample_submission_file = "../victim.csv" and a DIR that does not exist yet replaced ./victim.csv."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim.csv").write_text("precious\n")
    (tmp_path / "kaggle-kit.toml").write_text('[competition]\nslug = "my-arena"\nbased_on = "lmsys-chatbot-arena"\n'
                                              'sample_submission_file = "../victim.csv"\n')
    one_line_error(run_cli("sample-data", "new-dir", "--rows", 12), "sample_submission_file '../victim.csv' must be a "
                                                                "plain file name")
    assert (tmp_path / "victim.csv").read_text() == "precious\n" and not (tmp_path / "new-dir").exists()
    with pytest.raises(KitError, match="must be a plain file name"):  # a spec built in code is checked too
        write_sample_data(tmp_path / "other", rows=12, spec=replace(LMSYS, sample_submission_file="../victim.csv"))
    assert (tmp_path / "victim.csv").read_text() == "precious\n"


@pytest.fixture(scope="module")
def wsdm_lists(tmp_path_factory):
    """WSDM sample data whose train parquet holds each prompt as a list of turns (as some exports do), with 30 rows
    repeated: 10 as they are, 10 with A and B exchanged, 10 in a second train file."""
    folder = tmp_path_factory.mktemp("wsdm-lists")
    files = write_sample_data(folder, rows=80, test_rows=10, seed=11, spec=get_spec(WSDM))
    train = pd.read_parquet(files.train)
    train["prompt"] = [np.array([p, f"and a follow-up on {k}"], dtype=object) for k, p in enumerate(train["prompt"])]
    same = train.iloc[:10].copy()
    same["id"] = same["id"] + "-again"
    swapped = train.iloc[10:20].copy()
    swapped["id"] = swapped["id"] + "-swapped"
    swapped[["response_a", "response_b"]] = swapped[["response_b", "response_a"]].to_numpy()
    swapped["winner"] = swapped["winner"].map({"model_a": "model_b", "model_b": "model_a"})
    pd.concat([train, same, swapped], ignore_index=True).to_parquet(files.train, index=False)
    second = train.iloc[20:30].copy()
    second["id"] = second["id"] + "-second"
    second.to_parquet(folder / "second.parquet", index=False)
    return files, folder / "second.parquet"


def test_list_prompt_cells_are_read_as_turns_with_a_note(wsdm_lists, caplog):
    from kaggle_kit.data.reading import read_train

    files, _ = wsdm_lists
    with caplog.at_level(logging.WARNING):
        pairs = read_train(files.train, get_spec(WSDM))
    assert pairs.texts["prompt"][0] == [pd.read_parquet(files.train)["prompt"][0][0], "and a follow-up on 0"]
    assert not any("['" in turn for turns in pairs.texts["prompt"] for turn in turns)  # never numpy's repr
    notes = [r.getMessage() for r in caplog.records if "hold lists" in r.getMessage()]
    assert len(notes) == 1 and "column(s) prompt hold lists, not text: each list is read as turns" in notes[0]


def test_duplicates_are_said_once_and_pseudo_labels_say_they_are_hard(wsdm_lists, tiny_backbone, tmp_path,
                                                                       monkeypatch, caplog):
    """train over both files: 30 duplicate rows dropped (10 within the file in the same order, 10 with A/B exchanged,
    10 across files) and said in one line; then pseudo-label for WSDM (a label column) says its labels are hard."""
    from kaggle_kit.training.train import train

    files, second = wsdm_lists
    with caplog.at_level(logging.WARNING):
        train([files.train, second], tmp_path / "model", quick_config(tiny_backbone, max_steps=2, eval_steps=2),
              get_spec(WSDM))
    said = [r.getMessage() for r in caplog.records if "duplicate rows" in r.getMessage()]
    assert said == ["note: dropped 30 duplicate rows (the same prompt and responses, in either A/B order, within or "
                    "across the train files): 30 of 110 rows"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text(f'competition = "{WSDM}"\n')
    result = run_cli("pseudo-label", "--model", tmp_path / "model", "--input", files.test, "--out", "pl.csv")
    assert result.exit_code == 0, result.output
    assert "pseudo-label writes hard labels (each row's most probable class), not probabilities" in result.output
    assert set(pd.read_csv(tmp_path / "pl.csv")["winner"]) <= {"model_a", "model_b"}


def test_download_and_sample_data_accept_the_projects_own_competition(tmp_path, monkeypatch, fake):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kaggle-kit.toml").write_text('[competition]\nbased_on = "lmsys-chatbot-arena"\nslug = "my-arena"\n')
    made = run_cli("sample-data", "d", "--competition", "my-arena", "--rows", 20)
    assert made.exit_code == 0 and (tmp_path / "d" / "train.csv").is_file(), made.output
    fake.competitions["my-arena"] = {"files": {"train.csv": b"x"}}
    listed = run_cli("download", "--competition", "my-arena", "--dry-run", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)["to"] == str(Path("data") / "my-arena")
