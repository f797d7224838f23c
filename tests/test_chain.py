"""The winning chain through kernels as docs/chain.md walks it: fold train kernels -> gather -> blend -> infer kernel
with blend.json, rules and a time budget -> a valid submission.csv (sample data, tiny backbone, run-kernel)."""

import json

from click.testing import CliRunner

from kaggle_kit.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_fold_kernels_gather_blend_and_budgeted_infer_kernel(project, small_files, tiny_backbone):
    comp, backbone = f"lmsys-chatbot-arena={small_files.train.parent}", f"tester/tiny-deberta-v3={tiny_backbone}"
    for i in (0, 1):  # what `push-kernel train --folds 2` runs on Kaggle, each fold's output pulled into the dataset
        run("build-kernel", "train", "--fold", f"{i}/2", "--out", f"kb/fold-{i}")
        run("run-kernel", f"kb/fold-{i}", "--input", comp, "--input", backbone, "--working", f"lmsys-blend/fold-{i}",
            "--quiet")
    gathered = json.loads(run("cv", "--gather", "lmsys-blend/fold-0", "--gather", "lmsys-blend/fold-1", "--out",
                              "lmsys-blend", "--json").stdout)
    assert gathered["folds"] == 2 and gathered["rows"] == 120
    blend = json.loads(run("blend", "--oof", "lmsys-blend/oof.csv", "--train", small_files.train,
                           "--backbone-source", "tiny-deberta-v3=tester/tiny-deberta-v3", "--out",
                           "lmsys-blend/blend.json", "--json").stdout)
    assert {"blend_log_loss", "cv_blend_log_loss"} <= set(blend)
    toml = (project / "kaggle-kit.toml").read_text()
    toml = toml.replace("[datasets]\n", '[datasets]\nmodel = "tester/lmsys-blend"\n')
    toml += '[predict]\nblend = "blend.json"\nrules = true\ntime_budget = "3m"\n'
    (project / "kaggle-kit.toml").write_text(toml)
    run("build-kernel", "infer", "--out", "kb/infer")
    run("run-kernel", "kb/infer", "--input", comp, "--input", backbone, "--input", "tester/lmsys-blend=lmsys-blend",
        "--working", "work-infer", "--quiet")
    report = json.loads((project / "work-infer" / "kaggle_kit_run.json").read_text())
    assert report["budget_s"] == 180 and report["prior_rows"] == 0 and report["model_rows"] == [24, 24]
    run("validate", "work-infer/submission.csv", "--test", small_files.test)
