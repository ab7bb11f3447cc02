"""The `compile` setting: the model under torch.compile, its steps captured as CUDA graphs on a GPU.

- ``false``: eager, op by op.
- ``true``: ``nn.Module.compile`` in place (state_dict keys, checkpoints and buffers unchanged),
  with static shapes (training batches are full: drop_last). On CUDA with
  ``mode="reduce-overhead"``: forward and backward are replayed as CUDA graphs, one launch each.
- ``auto``: true on CUDA, false on the CPU, where compiling (~10–30 s per graph on 2 cores,
  and a graph for training, one for validation, one per partial batch shape) costs more than a
  short run saves.

A compiled model ignores forward hooks added after it was compiled; statistics probes run the
model's own forward through ``Classifier.eager()`` (in a pack, on the members' own, uncompiled
modules). A pack compiles its vmapped step with inductor on the CPU; on CUDA it is refused
until it is checked there (normlab.pack.packable).
"""

import torch
from torch import nn


def device_type_of(accelerator: str) -> str:
    """The device a run of `trainer.accelerator` trains on here: cuda or cpu."""
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "cuda" if gpu else "cpu"


def compile_enabled(setting, device_type: str) -> bool:
    if setting == "auto":
        return device_type == "cuda"
    return bool(setting)


def compile_mode(device_type: str) -> str | None:
    """reduce-overhead (CUDA graphs) on CUDA; inductor's default elsewhere."""
    return "reduce-overhead" if device_type == "cuda" else None


def compile_model(model: nn.Module, device_type: str) -> None:
    """Compiles `model` in place for `device_type`."""
    model.compile(mode=compile_mode(device_type), dynamic=False)
