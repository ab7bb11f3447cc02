"""summarize on a sweep made by real tiny runs: a finished grid with 2 seeds, a failed run and a
run still going (no metrics.json yet)."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from normlab.report import summarize
from tests.runs import REPO, tiny_overrides, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sweeps")
    root = tmp / "sweeps"
    train("-m", *tiny_overrides(tmp), "norm=batch,group", "data.batch_size=4,8", "seed=0,1",
          "callbacks.drift.every_n_steps=2",
          f"hydra.sweep.dir={root / 'grid'}")  # fmt: skip
    # num_groups=5 does not divide the CNN's 16 channels: that job fails, the others finish.
    train("-m", *tiny_overrides(tmp), "norm=group", "norm.num_groups=2,4,5",
          f"hydra.sweep.dir={root / 'groups'}")  # fmt: skip
    finished = next(p for p in sorted((root / "grid").iterdir()) if p.is_dir())
    running = root / "grid" / "still-running"
    shutil.copytree(finished / ".hydra", running / ".hydra")
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_failing_job_does_not_stop_the_sweep(sweep_root):
    statuses = {}
    for run in (p for p in (sweep_root / "groups").iterdir() if p.is_dir()):
        statuses[run.name.split("norm.num_groups=")[1].split(",")[0]] = (
            run / "metrics.json"
        ).read_text()
    assert '"status": "finished"' in statuses["2"] and '"status": "finished"' in statuses["4"]
    assert '"status": "failed"' in statuses["5"] and "valid num_groups" in statuses["5"]


def test_summary_csv_markdown_and_plots(sweep_root, tmp_path):
    written = summarize(sweep_root, tmp_path)
    names = {p.name for p in written}
    assert {"summary.csv", "summary.md", "error_vs_batch.png", "gap_vs_batch.png",
            "drift_vs_batch.png", "error_vs_groups.png"} <= names  # fmt: skip
    assert all(p.stat().st_size > 0 for p in written)
    rows = read_csv(tmp_path / "summary.csv")
    assert len(rows) == 8 + 3 + 1
    assert sorted(r["status"] for r in rows).count("finished") == 10
    assert [r["status"] for r in rows if r["run"].endswith("still-running")] == ["running"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "num_groups=5" in failed[0]["error"]
    markdown = (tmp_path / "summary.md").read_text()
    batch_rows = [line for line in markdown.splitlines() if "| batch | 4 |" in line]
    assert len(batch_rows) == 1 and " ± " in batch_rows[0]
    assert batch_rows[0].endswith("| 2 | solo, callbacks on |")  # n, and how the runs ran
    assert {r["execution"] for r in rows if r["status"] == "finished"} == {"solo, callbacks on"}
    assert "Runs not finished" in markdown and "still-running | running" in markdown


def test_cli_prints_where_it_wrote(sweep_root, tmp_path):
    entry_point = shutil.which("normlab-report")  # installed by pip install -e .
    assert entry_point, "normlab-report is not installed: pip install -e ."
    for command in ([sys.executable, "-m", "normlab.report"], [entry_point]):
        out = tmp_path / Path(command[-1]).name.replace(".", "_")
        result = subprocess.run([*command, str(sweep_root), "--out", str(out)],
                                cwd=REPO, capture_output=True, text=True, check=True)  # fmt: skip
        assert "12 runs: 1 failed, 10 finished, 1 running" in result.stdout
        assert f"wrote {out / 'summary.csv'}" in result.stdout
        assert (out / "error_vs_batch.png").is_file()


def test_cli_on_a_missing_folder_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "normlab.report", str(tmp_path / "nope")],
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"error: no sweep folder at {tmp_path / 'nope'}"
    )
