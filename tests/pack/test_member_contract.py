"""The contract of a pack, every norm: K = 3 members (a first, a middle and a last), killed
with SIGKILL mid-way through their second epoch and resumed by the same command, each equal to
its solo run. Here the norms with the statistics callbacks on; test_member_contract_off.py the
others, with them off (two files: pytest-xdist runs them on two workers at once)."""

import os
from pathlib import Path

import pytest

from normlab.norms import NORMS
from normlab.report import aggregate, collect
from normlab.run.fit import run
from tests.configs import compose
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.pack.test_packed_runs import numbers_match, records, sweep

EVERY_NORM = sorted(NORMS)
SEEDS = (0, 1, 2)  # one pack of three per norm


@pytest.mark.slow
def test_every_member_of_a_killed_and_resumed_pack_equals_its_solo_run(tmp_path):
    """Statistics callbacks on (drift every step, gap, PreciseBN)."""
    callbacks = ["callbacks=default", "callbacks.drift.every_n_steps=1"]
    killed_packs_equal_solo_runs(EVERY_NORM[0::2], callbacks, tmp_path)


def killed_packs_equal_solo_runs(norms: list[str], callbacks: list[str], tmp_path) -> None:
    """hydra/launcher=packed, float64, one pack of 3 seeds per norm (batch 32: ghost_batch's
    virtual batch divides it): each pack is killed once (SIGKILL, half-way through epoch 1)
    and the command relaunched until it succeeds. Every member's metrics.json equals its solo
    run's to 1e-9, the last included, and the report's table of the packs is the solo runs'."""
    data = write_tiny_cifar10(tmp_path / "data")
    base = ["trainer=debug", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
            "trainer.precision=64-true", "model=cnn",
            f"data.root={data}", "data.verify_checksums=false", "data.val_size=40",
            "data.batch_size=32", f"paths.root={tmp_path / 'out'}", *callbacks]  # fmt: skip
    folder = tmp_path / "packed"
    grid = [f"norm={','.join(norms)}", f"seed={','.join(map(str, SEEDS))}"]
    kills, os.environ["KILL_EVERY_FIT"] = 0, "1"
    try:
        for _ in range(len(norms) + 1):  # each pack killed once, then resumed
            launch = sweep("hydra/launcher=packed", *base, *grid, f"hydra.sweep.dir={folder}",
                           script=("tests/kill_at.py", "mid_epoch"), check=False)  # fmt: skip
            if launch.returncode == 0:
                break
            assert launch.returncode == -9, launch.stderr[-3000:]
            kills += 1
    finally:
        del os.environ["KILL_EVERY_FIT"]
    assert launch.returncode == 0 and kills == len(norms)
    packed = records(folder)
    assert len(packed) == len(norms) * len(SEEDS)
    assert len({r["packed_with"]["pack"] for r in packed.values()}) == len(norms)
    for name, record in packed.items():
        assert record["status"] == "finished", name
        overrides = [o for o in record["overrides"] if not o.startswith("hydra")]
        solo = run(compose(overrides), run_dir=tmp_path / "solo" / name).metrics
        assert numbers_match(record, solo) == [], (name, record["packed_with"]["index"])
    assert report_tables_differ(folder, tmp_path / "solo") == []


def report_tables_differ(ours: Path, theirs: Path) -> list:
    """The report's summary rows of two sweep folders that differ (their numbers to 1e-9, but
    the seconds), as (row, keys); a different number of rows, as [(None, counts)]."""
    tables = [aggregate(collect(folder)) for folder in (ours, theirs)]
    if len(tables[0]) != len(tables[1]) or not tables[0]:
        return [(None, [len(t) for t in tables])]
    out = []
    for k, (a, b) in enumerate(zip(*tables, strict=True)):
        keys = {key for key, v in b.items() if isinstance(v, float) and "seconds" not in key}
        bad = numbers_match({key: a.get(key) for key in keys}, {key: b[key] for key in keys})
        if bad or not keys:
            out.append((k, bad))
    return out
