"""A sweep's jobs grouped into packs (normlab.pack.packable), at most max_members each."""

import torch

from normlab.config import ConfigError, load_settings
from normlab.pack.packable import pack_key, pack_refusal


def default_max_members(gib: float | None = None) -> int:
    """Runs per pack when hydra.launcher.max_members is null: on a GPU of `gib` GiB (None:
    this machine's GPU) one per 2 GiB of its memory, at most 64 (an H200's 139 GiB: 64); on
    the CPU 16."""
    if gib is None and torch.cuda.is_available():
        gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    if gib is None:
        return 16
    return max(1, min(64, int(gib // 2)))


def plan_packs(jobs: dict[int, dict], max_members: int | None = None):
    """(packs, alone): packs, lists of job numbers, each of at least 2 jobs, in sweep order;
    alone, job number -> why it runs alone. `jobs`: number -> {"cfg": its task config, ...}."""
    if max_members is not None and max_members < 1:
        raise ConfigError(
            f"hydra.launcher.max_members={max_members}; allowed: an integer >= 1 or null"
        )
    limit = max_members or default_max_members()
    groups: dict[tuple, list[int]] = {}
    alone: dict[int, str] = {}
    for i, job in jobs.items():
        try:
            s = load_settings(job["cfg"])
        except ConfigError as error:
            alone[i] = f"its settings are refused ({error})"
            continue
        reason = pack_refusal(s)
        if reason:
            alone[i] = reason
            continue
        try:
            groups.setdefault(pack_key(s), []).append(i)
        except (ValueError, RuntimeError) as error:  # its model cannot be built
            alone[i] = f"its model cannot be built ({error})"
    packs = []
    for members in groups.values():
        for start in range(0, len(members), limit):
            chunk = members[start : start + limit]
            if len(chunk) == 1:
                alone[chunk[0]] = "no other job of the sweep shares its pack settings"
            else:
                packs.append(chunk)
    return packs, alone


__all__ = ["default_max_members", "plan_packs"]
