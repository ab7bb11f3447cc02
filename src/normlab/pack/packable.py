"""Which runs can share a pack: the same everything that sets a tensor's shape or the data.

Members may differ in their seed, in every optimizer setting (lr, momentum, weight decay,
schedule) and in the values of their norm's options (eps, momentum, clips: members whose
modules differ in such a value run as sub-packs, normlab.pack.model). Everything else of the
run's identity (dataset, model, norm kind, batch size, epochs, precision, ...) and the
parameters' names and shapes must be equal.
"""

import torch

from normlab.compile import device_type_of
from normlab.config import ConfigError, Settings
from normlab.pack.model import tensor_layout
from normlab.run.build import build_module
from normlab.run.identity import RunIdentity

# Identity keys a member may have of its own (a key, or a prefix ending in ".").
FREE = ("seed", "lr", "optim.")


def free(key: str) -> bool:
    return key in FREE or key.startswith(tuple(k for k in FREE if k.endswith(".")))


def pack_key(s: Settings) -> tuple:
    """Equal for runs that can share a pack (when neither has a pack_refusal)."""
    settings = RunIdentity.of(s).settings
    shared = {
        k: v
        for k, v in settings.items()
        if not (free(k) or (k.startswith("norm.") and k != "norm.name"))
    }
    return tuple(sorted((k, repr(v)) for k, v in shared.items())), layout(s)


def layout(s: Settings) -> tuple:
    """The model's parameter and buffer names and shapes, built without memory (meta)."""
    with torch.device("meta"):
        return tensor_layout(build_module(s).model)


def pack_refusal(s: Settings) -> str | None:
    """Why `s` cannot train in a pack (one line naming the setting and what is allowed), or
    None."""
    t = s.trainer
    if t.devices not in ("auto", 1, "1", [0]) or t.strategy not in ("auto", "single_device"):
        return f"trainer.devices={t.devices}, trainer.strategy={t.strategy}; allowed: one device"
    if RunIdentity.of(s).settings["compile"] and device_type_of(t.accelerator) == "cuda":
        return (
            "compile resolves to true on CUDA here, where a pack's compiled step is not "
            "checked yet; allowed in a pack on CUDA: compile=false (on the CPU: either)"
        )
    if s.ckpt_path:
        return "ckpt_path resumes one run; allowed in a pack: none (a pack resumes itself)"
    if s.model.name in ("torchvision", "timm"):
        return f"model={s.model.name} is not tested in packs yet; allowed: cnn, resnet20, resnet18"
    return None


def require_one_pack(runs: list[Settings]) -> None:
    """ConfigError naming the first setting in which `runs` differ beyond what a pack allows."""
    first = pack_key(runs[0])
    for s in runs[1:]:
        key = pack_key(s)
        if key == first:
            continue
        if key[0] != first[0]:
            theirs, ours = dict(first[0]), dict(key[0])
            diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
            raise ConfigError(
                f"these runs cannot share a pack: they differ in {', '.join(diff)}; "
                "allowed to differ: seed, optim.*, norm option values"
            )
        raise ConfigError(
            "these runs cannot share a pack: their models' parameters differ in names or shapes"
        )


__all__ = ["FREE", "pack_key", "pack_refusal", "require_one_pack"]
