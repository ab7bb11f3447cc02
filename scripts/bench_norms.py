"""Time forward+backward of each normlab norm layer against its torch.nn twin.

    python scripts/bench_norms.py [--device cpu|cuda|all] [--repeats 20]

Prints one table per device: milliseconds per forward+backward (median of repeats) and the ratio
normlab / torch. There is no speed goal here; the numbers show where the plain-tensor-op layers
stand against torch's fused kernels.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from normlab import norms

SHAPES = [(n, c, s) for n in (2, 32, 128) for c in (16, 64, 256) for s in (32, 16, 8)]
LAYERS = {
    "batch": (norms.BatchNorm2d, nn.BatchNorm2d, lambda c: (c,)),
    "group": (norms.GroupNorm, nn.GroupNorm, lambda c: (min(32, c), c)),
    "instance": (norms.InstanceNorm2d, nn.InstanceNorm2d, lambda c: (c,)),
    "layer": (norms.LayerNorm, nn.LayerNorm, None),
}


def time_ms(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    grad = torch.randn_like(x)

    def step():
        x.grad = None
        layer(x).backward(grad)

    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def too_big_for_cpu(n: int, c: int, s: int) -> bool:
    return n * c * s * s > 128 * 64 * 32 * 32


def bench(device: str, repeats: int) -> None:
    print(
        f"\n## {device}: {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, fwd+bwd ms"
    )
    print("| norm | N | C | HxW | normlab ms | torch ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, (ours_cls, ref_cls, args_of) in LAYERS.items():
        for n, c, s in SHAPES:
            if device == "cpu" and too_big_for_cpu(n, c, s):
                continue
            args = args_of(c) if args_of else ((c, s, s),)
            x = torch.randn(n, c, s, s, device=device, requires_grad=True)
            ours = ours_cls(*args, device=device)
            ref = ref_cls(*args, device=device)
            t_ours, t_ref = time_ms(ours, x, repeats), time_ms(ref, x, repeats)
            print(
                f"| {name} | {n} | {c} | {s}x{s} | {t_ours:.3f} | {t_ref:.3f} "
                f"| {t_ours / t_ref:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("\n## cuda: not available, skipped")
            continue
        bench(device, args.repeats)


if __name__ == "__main__":
    main()
