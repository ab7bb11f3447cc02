"""Packed runs end to end: each member's folder records what its solo run records; a diverging
member stops alone; a killed pack resumes exactly; hydra/launcher=packed packs what it can."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from normlab.config import load_settings
from normlab.pack.run import Member, run_pack
from normlab.run.fit import run
from tests.configs import compose
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.runs import REPO, tiny_overrides

# machine: where a job ran, not what it computed (a submitit job gets its share of the cores)
VARIES = {"fit_seconds", "packed_with", "overrides", "best_checkpoint", "machine"}
FLOAT64 = ["callbacks=none", "trainer.precision=64-true", "trainer.max_epochs=2",
           "data.batch_size=4"]  # fmt: skip


def numbers_match(a: dict, b: dict, tolerance: float = 1e-9) -> list[str]:
    """The keys (but VARIES) whose values differ by more than `tolerance`, or exist once."""
    bad = sorted((set(a) ^ set(b)) - VARIES)
    for key in (set(a) & set(b)) - VARIES:
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float):
            if not (abs(x - y) <= tolerance or (x != x and y != y)):  # NaN: absent in both
                bad.append(key)
        elif x != y:
            bad.append(key)
    return bad


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each tag's (step, value) points in the order they were written. (A run writes several
    event files; their names sort by second, then by a per-process counter as text, so ...9
    comes after ...10 within one second, and the reader's file order is not the write order.)"""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {t: [(e.step, e.value) for e in sorted(events.Scalars(t), key=lambda e: e.wall_time)]
            for t in events.Tags()["scalars"]}  # fmt: skip


def pack_and_solo(tmp_path, base, variants):
    members = [Member(load_settings(compose(base + v)), tmp_path / f"packed{k}", v)
               for k, v in enumerate(variants)]  # fmt: skip
    packed = run_pack(members, tmp_path / "packs")
    solo = [run(compose(base + v), run_dir=tmp_path / f"solo{k}") for k, v in enumerate(variants)]
    return packed, solo


def test_a_compiled_pack_trains_as_the_eager_pack(tmp_path, caplog):
    """compile=true over the pack's vmapped step (inductor, on the CPU): each member's record
    equals the eager pack's member's, whose equal to its solo run the test below holds (float64;
    to 1e-6, as inductor may order a reduction otherwise)."""
    base = tiny_overrides(tmp_path) + FLOAT64 + ["norm=batch"]
    variants = [["seed=0"], ["seed=1", "optim.base_lr=0.3"]]
    records = {}
    for name, setting in (("eager", "compile=false"), ("compiled", "compile=true")):
        members = [Member(load_settings(compose([*base, setting, *v])), tmp_path / f"{name}{k}", v)
                   for k, v in enumerate(variants)]  # fmt: skip
        with caplog.at_level("INFO", logger="normlab.run.fit"):
            records[name] = run_pack(members, tmp_path / f"{name}-packs")
    assert caplog.text.count("compile: torch.compile") == 1  # the compiled pack's only
    for compiled, eager in zip(records["compiled"], records["eager"], strict=True):
        assert compiled.metrics["status"] == "finished" and compiled.metrics["steps"] > 0
        assert compiled.metrics["settings"]["compile"] is True
        differs = sorted(numbers_match(compiled.metrics, eager.metrics, tolerance=1e-6))
        assert differs == ["identity", "settings"]  # compile: true against false, no number


@pytest.mark.parametrize(
    "norm", [["norm=batch"], ["norm=group", "model.weight_standardization=true"]]
)
def test_each_member_records_what_its_solo_run_records(norm, tmp_path):
    """Members differing in seed, in lr, and in a norm option: metrics.json, TensorBoard scalars
    and best.ckpt equal their solo runs' (float64, to 1e-9)."""
    option = "norm.momentum=0.3" if norm == ["norm=batch"] else "norm.eps=0.001"
    variants = [["seed=0"], ["seed=1", "optim.base_lr=0.3"], ["seed=2", option]]
    packed, solo = pack_and_solo(tmp_path, tiny_overrides(tmp_path) + FLOAT64 + norm, variants)
    for k, (p, s) in enumerate(zip(packed, solo, strict=True)):
        assert p.metrics["status"] == s.metrics["status"] == "finished"
        assert p.metrics["packed_with"]["members"] == 3 and p.metrics["packed_with"]["index"] == k
        pack_folder = p.run_dir / p.metrics["packed_with"]["folder"]  # relative: the sweep moves
        assert not Path(p.metrics["packed_with"]["folder"]).is_absolute() and pack_folder.is_dir()
        assert numbers_match(p.metrics, s.metrics) == []
        ours, theirs = scalars(p.run_dir), scalars(s.run_dir)
        assert ours.keys() == theirs.keys()
        for tag in ours:
            assert [step for step, _ in ours[tag]] == [step for step, _ in theirs[tag]], tag
            assert values(ours[tag]) == pytest.approx(values(theirs[tag]), abs=1e-6), tag  # f32
        best = [torch.load(r.run_dir / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
                for r in (p, s)]  # fmt: skip
        assert best[0].keys() == best[1].keys()
        for key in best[0]:
            assert torch.allclose(best[0][key], best[1][key], rtol=0, atol=1e-10), key


def test_each_member_is_measured_by_the_statistics_callbacks_as_its_solo_run(tmp_path):
    """callbacks=default (drift every 2 steps, gap, PreciseBN at the last epoch): each member's
    drift, gap and precise scalars, histograms and metrics.json equal its solo run's (float64);
    BN members differ in seed, lr and momentum. A member is never measured on another's state:
    member 1's values differ from member 0's solo run's."""
    base = [*tiny_overrides(tmp_path), *FLOAT64[1:], "norm=batch", "callbacks=default",
            "callbacks.drift.every_n_steps=2"]  # fmt: skip
    variants = [["seed=0"], ["seed=1", "optim.base_lr=0.3"], ["seed=2", "norm.momentum=0.3"]]
    packed, solo = pack_and_solo(tmp_path, base, variants)
    for p, s in zip(packed, solo, strict=True):
        assert p.metrics["status"] == s.metrics["status"] == "finished"
        assert numbers_match(p.metrics, s.metrics) == []
        ours, theirs = scalars(p.run_dir), scalars(s.run_dir)
        assert ours.keys() == theirs.keys()
        groups = ("z_drift", "z_gap", "z_precise", "z_stats")
        measured = [t for t in ours if t.startswith(tuple(g + "/" for g in groups))]
        assert {t.split("/")[0] for t in measured} == set(groups)
        for tag in ours:
            assert [step for step, _ in ours[tag]] == [step for step, _ in theirs[tag]], tag
            assert values(ours[tag]) == pytest.approx(values(theirs[tag]), abs=1e-6), tag
        assert histograms(p.run_dir) == histograms(s.run_dir) != {}
    crossed = scalars(packed[1].run_dir)["z_stats/drift_mean_to_batch_mean"]
    solo_0 = scalars(solo[0].run_dir)["z_stats/drift_mean_to_batch_mean"]
    assert values(crossed) != pytest.approx(values(solo_0))


def values(points: list[tuple[int, float]]) -> list[float]:
    """A tag's values without their steps (pytest.approx takes no nested structures)."""
    return [value for _, value in points]


def histograms(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir), size_guidance={"histograms": 0})
    events.Reload()
    return {t: [(e.step, round(e.histogram_value.sum, 9)) for e in events.Histograms(t)]
            for t in events.Tags()["histograms"]}  # fmt: skip


@pytest.mark.slow
def test_members_read_per_image_data_in_default_workers_as_their_solo_runs(tmp_path):
    """data.resident=false with the default DataLoader workers: each member's own loader."""
    base = [o for o in tiny_overrides(tmp_path) if not o.startswith("data.num_workers")]
    base += [*FLOAT64, "norm=batch", "data.resident=false"]
    packed, solo = pack_and_solo(tmp_path, base, [["seed=0"], ["seed=1"]])
    for p, s in zip(packed, solo, strict=True):
        assert p.metrics["status"] == s.metrics["status"] == "finished"
        assert numbers_match(p.metrics, s.metrics) == []


def test_a_diverging_member_is_recorded_diverged_and_the_others_go_on(tmp_path):
    base = tiny_overrides(tmp_path) + FLOAT64 + ["norm=batch"]
    variants = [["seed=0"], ["seed=0", "optim.base_lr=1e9"], ["seed=1"]]
    members = [Member(load_settings(compose(base + v)), tmp_path / f"packed{k}", v)
               for k, v in enumerate(variants)]  # fmt: skip
    packed = run_pack(members, tmp_path / "packs")
    assert packed[1].metrics["status"] == "diverged"
    assert packed[1].metrics["step"] <= packed[1].metrics["steps"]
    for k in (0, 2):
        solo = run(compose(base + variants[k]), run_dir=tmp_path / f"solo{k}").metrics
        assert packed[k].metrics["status"] == "finished"
        assert numbers_match(packed[k].metrics, solo) == []


def sweep(*overrides, script=("train.py",), check=True):
    command = [sys.executable, *script, "-m", *overrides]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def member_bytes(sweep_dir: Path) -> dict[str, bytes]:
    """Every file of the sweep's member folders (not its .packs/ nor Hydra's multirun.yaml)."""
    return {str(p.relative_to(sweep_dir)): p.read_bytes() for p in sweep_dir.glob("*/**/*")
            if p.is_file() and not p.relative_to(sweep_dir).parts[0].startswith(".")}  # fmt: skip


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def test_a_job_that_cannot_be_packed_is_said_in_one_line_and_runs_alone(tmp_path):
    """A torchvision model (not packed yet): each job runs alone, as under the basic launcher,
    said in one line each; the cnn's jobs, statistics callbacks on, share one pack."""
    base = [*tiny_overrides(tmp_path), "hydra/launcher=packed", "seed=0,1"]
    alone = sweep(*base, "model=torchvision", "model.arch=mobilenet_v3_small",
                  f"hydra.sweep.dir={tmp_path / 'alone'}")  # fmt: skip
    log = alone.stdout + alone.stderr
    assert log.count("runs alone: model=torchvision is not tested in packs yet") == 2
    done = records(tmp_path / "alone")
    assert len(done) == 2 and all(r["status"] == "finished" for r in done.values())
    assert all("packed_with" not in r for r in done.values())
    sweep(*base, f"hydra.sweep.dir={tmp_path / 'packed'}")
    done = records(tmp_path / "packed")
    assert len(done) == 2 and all(r["status"] == "finished" for r in done.values())
    assert len({r["packed_with"]["pack"] for r in done.values()}) == 1
    assert all("gap_generalization" in r and "precise_distance_mean" in r for r in done.values())


@pytest.mark.slow
def test_a_killed_pack_resumes_every_member_exactly(tmp_path):
    """Killed (SIGKILL) half-way through its second epoch and launched again, a pack ends with
    every member's record (drift's values included: its reference buffers are in last.ckpt),
    best weights and the pack's state as an uninterrupted pack's."""
    data = write_tiny_cifar10(tmp_path / "data", per_batch=24)  # 20 steps an epoch
    args = ["hydra/launcher=packed", "trainer=cpu", "model=cnn", "norm=batch", "callbacks=none",
            "callbacks.drift.enabled=true", "callbacks.drift.every_n_steps=10",
            "data.batch_size=4", "data.val_size=40",
            "data.verify_checksums=false", "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
            "trainer.deterministic=true", f"data.root={data}", "seed=0,1",
            "optim.base_lr=0.1"]  # fmt: skip
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    sweep(*args, f"hydra.sweep.dir={whole}")
    cut = sweep(
        *args, f"hydra.sweep.dir={killed}", script=("tests/kill_at.py", "mid_epoch"), check=False
    )
    assert cut.returncode == -9, cut.stderr[-3000:]
    assert {r["status"] for r in records(killed).values()} == {"running"}  # bound from the start
    # relaunched with another lr, the unfinished members are refused, naming the key, and their
    # folders are left byte for byte (.hydra/ included); no pack trains (a finished run's
    # refusal: tests/trust/test_run_folder.py)
    other_lr = [a for a in args if a != "optim.base_lr=0.1"] + ["optim.base_lr=0.2"]
    files, packs = member_bytes(killed), sorted((killed / ".packs").iterdir())
    refused = sweep(*other_lr, f"hydra.sweep.dir={killed}")
    said = refused.stdout + refused.stderr
    assert "holds a running run of other settings (lr=0.003125 there, 0.00625 here" in said
    assert member_bytes(killed) == files and sorted((killed / ".packs").iterdir()) == packs
    again = sweep(*args, f"hydra.sweep.dir={killed}")
    assert "resuming from" in again.stdout + again.stderr
    ends = [records(d) for d in (whole, killed)]
    assert ends[0].keys() == ends[1].keys() and len(ends[0]) == 2
    for name in ends[0]:
        assert ends[1][name]["status"] == "finished"
        assert numbers_match(ends[1][name], ends[0][name], tolerance=0.0) == []
    lasts = [torch.load(next((d / ".packs").glob("*/checkpoints/last.ckpt")), weights_only=False)
             for d in (whole, killed)]  # fmt: skip
    assert lasts[0]["global_step"] == lasts[1]["global_step"] == 3 * 20
    for key, value in lasts[0]["state_dict"].items():
        assert torch.equal(value, lasts[1]["state_dict"][key]), key
    momentum = [[s["momentum_buffer"] for s in c["optimizer_states"][0]["state"].values()]
                for c in lasts]  # fmt: skip
    assert all(torch.equal(a, b) for a, b in zip(*momentum, strict=True))
    assert lasts[0]["lr_schedulers"] == lasts[1]["lr_schedulers"]


def test_a_solo_run_never_resumes_from_a_packed_member_s_weights(tmp_path):
    """A packed member's best.ckpt has no optimizer or loop state: a solo run started in that
    folder (after its pack was killed) starts from the beginning, not from it."""
    from normlab.run.resume import checkpoint_to_resume

    path = tmp_path / "checkpoints" / "best.ckpt"
    path.parent.mkdir()
    torch.save({"state_dict": {}, "global_step": 7, "packed_with": "pack-x"}, path)
    assert checkpoint_to_resume(tmp_path, None) is None


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["hydra/launcher=packed", "hydra.launcher.max_members=0", "seed=0,1"],
         "error: hydra.launcher.max_members=0; allowed: an integer >= 1"),
        (["hydra/launcher=packed", "hydra.launcher.max_members=true", "seed=0,1"],
         "error: hydra.launcher.max_members=True; allowed: an integer >= 1"),
        (["hydra/launcher=packed", "seed=0,0"],
         "error: the sweep names the job seed=0 twice (jobs #0 and #1"),
        (["norm=batch,group", "seed=1,0,1"],  # Hydra's basic launcher
         "error: the sweep names the job norm=batch seed=1 twice (jobs #0 and #2"),
    ],
)  # fmt: skip
def test_a_bad_sweep_is_one_line_before_any_job_folder(tmp_path, overrides, said):
    """max_members takes integers only (true is not 1); a job named twice is refused, under
    either launcher, not run into its own folder's lock or over its own record."""
    result = sweep(*tiny_overrides(tmp_path), "callbacks=none", *overrides,
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", check=False)  # fmt: skip
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(said)
    folder = tmp_path / "sweep"
    assert not folder.exists() or not [p for p in folder.iterdir() if p.is_dir()]
