"""Time forward+backward of each normlab norm layer against its torch.nn twin.

    python scripts/bench_norms.py [--device cpu|cuda|all] [--repeats 20]
        [--dtype float32|bfloat16] [--channels-last] [--compiled] [--norms batch group ...]

Prints one table per device: milliseconds per forward+backward (median of repeats), the ratio
normlab / torch, and each side's effective bandwidth: 5 tensor-sized transfers (forward reads x
and writes y; backward reads x or x̂ and dy, writes dx) over the time, against the device's
measured copy bandwidth (read + write of a 256 MiB tensor; 32 MiB on the CPU). With
--compiled, a column for the normlab layer under torch.compile (normlab.compile, default
mode: kernels, not CUDA graphs), on the largest shapes only. No speed goal here.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from normlab import norms
from normlab.compile import compile_model

SHAPES = [(n, c, s) for n in (2, 32, 128) for c in (16, 64, 256) for s in (32, 16, 8)]
BIG_SHAPES = [(128, 64, 32), (512, 64, 32), (512, 256, 8)]
LAYERS = {
    "batch": (norms.BatchNorm2d, nn.BatchNorm2d, lambda c: (c,)),
    "group": (norms.GroupNorm, nn.GroupNorm, lambda c: (min(32, c), c)),
    "instance": (norms.InstanceNorm2d, nn.InstanceNorm2d, lambda c: (c,)),
    "layer": (norms.LayerNorm, nn.LayerNorm, None),
}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    grad = torch.randn_like(x)

    def step():
        x.grad = None
        layer(x).backward(grad)

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        synchronize(x.device.type)
        start = time.perf_counter()
        step()
        synchronize(x.device.type)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def copy_gbps(device: str) -> float:
    """Read + write bandwidth of a large same-device copy, GB/s (best of 10)."""
    n = (256 if device == "cuda" else 32) * 2**20 // 4
    a, b = torch.randn(n, device=device), torch.empty(n, device=device)
    best = float("inf")
    for _ in range(10):
        synchronize(device)
        start = time.perf_counter()
        b.copy_(a)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * a.numel() * a.element_size() / best / 1e9


def too_big_for_cpu(n: int, c: int, s: int) -> bool:
    return n * c * s * s > 128 * 64 * 32 * 32


def bench(device: str, args) -> None:
    dtype = getattr(torch, args.dtype)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"\n## {device}: {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.dtype}{', channels_last' if args.channels_last else ''}, fwd+bwd; "
          f"copy {copy_gbps(device):.0f} GB/s")  # fmt: skip
    compiled = " compiled ms | compiled GB/s |" if args.compiled else ""
    print(f"| norm | N | C | HxW | normlab ms | torch ms | ratio | normlab GB/s | torch GB/s |"
          f"{compiled}")  # fmt: skip
    print("|---" * (9 + 2 * args.compiled) + "|")
    shapes = BIG_SHAPES if args.compiled else SHAPES
    for norm in args.norms:
        ours_cls, ref_cls, args_of = LAYERS[norm]
        for n, c, s in shapes:
            if device == "cpu" and too_big_for_cpu(n, c, s):
                continue
            layer_args = args_of(c) if args_of else ((c, s, s),)
            x = torch.randn(n, c, s, s, device=device, dtype=dtype).to(memory_format=layout)
            x.requires_grad_(True)
            ours = ours_cls(*layer_args, device=device, dtype=dtype)
            ref = ref_cls(*layer_args, device=device, dtype=dtype)
            t_ours, t_ref = time_ms(ours, x, args.repeats), time_ms(ref, x, args.repeats)
            gb = 5 * x.numel() * x.element_size() / 1e9
            row = (f"| {norm} | {n} | {c} | {s}x{s} | {t_ours:.3f} | {t_ref:.3f} "
                   f"| {t_ours / t_ref:.2f} | {gb / t_ours * 1e3:.1f} "
                   f"| {gb / t_ref * 1e3:.1f} |")  # fmt: skip
            if args.compiled:
                compile_model(ours, "cpu")  # default mode on any device: the kernels alone
                t_comp = time_ms(ours, x, args.repeats)
                row += f" {t_comp:.3f} | {gb / t_comp * 1e3:.1f} |"
            print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compiled", action="store_true")
    parser.add_argument("--norms", nargs="+", choices=list(LAYERS), default=list(LAYERS))
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n## cuda: not available, skipped")
            continue
        bench(device, args)


if __name__ == "__main__":
    main()
