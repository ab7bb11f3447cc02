"""The same seed in deterministic mode gives identical metrics twice on the CPU."""

import json

import pytest
from hydra import compose, initialize_config_dir

from normlab.run.fit import run
from tests.runs import REPO, tiny_overrides

pytestmark = pytest.mark.slow
VARIES = {"fit_seconds", "best_checkpoint"}


def metrics(tmp_path, name: str) -> dict:
    overrides = [o for o in tiny_overrides(tmp_path) if not o.startswith("paths.root")]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "norm=batch", "data.batch_size=4",
                      "trainer.deterministic=true", "trainer.max_epochs=2",
                      f"paths.root={tmp_path / name}"])  # fmt: skip
    run(cfg)
    record = json.loads((tmp_path / name / "runs" / "direct" / "metrics.json").read_text())
    return {k: v for k, v in record.items() if k not in VARIES}


def test_same_seed_same_metrics(tmp_path):
    first, second = metrics(tmp_path, "a"), metrics(tmp_path, "b")
    assert first == second
    assert first["status"] == "finished" and "gap_acc" in first and "test_acc" in first
