"""A study that compares against another study's runs: two folders of runs, cells named by their
model, and a difference of differences (is BN's small-batch loss larger in the deeper model?)."""

import csv
import math

import pytest

from normlab.report import summarize
from normlab.run.identity import RunIdentity
from normlab.run.record import write_record
from tests.configs import make

# test error (fraction) per seed 0, 1, 2 of BN at batch 32 and at batch 2
ERRORS = {
    "cnn": {32: (0.10, 0.11, 0.12), 2: (0.12, 0.13, 0.15)},  # +2, +2, +3 points
    "resnet20": {32: (0.08, 0.09, 0.10), 2: (0.12, 0.14, 0.15)},  # +4, +5, +5 points
}
CONTRASTS = """metrics: [test_error]
contrasts:
  - a: {model: resnet20, norm: batch, batch_size: 32}
    b: {model: resnet20, norm: batch, batch_size: 2}
    minus:
      a: {model: cnn, norm: batch, batch_size: 32}
      b: {model: cnn, norm: batch, batch_size: 2}
  - a: {model: cnn, norm: batch, batch_size: 2}
    b: {model: resnet20, norm: batch, batch_size: 2}
"""


def write_runs(folder, model: str, seeds=(0, 1, 2), epochs: int = 5, better=0.0) -> None:
    for batch, errors in ERRORS[model].items():
        for seed in seeds:
            s = make(["norm=batch", f"model={model}", f"data.batch_size={batch}", f"seed={seed}",
                      f"trainer.max_epochs={epochs}"])  # fmt: skip
            identity = RunIdentity.of(s)
            acc = 1 - errors[seed] + better * (seed + 1)
            write_record(folder / f"norm=batch,data.batch_size={batch},seed={seed}",
                         {"status": "finished", **s.key_choices(), "identity": identity.hash,
                          "settings": identity.settings, "val_acc": acc, "test_acc": acc,
                          "epochs": 1.0})  # fmt: skip


def test_a_difference_of_differences_over_two_folders_of_runs(tmp_path):
    write_runs(tmp_path / "resnet" / "runs", "resnet20")
    write_runs(tmp_path / "cnn" / "runs", "cnn")  # the same run names as the other folder's
    (tmp_path / "contrasts.yaml").write_text(CONTRASTS)
    summarize(tmp_path / "resnet" / "runs", tmp_path / "out", tmp_path / "contrasts.yaml",
              beside=[tmp_path / "cnn" / "runs"])  # fmt: skip
    with open(tmp_path / "out" / "summary.csv") as f:
        runs = [r["run"] for r in csv.DictReader(f)]
    assert len(runs) == len(set(runs)) == 12  # both folders' runs, told apart by folder
    with open(tmp_path / "out" / "contrasts.csv") as f:
        interaction, models = list(csv.DictReader(f))
    # per seed: (+4 − 2, +5 − 2, +5 − 3) = 2, 3, 2 points: mean 7/3, SD 1/√3, t = 7 on 2 df
    assert interaction["test"] == "paired" and interaction["n_a"] == interaction["n_b"] == "3"
    assert float(interaction["difference"]) == pytest.approx(7 / 3, abs=1e-3)
    assert float(interaction["p"]) == pytest.approx(0.0198, abs=1e-3)
    half = 4.303 / 3
    assert float(interaction["ci_low"]) == pytest.approx(7 / 3 - half, abs=1e-2)
    assert float(interaction["ci_high"]) == pytest.approx(7 / 3 + half, abs=1e-2)
    assert interaction["b"].startswith("(resnet20: batch @ batch 2, lr=") and (
        ") − (resnet20: batch @ batch 32, lr=" in interaction["b"]
    )
    assert interaction["a"].startswith("(cnn: batch @ batch 2")
    # a plain contrast across the models: the cells are named by their model
    assert models["a"].startswith("cnn: batch @ batch 2") and models["b"].startswith("resnet20:")
    assert float(models["difference"]) == pytest.approx((0.0 + 1.0 + 0.0) / 3, abs=1e-3)
    assert not math.isnan(float(models["holm_p"]))


def test_a_pair_without_two_shared_seeds_is_one_line(tmp_path, report):
    write_runs(tmp_path / "resnet", "resnet20")
    write_runs(tmp_path / "cnn", "cnn", seeds=(0,))
    (tmp_path / "resnet" / "contrasts.yaml").write_text(CONTRASTS)
    result = report(tmp_path / "resnet", tmp_path / "cnn", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: contrast pair {'model': 'cnn', 'norm': 'batch', 'batch_size': 32} -> "
        "{'model': 'cnn', 'norm': 'batch', 'batch_size': 2} shares 1 seeds; allowed: a "
        "difference of differences needs 2 or more"
    )


def test_a_second_folder_that_is_missing_is_one_line(tmp_path, report):
    write_runs(tmp_path / "resnet", "resnet20")
    result = report(tmp_path / "resnet", tmp_path / "nothing")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no sweep folder at {tmp_path / 'nothing'}"


def test_a_contrast_of_its_own_metric_makes_a_family_of_its_own(tmp_path):
    write_runs(tmp_path / "runs", "cnn")
    (tmp_path / "contrasts.yaml").write_text(
        "metrics: [test_error]\n"
        "contrasts:\n"
        "  - {a: {norm: batch, batch_size: 32}, b: {norm: batch, batch_size: 2}}\n"
        "  - {a: {norm: batch, batch_size: 32}, b: {norm: batch, batch_size: 2},"
        " metrics: [val_error]}\n"
    )
    summarize(tmp_path / "runs", tmp_path / "out", tmp_path / "contrasts.yaml")
    with open(tmp_path / "out" / "contrasts.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["metric"] for r in rows] == ["test_error", "val_error"]
    # each the only contrast of its metric: Holm leaves its p alone
    assert all(r["holm_p"] == r["p"] for r in rows)
    assert float(rows[1]["difference"]) == pytest.approx(7 / 3, abs=1e-3)  # +2, +2, +3 points


def test_runs_of_other_epochs_are_cells_of_their_own(tmp_path):
    write_runs(tmp_path / "five", "cnn")
    # the same run names; seed s is s + 1 points better
    write_runs(tmp_path / "fifteen", "cnn", epochs=15, better=0.01)
    (tmp_path / "contrasts.yaml").write_text(
        "contrasts:\n  - {a: {batch_size: 2, max_epochs: 5}, b: {batch_size: 2, max_epochs: 15}}\n"
    )
    summarize(tmp_path / "fifteen", tmp_path / "out", tmp_path / "contrasts.yaml",
              beside=[tmp_path / "five"])  # fmt: skip
    with open(tmp_path / "out" / "contrasts.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["a"].startswith("batch @ batch 2, lr=") and row["a"].endswith(", 5 epochs")
    assert row["b"].endswith(", 15 epochs") and row["test"] == "paired"
    assert float(row["difference"]) == pytest.approx(-2.0, abs=1e-6)  # -(1 + 2 + 3) / 3 points
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| dataset | model | norm | batch | epochs | lr |" in text
