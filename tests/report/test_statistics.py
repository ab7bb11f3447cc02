"""The report's statistics on hand-made runs with answers known from a t table."""

import csv
import math

import pytest

from normlab.report import summarize
from normlab.report.statistics import contrast, holm, interval
from normlab.run.identity import RunIdentity
from normlab.run.record import write_record
from tests.configs import make

# t(0.975, df): 12.706 (1), 4.303 (2), 2.776 (4)


def test_a_cells_interval_is_t_based():
    low, high = interval([1.0, 2.0, 3.0])  # mean 2, SD 1, SEM 1/√3
    assert (low, high) == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)),
                                        abs=1e-3)  # fmt: skip
    assert all(math.isnan(v) for v in interval([5.0]))


def test_welch_where_the_seeds_differ():
    c = contrast({0: 1.0, 1: 2.0, 2: 3.0}, {3: 2.0, 4: 3.0, 5: 4.0}, ("A", "B"), "m")
    # equal SDs and n: t = 1 / √(2/3) = 1.2247 on 4 degrees of freedom, p = 0.288
    assert c.test == "welch" and c.difference == pytest.approx(1.0)
    assert c.p == pytest.approx(0.288, abs=1e-3)
    assert (c.low, c.high) == pytest.approx((1 - 2.776 * math.sqrt(2 / 3),
                                             1 + 2.776 * math.sqrt(2 / 3)), abs=1e-3)  # fmt: skip
    assert not c.excludes_zero


def test_paired_where_both_cells_ran_the_same_seeds():
    c = contrast({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.5, 2: 3.5}, ("A", "B"), "m")
    # per-seed differences 1, 1.5, 0.5: mean 1, SD 0.5, t = 3.464 on 2 df, p = 0.0742
    assert c.test == "paired" and c.p == pytest.approx(0.0742, abs=1e-4)
    half = 4.303 * 0.5 / math.sqrt(3)
    assert (c.low, c.high) == pytest.approx((1 - half, 1 + half), abs=1e-3)
    assert c.welch_p > c.p  # the seed's own luck removed


def test_holm_steps_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, math.nan]) == [0.5, pytest.approx(math.nan, nan_ok=True)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]


def test_declared_contrasts_reach_summary_md_and_contrasts_csv(tmp_path):
    errors = {("batch", 0): 0.10, ("batch", 1): 0.11, ("batch", 2): 0.12,
              ("group", 0): 0.11, ("group", 1): 0.125, ("group", 2): 0.125}  # fmt: skip
    for (norm, seed), error in errors.items():
        s = make([f"norm={norm}", f"seed={seed}", "data.batch_size=8", "model=cnn"])
        identity = RunIdentity.of(s)
        results = {"val_acc": 1 - error, "test_acc": 1 - error, "epochs": 1.0}
        write_record(tmp_path / "sweep" / f"{norm},{seed}",
                     {"status": "finished", **s.key_choices(), "identity": identity.hash,
                      "settings": identity.settings, **results})  # fmt: skip
    (tmp_path / "sweep" / "contrasts.yaml").write_text(
        "metrics: [test_error]\n"
        "contrasts:\n"
        "  - {a: {norm: batch, batch_size: 8}, b: {norm: group, batch_size: 8}}\n"
    )
    summarize(tmp_path / "sweep", tmp_path / "out")
    with open(tmp_path / "out" / "contrasts.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["test"] == "paired"  # the same seeds: 0, 1, 2
    assert float(row["difference"]) == pytest.approx(1.0, abs=1e-3)  # points: the case above
    assert float(row["p"]) == pytest.approx(0.0742, abs=1e-3)
    assert row["a"] == "batch @ batch 8, lr=0.00625" and row["b"].startswith("group @ batch 8")
    text = (tmp_path / "out" / "summary.md").read_text()
    assert (
        "| test_error | batch @ batch 8, lr=0.00625 | group @ batch 8, num_groups=8, "
        "lr=0.00625 | +1.00 |"
    ) in text
    assert (tmp_path / "out" / "error_by_cell.png").stat().st_size > 0  # one batch: a dot chart


def test_a_contrast_that_selects_no_cell_is_one_line(tmp_path, report):
    sweep = tmp_path / "sweep"
    s = make(["norm=batch", "model=cnn"])
    identity = RunIdentity.of(s)
    write_record(sweep / "r", {"status": "finished", **s.key_choices(), "val_acc": 0.9,
                               "test_acc": 0.9, "identity": identity.hash,
                               "settings": identity.settings})  # fmt: skip
    (sweep / "contrasts.yaml").write_text("contrasts:\n  - {a: {norm: batch}, b: {norm: group}}\n")
    result = report(sweep)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: contrast cell {'norm': 'group'} matches 0 cells; "
                                     "allowed: settings that select exactly one")  # fmt: skip


def test_runs_at_other_lrs_are_cells_of_their_own_with_an_error_vs_lr_figure(tmp_path):
    for base_lr, error in ((0.05, 0.12), (0.1, 0.10), (0.2, 0.11)):
        for seed in (0, 1):
            s = make(["norm=batch", f"seed={seed}", f"optim.base_lr={base_lr}", "model=cnn"])
            identity = RunIdentity.of(s)
            results = {"val_acc": 1 - error - 0.001 * seed, "test_acc": 1 - error, "epochs": 1.0}
            write_record(tmp_path / "sweep" / f"{base_lr},{seed}",
                         {"status": "finished", **s.key_choices(), "identity": identity.hash,
                          "settings": identity.settings, **results})  # fmt: skip
    written = {p.name for p in summarize(tmp_path / "sweep", tmp_path / "out")}
    table = (tmp_path / "out" / "summary.md").read_text()
    for lr, error in (("0.05", "12.05"), ("0.1", "10.05"), ("0.2", "11.05")):
        assert f"| batch | 128 | {lr} | {error} ± 0.07 [" in table, table
    assert "error_vs_lr.png" in written
