"""A pack and its members' solo runs, trained side by side for a few SGD steps on random data."""

import torch
from torch import nn

from normlab.models import build_model
from normlab.norms import norm_factory
from normlab.optim import OptimSettings, grouped_sgd_with_schedule
from normlab.pack.model import PackedModel

# The norms of the contract, each with options that make a few steps exercise it: Batch
# Renorm's ramp starts at once, Ghost BN splits the batch of 4 into 2 chunks.
NORMS = {
    "batch": ("batch", {}, False),
    "group": ("group", {"num_groups": 4}, False),
    "layer": ("layer", {}, False),
    "instance": ("instance", {}, False),
    "batch_renorm": ("batch_renorm", {"warmup_steps": 1, "ramp_steps": 2}, False),
    "ghost_batch": ("ghost_batch", {"virtual_batch_size": 2}, False),
    "frn": ("frn", {}, False),
    "group_ws": ("group", {"num_groups": 4}, True),
}
# How members differ: each member is (seed, lr, norm option overrides).
OPTION = {"batch": {"momentum": 0.3}, "instance": {"eps": 1e-3}, "group": {"eps": 1e-3},
          "group_ws": {"eps": 1e-3}, "layer": {"eps": 1e-3}, "batch_renorm": {"r_max": 1.5},
          "ghost_batch": {"momentum": 0.3}, "frn": {"eps": 1e-3}}  # fmt: skip
BATCH, STEPS, SIZE = 4, 4, 12


def build(norm: str, seed: int, options: dict, dtype, overrides=None):
    name, base, ws = NORMS[norm]
    torch.manual_seed(seed)
    model = build_model("cnn", norm_factory(name, **{**base, **(overrides or {})}),
                        in_channels=1, num_classes=10, image_size=SIZE, width=4,
                        weight_standardization=ws)  # fmt: skip
    return model.to(dtype)


def batches(seed: int, dtype, perturb: float = 0.0, noise: int = 0):
    g = torch.Generator().manual_seed(1000 + seed)
    noise_g = torch.Generator().manual_seed(
        2000 + 10 * seed + noise
    )  # its own: the batches stay the same
    out = []
    for _ in range(STEPS):
        x = torch.randn(BATCH, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
        if perturb:
            x = x * (1 + perturb * torch.randn(x.shape, generator=noise_g, dtype=torch.float64))
        out.append((x.to(dtype), torch.randint(0, 10, (BATCH,), generator=g)))
    return out


def optimizer(groups, foreach=None):
    answer = grouped_sgd_with_schedule(groups, total_steps=STEPS, epochs=1, foreach=foreach)
    return answer["optimizer"], answer["lr_scheduler"]["scheduler"]


def settings(lr_scale: float) -> OptimSettings:
    return OptimSettings(warmup_epochs=0.5, base_lr=0.1 * lr_scale)


def train_solo(norm, member, dtype, perturb=0.0, noise=0):
    seed, lr, overrides = member
    model = build(norm, seed, {}, dtype, overrides).train()
    opt, sched = optimizer([(model.parameters(), lr, settings(1))])
    losses = []
    for x, y in batches(seed, dtype, perturb, noise):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    return torch.stack(losses), model, opt


def train_pack(norm, members, dtype):
    models = [build(norm, seed, {}, dtype, overrides) for seed, _, overrides in members]
    packed = PackedModel(models).train()
    groups = [(m.parameters(), lr, settings(1)) for m, (_, lr, _) in
              zip(packed.members, members, strict=True)]  # fmt: skip
    opt, sched = optimizer(groups, foreach=True)  # as Classifier packs  # fmt: skip
    data = [batches(seed, dtype) for seed, _, _ in members]
    losses = []
    for step in range(STEPS):
        x = torch.stack([d[step][0] for d in data])
        y = torch.stack([d[step][1] for d in data])
        logits = packed(x)
        per_member = (
            nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            .view(len(members), -1)
            .mean(1)
        )
        opt.zero_grad()
        per_member.sum().backward()
        opt.step()
        sched.step()
        losses.append(per_member.detach())
    return torch.stack(losses, 1), packed, opt


def state_of(model: nn.Module, opt, group: int = 0) -> dict:
    """A run's weights, buffers and momentum buffers, by name."""
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]
    for name, p in zip(names, opt.param_groups[group]["params"], strict=True):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            state[f"momentum.{name}"] = buf.clone()
    return state


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)
