"""Accuracy and loss of a model as it is, on fixed batches: what the probes share."""

import torch
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, batches, device) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` as it is, over `batches`."""
    correct, loss, count = 0, 0.0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        count += len(y)
    return correct / count, loss / count
