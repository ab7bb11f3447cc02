"""'A new norm is one module': a norm registered with a swept option gets its config schema,
its column in summarize's tables and its figure, with nothing else touched."""

import csv

import pytest
import torch
from torch import nn

from normlab.norms import registry
from normlab.report import summarize
from normlab.run.identity import RunIdentity
from normlab.run.record import write_record
from tests.test_config import make


class Scale(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha


@pytest.fixture
def toy_norm():
    @registry.register(
        "toy_scale",
        columns=(registry.Column("alpha", "scale α", "α", (("error_vs_alpha.png", "val_error"),)),),
        ranges={"alpha": (lambda v: v > 0, "a number > 0")},
    )
    def build_toy(num_channels, spatial_size=None, *, alpha: float = 1.0, eps: float = 1e-5):
        return Scale(alpha)

    registry.schema.cache_clear()
    from normlab.config import register_schemas

    register_schemas()
    yield "toy_scale"
    del registry.NORMS["toy_scale"]
    registry.schema.cache_clear()


def test_a_registered_norm_has_its_column_in_summarize(tmp_path, toy_norm):
    accuracy = {(0.5, 0): 0.80, (0.5, 1): 0.82, (2.0, 0): 0.70, (2.0, 1): 0.74}
    for (alpha, seed), acc in accuracy.items():
        s = make(["norm=toy_scale_schema", f"norm.alpha={alpha}", f"seed={seed}"])
        identity = RunIdentity.of(s)
        run = tmp_path / "sweep" / f"alpha={alpha},seed={seed}"
        write_record(run, {"status": "finished", **s.key_choices(), "identity": identity.hash,
                           "settings": identity.settings, "val_acc": acc, "test_acc": acc,
                           "epochs": 1.0})  # fmt: skip
    summarize(tmp_path / "sweep", tmp_path / "out")
    with open(tmp_path / "out" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["alpha"], r["options"]) for r in rows} == {("0.5", ""), ("2.0", "")}
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| norm | batch | scale α | lr | val error % |" in table
    # n = 2: the 95% CI is mean ± t(0.975, 1) · SD/√2 = mean ± 12.706 · SD/√2
    assert "| toy_scale | 128 | 0.5 | 0.1 | 19.00 ± 1.41 [6.29, 31.71] |" in table
    assert "| toy_scale | 128 | 2.0 | 0.1 | 28.00 ± 2.83 [2.59, 53.41] |" in table
    assert (tmp_path / "out" / "error_vs_alpha.png").stat().st_size > 0
    with pytest.raises(Exception, match=r"norm.alpha=-1.0; allowed: a number > 0"):
        make(["norm=toy_scale_schema", "norm.alpha=-1"])
