"""run_pack: K runs' settings in; one fit of their pack (normlab.run.fit.fit_members, the solo
run's fit); K solo run folders out.

Each member's folder gets what its solo run writes there: metrics.json (with ``packed_with``),
TensorBoard events under the solo tags, hparams.yaml, checkpoints/best.ckpt. The pack's own
last.ckpt (every member's state, optimizer, loops) is in its folder under `pack_root`, which a
relaunch of the same pack resumes from.
"""

import logging
import os
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import pytorch_lightning as pl

from normlab import metric_names as names
from normlab.config import ConfigError, load_settings
from normlab.data import dataset_spec
from normlab.metric_names import json_key
from normlab.module import Classifier
from normlab.pack.data import PackedData
from normlab.pack.model import PackedModel
from normlab.pack.packable import pack_refusal, require_one_pack
from normlab.run.build import build_module
from normlab.run.fit import failure_recorded, fit_members, fit_solo, run
from normlab.run.identity import RunIdentity, identity_hash
from normlab.run.job import Member
from normlab.run.lock import run_folder_lock
from normlab.run.record import RunRecord, finished_record

log = logging.getLogger(__name__)


def pack_identity(identities: list[RunIdentity]) -> RunIdentity:
    settings = {"members": [i.hash for i in identities]}
    return RunIdentity(settings, identity_hash(settings))


def build_pack(members: list[Member]) -> Classifier:
    """Each member's model as its solo run builds it (seeded by its seed), packed."""
    models, lrs = [], []
    for m in members:
        pl.seed_everything(m.settings.seed, workers=True, verbose=False)
        solo = build_module(m.settings)
        models.append(solo.model)
        lrs.extend(solo.lrs)
    spec = dataset_spec(members[0].settings.data.name)
    optims = [m.settings.optim for m in members]
    return Classifier(PackedModel(models), spec.num_classes, lrs, optims)


def run_pack(members: list[Member], pack_root: Path, job: dict | None = None) -> list[RunRecord]:
    """Train `members` as one pack, in a folder of `pack_root` named by the members' settings;
    each member's record, as run() returns it. Members whose folders hold a finished run of
    their settings are returned as they are, not trained. `job`: the worker's job that runs
    the pack (executor, id, devices), named in each member's ``packed_with``."""
    for m in members:
        reason = pack_refusal(m.settings)
        if reason:
            raise ConfigError(f"{m.run_dir} cannot be packed: {reason}")
    require_one_pack([m.settings for m in members])
    records: dict[int, RunRecord] = {}
    with ExitStack() as locks:
        for m in members:
            locks.enter_context(run_folder_lock(m.run_dir))
        todo = []
        for k, m in enumerate(members):
            done = finished_record(m.run_dir, m.identity)
            if done is not None:
                records[k] = RunRecord(m.run_dir, done)
            else:
                todo.append(k)
        if todo:
            trained = train_pack([members[k] for k in todo], pack_root, job)
            records.update(zip(todo, trained, strict=True))
    return [records[k] for k in range(len(members))]


def train_pack(members: list[Member], pack_root: Path, job: dict | None) -> list[RunRecord]:
    if len(members) == 1:  # the others finished: it trains as its solo run, in its folder
        return [fit_solo(members[0])]
    s, pack = members[0].settings, pack_identity([m.identity for m in members])
    name = f"pack-{pack.hash}"
    pack_dir = Path(pack_root) / name
    pack_dir.mkdir(parents=True, exist_ok=True)
    members = [m.with_extra(packed_with=packed_with(name, len(members), k, pack_dir, m.run_dir,
                                                    job))
               for k, m in enumerate(members)]  # fmt: skip
    log.info("pack %s: %d members of norm %s, model %s, batch %d, in %s", name, len(members),
             s.norm_name, s.model.name, s.data.batch_size, pack_dir)  # fmt: skip
    module = build_pack(members)
    data = PackedData([m.settings.seed for m in members], **asdict(s.data))
    return fit_members(members, module, data, pack_dir, pack)


def packed_with(name: str, size: int, k: int, pack_dir: Path, run_dir: Path, job=None) -> dict:
    """A member record's ``packed_with``: its pack, the pack's size, its index, the pack's
    folder relative to the member's (../.packs/<pack>: it moves with the sweep), and the job
    that ran it (under an executor other than inprocess)."""
    folder = os.path.relpath(pack_dir, run_dir)
    out = {"pack": name, "members": size, "index": k, "folder": folder}
    return out if job is None else {**out, "job": job}


def run_members(jobs: list[dict], pack_root: Path, job: dict | None = None) -> list[float]:
    """run_pack for a sweep's jobs ({"cfg", "run_dir", "overrides"} each), in a folder of
    `pack_root` named by the pack (one job: its solo run, in its folder); each member's final
    validation accuracy, as run_and_record returns it. A failing pack is logged and recorded as
    failed in each member's folder (over no finished record), and the sweep goes on."""
    members = []
    try:
        members = [Member(load_settings(j["cfg"]), j["run_dir"], j["overrides"]) for j in jobs]
        if len(members) == 1:
            m = members[0]
            records = [run(m.settings, m.run_dir, m.overrides)]
        else:
            records = run_pack(members, pack_root, job)
    except Exception as raised:
        known = {m.run_dir: m.settings for m in members}
        runs = [(Path(j["run_dir"]), known.get(Path(j["run_dir"]))) for j in jobs]
        message, expected = failure_recorded(raised, pack_root, runs)
        log.error("pack failed, the sweep goes on: %s", message, exc_info=not expected)
        return [float("nan")] * len(jobs)
    return [r.metrics.get(json_key(names.VAL_ACC), float("nan")) for r in records]


__all__ = ["Member", "run_members", "run_pack"]
