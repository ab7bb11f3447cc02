"""A run folder is bound to its settings, held by one process, and its record is written
whole: tried as a careless user would, with train.py and run()."""

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from normlab.errors import ConfigError
from normlab.report import collect
from normlab.run.lock import RunFolderBusy, run_folder_lock
from tests.runs import tiny_overrides, train, train_here

pytestmark = pytest.mark.slow


def record(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def folder_bytes(folder) -> dict[str, bytes]:
    """Every file under `folder` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_a_finished_folder_relaunched_with_another_config_is_refused_and_kept(tmp_path):
    run_dir = tmp_path / "run"
    base = [*tiny_overrides(tmp_path), f"hydra.run.dir={run_dir}"]
    train(*base, "norm=batch", "data.batch_size=8")
    before = record(run_dir)
    assert before["status"] == "finished" and before["settings"]["norm.name"] == "batch"
    assert before["settings"]["trainer.precision"] == "32-true" and "compile" in before["settings"]
    assert before["best_checkpoint"] == os.path.join("checkpoints", "best.ckpt")

    files = folder_bytes(run_dir)
    line = one_error_line(train(*base, "norm=group", "data.batch_size=8", check=False))
    assert "holds a finished run of other settings" in line and "norm.name=batch there" in line
    line = one_error_line(train(*base, "norm=batch", "data.batch_size=8",
                                "trainer.precision=64-true", check=False))  # fmt: skip
    assert "trainer.precision=32-true there, 64-true here" in line
    assert folder_bytes(run_dir) == files  # .hydra/ and the log included: nothing changed
    (row,) = collect(tmp_path / "run")
    assert (row["norm"], row["status"], row["batch_size"]) == ("batch", "finished", 8)

    # the same settings: skipped, and the record is unchanged
    result = train(*base, "norm=batch", "data.batch_size=8")
    assert "already finished" in result.stdout + result.stderr
    assert record(run_dir) == before


def test_a_checkpoint_of_another_config_is_refused_naming_the_keys(tmp_path):
    first = tmp_path / "first"
    record_a = train_here(*tiny_overrides(tmp_path), "norm=batch", "data.batch_size=8",
                          run_dir=first).metrics  # fmt: skip
    assert record_a["status"] == "finished"
    last = first / "checkpoints" / "last.ckpt"
    # another norm's checkpoint as ckpt_path, from a new folder
    with pytest.raises(ConfigError) as error:
        train_here(*tiny_overrides(tmp_path), "norm=group", "data.batch_size=8",
                   f"ckpt_path={last}", run_dir=tmp_path / "second")  # fmt: skip
    assert "norm.name=batch there, group here" in str(error.value)
    assert "\n" not in str(error.value)
    # a checkpoint of another model that carries no identity: its weights do not fit
    foreign = torch.load(last, weights_only=True)
    del foreign["normlab_identity"]
    foreign["state_dict"] = {"model.fc.weight": torch.zeros(3, 3)}
    torch.save(foreign, tmp_path / "foreign.ckpt")
    with pytest.raises(ConfigError, match=r"does not fit this model \(missing: ") as error:
        foreign = tmp_path / "foreign.ckpt"
        train_here(*tiny_overrides(tmp_path), "norm=batch", "data.batch_size=8",
                   f"ckpt_path={foreign}", run_dir=tmp_path / "third")  # fmt: skip
    assert "\n" not in str(error.value)


def test_a_failed_ckpt_path_attempt_keeps_the_finished_record(tmp_path):
    run_dir = tmp_path / "run"
    base = [*tiny_overrides(tmp_path), "norm=group", f"hydra.run.dir={run_dir}"]
    train(*base)
    before = record(run_dir)
    (tmp_path / "evil.ckpt").write_bytes(b"not a checkpoint")
    line = one_error_line(train(*base, f"ckpt_path={tmp_path / 'evil.ckpt'}", check=False))
    assert "evil.ckpt cannot be read" in line
    assert record(run_dir) == before


def test_a_second_launch_of_a_held_folder_says_so_in_one_line_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from normlab.run.lock import run_folder_lock\n"
         f"with run_folder_lock(Path({str(run_dir)!r})):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = train(*tiny_overrides(tmp_path), f"hydra.run.dir={run_dir}", check=False)
        line = one_error_line(result)
        assert "the run is already going" in line and str(holder.pid) in line
        assert not (run_dir / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # killed with its lock held: the lock is gone with it, and the folder trains
    assert record(train_here(*tiny_overrides(tmp_path), run_dir=run_dir).run_dir)["status"] == (
        "finished"
    )


def test_the_lock_is_one_holder_at_a_time_and_released_on_exit(tmp_path):
    with (
        run_folder_lock(tmp_path),
        pytest.raises(RunFolderBusy, match="already going"),
        run_folder_lock(tmp_path),
    ):
        pass
    with run_folder_lock(tmp_path):  # released
        pass


def test_a_cut_record_is_one_line_on_relaunch_and_the_run_trains_again(tmp_path):
    run_dir = tmp_path / "run"
    base = [*tiny_overrides(tmp_path), f"hydra.run.dir={run_dir}"]
    train(*base)
    text = (run_dir / "metrics.json").read_text()
    (run_dir / "metrics.json").write_text(text[: len(text) // 2])
    (run_dir / "checkpoints" / "last.ckpt").unlink()
    (run_dir / "checkpoints" / "best.ckpt").unlink()
    result = train(*base)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "metrics.json cannot be read (JSONDecodeError" in output
    assert record(run_dir)["status"] == "finished"


def test_a_diverging_run_is_caught_at_validation_and_leaves_no_nan_checkpoint(tmp_path):
    """lr 1e9: the training loss under batch statistics stays finite; the weights do not."""
    run_dir = tmp_path / "run"
    metrics = train_here(*tiny_overrides(tmp_path), "optim.base_lr=1e9", "trainer.max_epochs=3",
                         run_dir=run_dir).metrics  # fmt: skip
    assert metrics["status"] == "diverged"
    assert metrics["step"] >= 1
    for path in (run_dir / "checkpoints").glob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), path


def test_hostile_names_stay_inside_the_output_root(tmp_path):
    out = tmp_path / "deep" / "er" / "out"
    base = [f"paths.root={out}", "data.download=false"]
    started = time.time()
    for value in ("../../../../x", "a/b", "😀" * 70):
        result = train(*base, f"data.name='{value}'", check=False)
        assert one_error_line(result).startswith("error: data.name=")
    outside = [p for p in tmp_path.rglob("*") if out not in (p, *p.parents)]
    assert {p.relative_to(tmp_path).as_posix() for p in outside} == {"deep", "deep/er"}
    made = sorted(p.name for p in (out / "runs").iterdir())
    assert len(made) == 3 and all("/" not in n and ".." not in n for n in made)
    assert all(len(n.encode()) <= 80 for n in made)
    assert all(p.stat().st_mtime >= started - 1 for p in (out / "runs").iterdir())


@pytest.fixture
def tiny_disk(tmp_path):
    """A 400 KiB tmpfs where this machine lets the test mount one (root), else None."""
    mount_point = tmp_path / "tiny_disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs",
                              str(mount_point)], capture_output=True)  # fmt: skip
    yield mount_point if mounted.returncode == 0 else None
    if mounted.returncode == 0:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_is_one_line_naming_the_folder_and_leaves_no_torn_file(
    tmp_path, tiny_disk, monkeypatch
):
    """The run's checkpoint does not fit: exit 2, one line naming the folder and "no space left
    on device" (not torch's "enforce fail at inline_container.cc"), the same in the record, and
    no partial file. Without a tmpfs, torch.save is made to fail as it does on a full disk."""
    if tiny_disk is not None:
        result = train(*tiny_overrides(tmp_path), f"paths.root={tiny_disk / 'out'}", check=False)
        line = one_error_line(result)
        (run_dir,) = (tiny_disk / "out" / "runs").iterdir()
    else:
        import normlab.atomic_write as atomic
        import normlab.run.resume as resume
        from tests.configs import compose

        def enforce_fail(*args, **kwargs):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")

        monkeypatch.setattr(resume.torch, "save", enforce_fail)
        monkeypatch.setattr(atomic, "NEARLY_FULL", float("inf"))
        from normlab.run.fit import run_and_record

        run_dir = tmp_path / "out" / "runs" / "direct"
        with pytest.raises(SystemExit) as exit_code:
            run_and_record(compose(tiny_overrides(tmp_path)))
        assert exit_code.value.code == 2
        line = f"error: {record(run_dir)['error']}"
    assert "no space left on device (writing best.ckpt)" in line and str(run_dir) in line
    assert "enforce fail" not in line and record(run_dir)["status"] == "failed"
    assert not [p for p in run_dir.rglob(".*ckpt*")]  # no partial checkpoint left
