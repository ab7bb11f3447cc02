"""Tables and figures from rows (no training): labels, n, the gap in points, unequal training."""

import matplotlib.image

from normlab.report.collect import varying_options
from normlab.report.plots import panels, plot, series
from normlab.report.tables import aggregate, describe, label, markdown


def row(norm, batch, seed, val_acc, gap_acc, images, **extra):
    return {"status": "finished", "dataset": "fashion_mnist", "model": "cnn", "norm": norm,
            "batch_size": batch, "seed": seed, "val_error": 100 * (1 - val_acc),
            "test_error": 100 * (1 - val_acc), "gap_points": 100 * gap_acc,
            "drift_to_batch": 0.1, "precise_distance": 0.0, "train_images": images, "epochs": 5,
            **extra}  # fmt: skip


ROWS = [
    *(row("batch", b, s, 0.9, -0.01 * (128 // b), 275000) for b in (2, 32, 128) for s in (0, 1, 2)),
    *(row("group", b, s, 0.89, 0.0, 275000) for b in (2, 32, 128) for s in (0, 1, 2)),
    *(row("group", b, 0, 0.9, 0.0, 275000, weight_standardization=True) for b in (2, 32)),
]


def test_rows_group_by_norm_and_variant_with_seeds_and_n():
    table = aggregate(ROWS)
    ws = [e for e in table if e["weight_standardization"]]
    assert len(table) == 8 and len(ws) == 2 and all(e["n"] == 1 for e in ws)
    bn2 = next(e for e in table if e["norm"] == "batch" and e["batch_size"] == 2)
    assert bn2["n"] == 3 and bn2["seeds"] == [0, 1, 2] and bn2["epochs"] == [5]
    assert bn2["gap_points"] == -64.0  # percentage points, as the error
    assert describe(table) == "fashion_mnist, cnn, 5 epochs, seeds 0, 1, 2 (n = 1–3 per point)"
    text = markdown(ROWS, table)
    assert "| group+WS | 2 |" in text and "| -64.00 ± 0.00 |" in text
    assert "Unequal training" not in text


def test_unequal_training_images_are_flagged():
    rows = [*ROWS, row("batch", 64, 0, 0.9, 0.0, 86 * 64)]  # a capped run: 5,504 images
    assert "Unequal training: 5504 to 275000 training images" in markdown(rows, aggregate(rows))


def test_figures_are_written_with_lines_per_norm(tmp_path):
    written = {p.name for p in plot(aggregate(ROWS), tmp_path)}
    assert {"error_vs_batch.png", "gap_vs_batch.png", "drift_vs_batch.png"} <= written
    image = matplotlib.image.imread(tmp_path / "gap_vs_batch.png")
    assert image.shape[0] > 400 and image.shape[1] > 600


def test_a_line_needs_two_x_values(tmp_path):
    """GN rows all at G=8 across batch sizes make no groups figure."""
    assert "error_vs_groups.png" not in {
        p.name
        for p in plot(
            aggregate([{**r, "num_groups": 8} for r in ROWS if r["norm"] == "group"]), tmp_path
        )
    }


def test_precise_bn_at_test_is_its_own_line_in_the_test_error_figure(tmp_path):
    """BN tested with population statistics shares BN's val error (validation uses the EMA) and
    differs in test error: the test-error figure draws it as a line of its own."""
    precise = [{**r, "population_at_test": True, "test_error": r["test_error"] - 1.0}
               for r in ROWS if r["norm"] == "batch"]  # fmt: skip
    table = aggregate([*ROWS, *precise])
    lines = series(table, "test_error", "batch_size")
    bn, bn_precise = lines["BatchNorm"], lines["BatchNorm (PreciseBN at test)"]
    assert [e["batch_size"] for e in bn_precise] == [2, 32, 128]
    differences = [a["test_error"] - b["test_error"] for a, b in zip(bn, bn_precise, strict=True)]
    assert [round(d, 6) for d in differences] == [1.0] * 3
    assert "test_error_vs_batch.png" in {p.name for p in plot(table, tmp_path)}


def test_runs_that_differ_in_a_norm_option_are_cells_of_their_own():
    """Batch Renorm at two clip settings and BN at one: only the options that vary label a
    cell, and runs are pooled only across seeds."""
    clips = {"momentum": 0.1, "r_max": 3.0, "d_max": 5.0}
    rows = [
        *(row("batch_renorm", 4, s, 0.89, 0.0, 275000, norm_options=clips) for s in (0, 1, 2)),
        *(row("batch_renorm", 4, s, 0.90, 0.0, 275000,
              norm_options={**clips, "r_max": 1.5, "d_max": 0.5}) for s in (0, 1, 2)),
        *(row("batch", 4, s, 0.9, -0.01, 275000, norm_options={"momentum": 0.1}) for s in (0, 1)),
    ]  # fmt: skip
    varying_options(rows)
    table = aggregate(rows)
    assert [(e["norm"], e["n"], label(e)) for e in table] == [
        ("batch", 2, "batch"),
        ("batch_renorm", 3, "batch_renorm (r_max=1.5, d_max=0.5)"),
        ("batch_renorm", 3, "batch_renorm (r_max=3.0, d_max=5.0)"),
    ]
    assert [round(e["val_error"], 6) for e in table[1:]] == [10.0, 11.0]
    assert "| batch_renorm (r_max=1.5, d_max=0.5) | 4 |" in markdown(rows, table)


def test_an_lr_sweep_draws_one_panel_per_batch_and_splits_the_batch_figure_by_lr(tmp_path):
    """Cells at two batch sizes and two lrs each (0.1 and 0.2 times B/128): error against lr
    has a panel per batch, each with its norms' lines; error against batch has a line per norm
    and lr factor, so that no line joins cells of different lrs."""
    rows = [{**row(norm, b, s, 0.9 - 0.01 * (norm == "group"), 0.0, 275000),
             "lr": f * b / 128, "lr_factor": f / 0.1}
            for norm in ("batch", "group") for b in (2, 32) for f in (0.1, 0.2)
            for s in (0, 1)]  # fmt: skip
    table = [{**e, "lr_factor": e["lr"] * 128 / e["batch_size"] / 0.1} for e in aggregate(rows)]
    facets = panels(series(table, "val_error", "lr_factor"), "lr_factor")
    assert [title for title, _ in facets] == ["batch 2", "batch 32"]
    assert all(sorted(lines) == ["BatchNorm", "GroupNorm"] for _, lines in facets)
    assert all(len(rows) == 2 for _, lines in facets for rows in lines.values())
    by_batch = series(table, "val_error", "batch_size")
    assert sorted(by_batch) == [f"{norm}, lr {f}× the rule's" for norm in ("BatchNorm", "GroupNorm")
                                for f in (1, 2)]  # fmt: skip
    assert all([e["batch_size"] for e in line] == [2, 32] for line in by_batch.values())
    written = {p.name for p in plot(aggregate(rows), tmp_path)}
    assert {"error_vs_lr.png", "error_vs_batch.png"} <= written
    # two panels side by side: wider than a one-panel figure
    wide = matplotlib.image.imread(tmp_path / "error_vs_lr.png")
    one = matplotlib.image.imread(tmp_path / "gap_vs_batch.png")
    assert wide.shape[1] > one.shape[1]


def test_a_cell_at_one_batch_size_is_drawn_as_a_point_beside_the_lines(tmp_path):
    """Batch Renorm run only at batch 32 is a line of one point in the batch figure, not
    dropped: no series of a written figure is hidden."""
    rows = [*ROWS, *(row("batch_renorm", 32, s, 0.88, -0.005, 275000) for s in (0, 1, 2))]
    lines = series(aggregate(rows), "val_error", "batch_size")
    assert [e["batch_size"] for e in lines["Batch Renorm"]] == [32]
    assert [e["batch_size"] for e in lines["BatchNorm"]] == [2, 32, 128]
    assert "error_vs_batch.png" in {p.name for p in plot(aggregate(rows), tmp_path)}


def test_cells_run_for_two_budgets_get_an_error_vs_epochs_figure(tmp_path):
    """BN and GN at batch 32 for 5 and 15 epochs, BN at batch 128 for 5 only: the epochs figure
    has a line per norm and batch that ran both budgets; the batch figure names the epochs."""
    cells = [(n, b, e) for n in ("batch", "group") for b in (32, 128) for e in (5, 15)]
    rows = [{**row(n, b, s, 0.9 + 0.02 * (e == 15), 0.0, 55000 * e), "epochs": e, "max_epochs": e}
            for n, b, e in cells for s in (0, 1) if e == 5 or b == 32]  # fmt: skip
    table = aggregate(rows)
    assert describe(table).startswith("fashion_mnist, cnn, 5, 15 epochs")
    by_epochs = series(table, "test_error", "max_epochs")
    bn = by_epochs["BatchNorm @ batch 32"]
    assert [e["max_epochs"] for e in bn] == [5, 15]
    assert round(bn[0]["test_error"] - bn[1]["test_error"], 6) == 2.0
    assert [e["max_epochs"] for e in by_epochs["BatchNorm @ batch 128"]] == [5]
    assert sorted(series(table, "val_error", "batch_size")) == sorted(
        f"{norm}, {e} epochs" for norm in ("BatchNorm", "GroupNorm") for e in (5, 15)
    )
    assert "error_vs_epochs.png" in {p.name for p in plot(table, tmp_path)}
    five = [r for r in rows if r["max_epochs"] == 5]
    assert "error_vs_epochs.png" not in {p.name for p in plot(aggregate(five), tmp_path)}


def test_a_line_joins_only_neighbouring_x_values_of_the_figure_s_grid():
    """ResNet-20 at batch 32 and 2 beside the CNN at 32, 16, 8, 4, 2: two points, no segment
    from 32 to 2; the CNN's five are one segment."""
    from normlab.report.plots import segments

    grid = [2, 4, 8, 16, 32]
    assert segments([{"b": 2}, {"b": 32}], "b", grid) == [[{"b": 2}], [{"b": 32}]]
    five = [{"b": b} for b in grid]
    assert segments(five, "b", grid) == [five]
    assert segments([{"b": 2}, {"b": 4}, {"b": 16}], "b", grid) == [[{"b": 2}, {"b": 4}],
                                                                     [{"b": 16}]]  # fmt: skip
