"""SyncBN (norm.sync=true): two processes (gloo, CPU) each holding part of a batch compute what
one process computes on the whole batch: outputs, input and parameter gradients, buffers."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from normlab import norms
from tests.norms.twins import assert_close

F64 = torch.float64
C = 3


def layers(kind: str):
    """The layer under test and its single-process reference, with equal random affine."""
    torch.manual_seed(1)
    if kind == "batch":
        ours, ref = norms.BatchNorm2d(C, dtype=F64), torch.nn.BatchNorm2d(C, dtype=F64)
    else:
        options = dict(r_max=1.5, d_max=0.5, warmup_steps=0, ramp_steps=0, dtype=F64)
        ours, ref = norms.BatchRenorm2d(C, **options), norms.BatchRenorm2d(C, **options)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn_like(p))
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def data(sizes, step: int):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(sum(sizes), C, 3, 2, dtype=F64, generator=g) * 3 + 2
    return x, torch.randn(x.shape, dtype=F64, generator=g)


def rank_main(rank: int, world: int, init_file: str, kind: str, sizes, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    layer, _ = layers(kind)
    layer.sync = True
    start = sum(sizes[:rank])
    results = []
    for step in range(2):  # the second step sees the running statistics the first one left
        x, dy = data(sizes, step)
        x = x[start : start + sizes[rank]].clone().requires_grad_(True)
        y = layer(x)
        y.backward(dy[start : start + sizes[rank]])
        results.append({"y": y.detach(), "dx": x.grad, "dw": layer.weight.grad.clone(),
                        "db": layer.bias.grad.clone(),
                        **{k: v.clone() for k, v in layer.state_dict().items()}})  # fmt: skip
        layer.zero_grad()
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # spawns processes: the full suite runs it
@pytest.mark.parametrize("sizes", [(4, 4), (3, 5)], ids=["even", "uneven"])
@pytest.mark.parametrize("kind", ["batch", "batch_renorm"])
def test_two_ranks_compute_what_one_process_computes_on_the_whole_batch(kind, sizes, tmp_path):
    mp.spawn(rank_main, args=(2, str(tmp_path / "init"), kind, sizes, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    _, ref = layers(kind)
    for step in range(2):
        x, dy = data(sizes, step)
        x.requires_grad_(True)
        y = ref(x)
        y.backward(dy)
        got = [r[step] for r in ranks]
        assert_close(torch.cat([g["y"] for g in got]), y, 1e-10, "output")
        assert_close(torch.cat([g["dx"] for g in got]), x.grad, 1e-10, "input grad")
        # Each rank holds its own sums; DDP's gradient all-reduce adds (then averages) them.
        assert_close(got[0]["dw"] + got[1]["dw"], ref.weight.grad, 1e-10, "weight grad")
        assert_close(got[0]["db"] + got[1]["db"], ref.bias.grad, 1e-10, "bias grad")
        for name, value in ref.state_dict().items():
            for g in got:  # every rank's buffers equal the whole-batch ones
                if name.endswith("num_batches_tracked"):
                    assert torch.equal(g[name], value), name
                else:
                    assert_close(g[name], value, 1e-10, name)
        ref.zero_grad()
