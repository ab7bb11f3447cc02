"""Accuracy and loss of a model as it is, on fixed batches: what the probes share."""

import torch
from torch import Tensor, nn


def model_input(x: Tensor, model: nn.Module, device) -> Tensor:
    """`x` on `device`, floating images in the dtype of the model's parameters: what
    Lightning's precision plugin gives a step (float64 under 64-true, bf16 under bf16-true;
    float32 under mixed precision, where autocast casts)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return x.to(device, dtype=dtype if x.is_floating_point() and dtype else None)


def rebatched(batches, size: int):
    """The same images in the same order, in batches of about `size` (whole input batches
    joined; `batches` as they are when `size` is no larger): for eval mode, whose outputs do
    not depend on the batch, a few large batches instead of many small ones."""
    if not batches or size <= len(batches[0][1]):
        yield from batches
        return
    xs, ys, held = [], [], 0
    for x, y in batches:
        xs.append(x)
        ys.append(y)
        held += len(y)
        if held >= size:
            yield torch.cat(xs), torch.cat(ys)
            xs, ys, held = [], [], 0
    if xs:
        yield torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def evaluate(model: nn.Module, batches, device, batch_size: int = 0) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` as it is, over `batches` (rebatched to
    `batch_size`: only for a model whose outputs do not depend on the batch)."""
    correct, loss, count = 0, 0.0, 0
    for x, y in rebatched(batches, batch_size):
        x, y = model_input(x, model, device), y.to(device)
        logits = model(x).float()
        loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    return correct / count, loss / count
