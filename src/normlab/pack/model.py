"""K runs of one model as one vectorized model: each kernel does every member's work at once.

    packed = PackedModel([model_0, ..., model_{K-1}])   # K solo models, same architecture
    logits = packed(x)       # x: (K, B, ...) one batch per member, or (B, ...) shared; (K, B, C)

The members stay the solo models they were built as: their parameters are their own leaves
(so an optimizer gives each member its own param group: its own lr, momentum, weight decay and
schedule, with torch's own SGD), and their buffers are views into one stacked tensor per
buffer, so `members[k].state_dict()` is member k's solo state at every step. The forward
stacks the parameters and calls one member's module under `torch.func.vmap` over the member
axis (`functional_call`): the norm layers run their own readable formula, per member, and
their in-place running-statistics updates land in the stacked buffers. Members whose modules
differ in a value that is no tensor (a norm's eps, momentum or clips) form sub-packs, one
vmap each.

Why vmap and not a hand-built wide model (members side by side along channels, grouped
convolutions, norms that never mix members' channels): under vmap a convolution with batched
weights *is* a grouped convolution (torch's batching rule), so the two do the same kernels,
but vmap keeps every norm layer unchanged, where the wide model would need a member-aware
twin of each. Measured on the 2-core CPU (torch 2.14.1, one thread, cnn on 28x28 input, SGD
step included, K = 16): the vmap step is 1.9x the 16 solo steps at batch 2 and 1.3x at batch 8;
torch.nn's grouped convolution in channels-last or an unfold + matmul convolution were no
faster over the cnn's three stages (`scripts/bench_pack.py` measures the whole fit).
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

EVAL_IMAGES = 2048  # images a chunk of members evaluates at once (a shared batch, eval mode)


def static_signature(module: nn.Module) -> tuple:
    """Everything but tensors that a module tree's forward may read: its members can share one
    vmapped call only when this is equal."""
    skip = {"_parameters", "_buffers", "_modules", "training"}
    out = []
    for name, sub in module.named_modules():
        plain = {
            k: repr(v)
            for k, v in vars(sub).items()
            if k not in skip and not k.startswith("_") and not isinstance(v, Tensor)
        }
        out.append((name, type(sub).__qualname__, tuple(sorted(plain.items()))))
    return tuple(out)


def tensor_layout(module: nn.Module) -> tuple:
    """Names, shapes and dtypes of a module's parameters and buffers."""
    return tuple(
        (kind, name, tuple(t.shape), t.dtype)
        for kind, items in (("p", module.named_parameters()), ("b", module.named_buffers()))
        for name, t in items
    )


class SubPack:
    """Members (by index) that share one vmapped call, their stacked buffers, and their
    parameters by name (the Parameter objects, looked up once)."""

    def __init__(self, indices: list[int]):
        self.indices = indices
        self.buffers: dict[str, Tensor] = {}
        self.params: dict[str, list[Tensor]] = {}


class PackedModel(nn.Module):
    """K solo models trained as one; see the module docstring. `members[k]` is member k."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("a pack needs at least one member")
        layouts = {tensor_layout(m) for m in members}
        if len(layouts) != 1:
            raise ValueError(
                "members of a pack must have the same parameters and buffers (names, shapes, "
                "dtypes); these differ"
            )
        self.members = nn.ModuleList(members)
        groups: dict[tuple, list[int]] = {}
        for k, member in enumerate(members):
            groups.setdefault(static_signature(member), []).append(k)
        self.subpacks = [SubPack(indices) for indices in groups.values()]
        self.param_names = [name for name, _ in members[0].named_parameters()]
        self.bind_buffers()

    def __len__(self) -> int:
        return len(self.members)

    def bind_buffers(self) -> None:
        """Stacks each buffer over a sub-pack's members and makes every member's buffer a view
        of its row: one tensor that vmap updates in place, K solo state_dicts that read it."""
        for sub in self.subpacks:
            sub.params = {
                name: [self.members[k].get_parameter(name) for k in sub.indices]
                for name in self.param_names
            }
            sub.buffers = {}
            for name, _ in self.members[sub.indices[0]].named_buffers():
                rows = [self.members[k].get_buffer(name) for k in sub.indices]
                stacked = torch.stack(rows)
                sub.buffers[name] = stacked
                for row, k in enumerate(sub.indices):
                    owner, _, leaf = name.rpartition(".")
                    self.members[k].get_submodule(owner)._buffers[leaf] = stacked[row]

    def _apply(self, fn, recurse=True):
        # .to(), .double(), ... replace each member's buffers with new tensors: bind again.
        out = super()._apply(fn, recurse)
        self.bind_buffers()
        return out

    def forward(self, x: Tensor) -> Tensor:
        """x: (K, B, ...), member k's batch at x[k], or (B, ...) given to every member.
        Returns (K, B, ...): member k's output at [k].

        Evaluating a shared batch (validation, test), members go through in chunks of about
        EVAL_IMAGES images (their buffers' rows are views: nothing is copied), so that K
        members on a 512-image batch never hold K x 512 images' activations at once."""
        shared = x.dim() == self.input_dims()
        chunk = max(1, EVAL_IMAGES // len(x)) if shared and not self.training else None
        outputs = []
        for sub in self.subpacks:
            template = self.members[sub.indices[0]]
            if shared:
                xs, x_dim = x, None
            else:
                xs = x if len(self.subpacks) == 1 else x[sub.indices]
                x_dim = 0

            def call(p, b, inputs, template=template):
                return functional_call(template, (p, b), (inputs,))

            batched = vmap(call, in_dims=(0, 0, x_dim), randomness="different")
            rows = len(sub.indices)
            for start in range(0, rows, chunk or rows):
                part = slice(start, start + (chunk or rows))
                params = {name: torch.stack(ps[part]) for name, ps in sub.params.items()}
                buffers = {name: b[part] for name, b in sub.buffers.items()}
                outputs.append(batched(params, buffers, xs))  # chunks only for a shared x
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        if len(self.subpacks) == 1:
            return out
        order = [k for sub in self.subpacks for k in sub.indices]
        return out[torch.tensor(order, device=out.device).argsort()]

    def input_dims(self) -> int:
        """The dimensions of one member's input: 4 (N, C, H, W) for normlab's models."""
        return 4


__all__ = ["PackedModel", "static_signature", "tensor_layout"]
