"""Each cell's best lr, on hand-made runs whose answer is known."""

import csv

from normlab.report import summarize
from normlab.run.identity import RunIdentity
from normlab.run.record import write_record
from tests.configs import make


def finished_run(sweep, norm, base_lr, seed, val_error, test_error=0.5):
    s = make([f"norm={norm}", f"seed={seed}", f"optim.base_lr={base_lr}", "model=cnn",
              "data.batch_size=8"])  # fmt: skip
    identity = RunIdentity.of(s)
    write_record(sweep / f"{norm},{base_lr},{seed}",
                 {"status": "finished", **s.key_choices(), "identity": identity.hash,
                  "settings": identity.settings, "val_acc": 1 - val_error,
                  "test_acc": 1 - test_error, "epochs": 1.0})  # fmt: skip


def test_the_best_lr_is_chosen_on_val_error_over_the_seeds_every_lr_ran(tmp_path):
    sweep = tmp_path / "sweep"
    # BN: 0.2 is best over seeds 0 and 1 (mean 0.09); the later seed 2 ran at 0.1 alone and is
    # far better (0.01), so counting it would choose 0.1. Test error would choose 0.05.
    for base_lr, errors in ((0.05, (0.12, 0.12)), (0.1, (0.10, 0.10)), (0.2, (0.09, 0.09))):
        for seed, error in enumerate(errors):
            finished_run(sweep, "batch", base_lr, seed, error, test_error=0.01 * (base_lr > 0.05))
    finished_run(sweep, "batch", 0.1, 2, 0.01)
    # GN, a group of its own: 0.1, inside the grid
    for base_lr, error in ((0.05, 0.15), (0.1, 0.11), (0.2, 0.13)):
        for seed in (0, 1):
            finished_run(sweep, "group", base_lr, seed, error + 0.001 * seed)
    summarize(sweep, tmp_path / "out")
    with open(tmp_path / "out" / "best_lr.csv") as f:
        rows = {r["cell"].split(" ")[0]: r for r in csv.DictReader(f)}
    assert set(rows) == {"batch", "group"}
    # lr = base_lr x 8/128; the linear rule's base lr is 0.1
    assert float(rows["batch"]["lr"]) == 0.2 * 8 / 128 and rows["batch"]["lr_factor"] == "2.0"
    assert rows["batch"]["seeds"] == "0 1" and float(rows["batch"]["val_error"]) == 9.0
    assert rows["batch"]["at_edge"] == "True"  # the highest lr tried
    assert float(rows["group"]["lr"]) == 0.1 * 8 / 128 and rows["group"]["at_edge"] == "False"
    assert float(rows["group"]["val_error"]) == 11.05
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| batch @ batch 8, lr=0.0125 | 2× * | 9.00 | 0, 1 | 3 |" in text


def test_no_best_lr_where_no_cell_differs_only_in_lr(tmp_path):
    for norm in ("batch", "group"):
        finished_run(tmp_path / "sweep", norm, 0.1, 0, 0.1)
    written = {p.name for p in summarize(tmp_path / "sweep", tmp_path / "out")}
    assert "best_lr.csv" not in written
    assert "Best lr" not in (tmp_path / "out" / "summary.md").read_text()
