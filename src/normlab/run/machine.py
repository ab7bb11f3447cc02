"""What a run ran on, recorded in its metrics.json as `machine`: two records of the same
settings whose numbers differ can be told apart by where they ran (the library builds, the
intra-op threads, the CPU or GPU). Not part of a run's identity: a run resumed elsewhere
records the machine its last session ran on."""

import os
import platform
from pathlib import Path

import pytorch_lightning as pl
import torch

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name from Linux's /proc/cpuinfo; elsewhere, what `platform` says."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The versions of Python, torch and Lightning, torch's intra-op threads, the CPU count and
    model, and, where this process used CUDA, the GPU and its CUDA version."""
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
    }
    if torch.cuda.is_initialized():
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    return info
