"""metrics.json: written whole, never through a symlink, never over a finished record, and a
cut one is 'corrupt' in the report with the rest of the table intact."""

import errno
import json
import math
import os
import platform
from types import SimpleNamespace

import pytest
import torch

from normlab.report import collect, summarize
from normlab.run import record as record_module
from normlab.run.finish import Ending, finish_run
from normlab.run.identity import RunIdentity
from normlab.run.job import Member
from normlab.run.machine import cpu_model
from normlab.run.record import RecordUnreadable, read_record, write_record
from tests.test_config import make


def hand_made_run(folder, norm: str, acc: float, seed: int) -> None:
    s = make([f"norm={norm}", f"seed={seed}", "data.batch_size=8"])
    identity = RunIdentity.of(s)
    results = {"val_acc": acc, "test_acc": acc}
    write_record(folder, {"status": "finished", **s.key_choices(), "identity": identity.hash,
                          "settings": identity.settings, **results})  # fmt: skip


def test_a_symlinked_record_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").symlink_to(target)
    write_record(tmp_path / "run", {"status": "finished"})
    assert target.read_text() == "keep me"
    assert not (tmp_path / "run" / "metrics.json").is_symlink()
    assert read_record(tmp_path / "run") == {"status": "finished"}


def test_a_write_that_fails_leaves_the_old_record_whole(tmp_path, monkeypatch):
    write_record(tmp_path, {"status": "finished", "val_acc": 0.5})

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dumps", full_disk)
    with pytest.raises(OSError):
        write_record(tmp_path, {"status": "failed"})
    assert read_record(tmp_path) == {"status": "finished", "val_acc": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left


def test_a_failure_record_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, caplog):
    def full_disk(run_dir, record):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(record_module, "write_record", full_disk)
    with caplog.at_level("ERROR"):
        record_module.record_failure(tmp_path, None, "boom")  # no second traceback
    (line,) = [r.getMessage() for r in caplog.records]
    assert "metrics.json could not be written" in line and "\n" not in line


def test_a_failure_never_overwrites_a_finished_record(tmp_path):
    write_record(tmp_path, {"status": "finished", "val_acc": 0.5})
    record_module.record_failure(tmp_path, None, "ckpt_path=x cannot be read")
    assert read_record(tmp_path)["status"] == "finished"
    write_record(tmp_path, {"status": "failed"})
    record_module.record_failure(tmp_path, None, "again")
    assert read_record(tmp_path) == {"status": "failed", "error": "again", "overrides": []}


def test_a_cut_record_is_one_line_and_corrupt_in_the_report(tmp_path):
    hand_made_run(tmp_path / "a", "batch", 0.9, 0)
    hand_made_run(tmp_path / "b", "batch", 0.8, 1)
    hand_made_run(tmp_path / "c", "group", 0.7, 0)
    text = (tmp_path / "c" / "metrics.json").read_text()
    (tmp_path / "c" / "metrics.json").write_text(text[: len(text) // 2])
    with pytest.raises(RecordUnreadable) as error:
        read_record(tmp_path / "c")
    assert "cannot be read (JSONDecodeError" in str(error.value)
    assert "\n" not in str(error.value)
    rows = {r["run"]: r for r in collect(tmp_path)}
    assert rows["c"]["status"] == "corrupt" and rows["a"]["status"] == "finished"
    assert (rows["a"]["norm"], rows["a"]["batch_size"]) == ("batch", 8)  # from the record
    summarize(tmp_path, tmp_path / "out")
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| batch | 8 | 0.00625 | 15.00 ± 7.07 [" in table  # BN's mean error over the good runs
    assert "| c | corrupt |" in table and "cannot be read (JSONDecodeError" in table


def test_a_run_that_trained_no_step_never_ends_finished(tmp_path):
    """finish_run, the end of a solo run and of each pack member: 0 steps is a failure."""
    trainer = SimpleNamespace(global_step=0, current_epoch=0, world_size=1)
    ending = Ending({}, None, None, None, fit_seconds=0.0)
    logger = SimpleNamespace(log_metrics=lambda values, step: None, save=lambda: None)
    record = finish_run(Member(make(["norm=group"]), tmp_path, []), logger, trainer, ending)
    record = record.metrics
    assert record["status"] == "failed" and record["error"] == "trained 0 steps"
    assert read_record(tmp_path)["status"] == "failed"


def strict_json(text: str):
    """json.loads as a strict parser reads: NaN and Infinity are refused."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_record_is_strict_json_and_reads_back_as_floats(tmp_path):
    record = {"status": "diverged", "train_loss": float("nan"), "val_loss": float("inf"),
              "history": [float("-inf"), 1.0], "step": 7}  # fmt: skip
    write_record(tmp_path, record)
    on_disk = strict_json((tmp_path / "metrics.json").read_text())
    assert on_disk["train_loss"] == "NaN" and on_disk["history"] == ["-Infinity", 1.0]
    back = read_record(tmp_path)
    assert math.isnan(back["train_loss"]) and back["val_loss"] == math.inf
    assert back["history"] == [-math.inf, 1.0] and back["step"] == 7


def test_the_report_reads_old_records_with_bare_nan_and_new_ones(tmp_path):
    hand_made_run(tmp_path / "new", "batch", float("nan"), 0)
    hand_made_run(tmp_path / "old", "batch", 0.5, 1)
    old = (tmp_path / "old" / "metrics.json").read_text().replace("0.5", "NaN")
    (tmp_path / "old" / "metrics.json").write_text(old)  # as records before 2026-12-03
    rows = {r["run"]: r for r in collect(tmp_path)}
    assert math.isnan(float(rows["old"]["val_acc"])) and math.isnan(float(rows["new"]["val_acc"]))
    assert rows["old"]["status"] == rows["new"]["status"] == "finished"


def test_a_record_says_what_machine_ran_it(tmp_path):
    """finish_run records the torch build and the intra-op threads the run trained with."""
    trainer = SimpleNamespace(global_step=0, current_epoch=0, world_size=1)
    logger = SimpleNamespace(log_metrics=lambda values, step: None, save=lambda: None)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ending = Ending({}, None, None, None, fit_seconds=0.0)
        finish_run(Member(make(["norm=batch"]), tmp_path, []), logger, trainer, ending)
    finally:
        torch.set_num_threads(threads)
    recorded = read_record(tmp_path)["machine"]
    assert recorded["threads"] == 1
    assert recorded["torch"] == torch.__version__ and recorded["cpus"] == os.cpu_count()
    assert recorded["cpu"] and ("gpu" in recorded) == torch.cuda.is_initialized()


def test_the_cpu_model_is_read_from_cpuinfo_or_else_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU 9000\n")
    assert cpu_model(cpuinfo) == "Some CPU 9000"
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine())
