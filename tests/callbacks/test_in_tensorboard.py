"""The statistics callbacks in real runs, read back from event files and a TensorBoard server."""

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from functools import cmp_to_key
from pathlib import Path

import pytest
import torch

from normlab import metric_names as names
from normlab.run.fit import run
from tests.configs import compose
from tests.data.available import needs_fashion_mnist
from tests.data.tiny_cifar import write_tiny_cifar10
from tests.events import accumulator, compare_tag_names, hparams, scalars
from tests.runs import tiny_overrides, train, train_here

pytestmark = pytest.mark.slow
CNN_LAYERS = [f"stage{s}.conv{c}.norm" for s in (1, 2, 3) for c in (1, 2)]


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("bn")
    run_dir = tmp / "run"
    train_here(*tiny_overrides(tmp), "norm=batch", "data.batch_size=4", "trainer.max_epochs=2",
               "callbacks.drift.every_n_steps=2", run_dir=run_dir)  # fmt: skip
    return run_dir


def test_bn_run_has_every_tag_group(bn_run):
    tags = set(scalars(bn_run))
    for layer in CNN_LAYERS:
        for metric in ("mean_change", "var_change", "mean_to_batch", "std_to_batch"):
            assert f"z_drift/{layer}/{metric}" in tags
        assert f"z_gap/{layer}/activation_distance" in tags
        assert {f"z_precise/{layer}/mean_distance", f"z_precise/{layer}/std_distance"} <= tags
    for metric in ("mean_change", "var_change", "mean_to_batch", "std_to_batch"):
        assert {f"z_stats/drift_{metric}_mean", f"z_stats/drift_{metric}_max"} <= tags
    assert {"z_gap/val_acc_eval", "z_gap/val_acc_train", "z_gap/acc", "z_gap/loss"} <= tags
    assert {"z_gap/val_loss_eval", "z_gap/val_loss_train", "z_gap/generalization"} <= tags
    assert {"z_gap/activation_distance_mean", "z_precise/distance_mean"} <= tags
    assert {"z_precise/val_acc_population"} <= tags
    ea = accumulator(bn_run)
    assert f"z_drift/{CNN_LAYERS[0]}/running_mean" in ea.Tags()["histograms"]
    assert ea.PluginTagToContent("custom_scalars")  # the eval-vs-train accuracy chart


def test_bn_drift_is_positive_while_training(bn_run):
    values = scalars(bn_run)
    for layer in CNN_LAYERS:
        change = values[f"z_drift/{layer}/mean_change"]
        assert change and min(change) > 0
        assert min(values[f"z_drift/{layer}/var_change"]) > 0
        assert min(values[f"z_drift/{layer}/mean_to_batch"]) > 0
    assert all(v > 0 for v in values["z_gap/activation_distance_max"])


def test_hparams_tab_has_settings_and_final_metrics(bn_run):
    values, metric_tags = hparams(bn_run)
    assert values["norm"] == "batch" and values["model"] == "cnn" and values["dataset"] == "cifar10"
    assert values["batch_size"].strip() == "4"  # an integer as text (4, not 4.0000)
    assert values["lr"] == pytest.approx(0.1 * 4 / 128)
    assert values["norm.momentum"] == "0.1"  # norm options as text: one type in every run
    expected = {"z_hp/val_acc", "z_hp/test_acc", "z_hp/gap_acc", "z_hp/drift_to_batch"}
    assert expected <= set(metric_tags)
    final = {tag: scalars(bn_run)[tag][-1] for tag in expected}
    assert all(not math.isnan(v) for v in final.values()), final
    metrics = json.loads((bn_run / "metrics.json").read_text())
    assert final["z_hp/test_acc"] == pytest.approx(metrics["test_acc"])
    assert final["z_hp/gap_acc"] == pytest.approx(metrics["gap_acc"])
    # every norm's options are columns, "n/a" where BN has none; how long the run trained
    assert values["norm.num_groups"] == "n/a" and values["norm.virtual_batch_size"] == "n/a"
    assert {"z_hp/epochs", "z_hp/steps", "z_hp/train_images"} <= set(metric_tags)
    runs = scalars(bn_run)
    assert runs["z_hp/steps"][-1] == metrics["steps"] > 0
    assert runs["z_hp/diverged_at_step"][-1] == -1
    assert runs["z_hp/train_images"][-1] == metrics["steps"] * metrics["sgd_batch_size"]


@pytest.mark.parametrize("norm", ["group", "layer", "instance"])
def test_norms_without_batch_dependence_have_exactly_zero_gap(tmp_path, norm):
    run_dir = tmp_path / "run"
    train_here(*tiny_overrides(tmp_path), f"norm={norm}", "data.batch_size=4",
               "trainer.max_epochs=2", run_dir=run_dir)  # fmt: skip
    values = scalars(run_dir)
    assert values["z_gap/acc"] == [0.0, 0.0] and values["z_gap/loss"] == [0.0, 0.0]
    assert values["z_gap/val_acc_eval"] == values["z_gap/val_acc_train"]
    assert not [t for t in values if t.startswith(("z_drift/", "z_precise/"))]
    assert values["z_hp/gap_acc"][-1] == 0.0
    # no running statistics: documented 0, not NaN (NaN hides the run in parallel coordinates)
    assert values["z_hp/drift_to_batch"][-1] == 0.0 and values["z_hp/precise_distance"][-1] == 0.0
    settings, _ = hparams(run_dir)
    assert settings["norm.virtual_batch_size"] == "n/a" and settings["norm"] == norm


def test_callbacks_switch_off(tmp_path):
    run_dir = tmp_path / "run"
    train_here(*tiny_overrides(tmp_path), "norm=batch", "callbacks.drift.enabled=false",
               "callbacks.population.enabled=false", run_dir=run_dir)  # fmt: skip
    prefixes = {t.split("/")[0] for t in scalars(run_dir)}
    assert "z_gap" in prefixes and not {"z_drift", "z_precise"} & prefixes


def final_state(tmp_path: Path, callbacks: str, **extra) -> dict:
    overrides = tiny_overrides(tmp_path)
    overrides = [o for o in overrides if not o.startswith("paths.root")]
    cfg = compose([*overrides, "norm=batch", "data.batch_size=4", "trainer.max_epochs=2",
                   f"callbacks={callbacks}", f"paths.root={tmp_path / callbacks}",
                   "callbacks.drift.every_n_steps=1"])  # fmt: skip
    run(cfg)
    ckpt = tmp_path / callbacks / "runs" / "direct" / "checkpoints" / "last.ckpt"
    return torch.load(ckpt, weights_only=False)["state_dict"]


def test_callbacks_observe_without_changing_training(tmp_path):
    """Same seed, callbacks on or off: bit-identical weights and running statistics."""
    write_tiny_cifar10(tmp_path / "data")
    with_probes, without = final_state(tmp_path, "default"), final_state(tmp_path, "none")
    assert with_probes.keys() == without.keys()
    assert all(torch.equal(with_probes[k], without[k]) for k in without)


@needs_fashion_mnist
def test_bn_at_batch_2_has_a_larger_train_eval_gap_than_at_batch_64(tmp_path):
    """Fashion-MNIST, same model and number of images; |gap| at the end of one short epoch.

    Without warmup, so the lr decays to 0 and the running averages catch up with the weights:
    with the default 1-epoch warmup the lr rises to the last step, the averages lag the weights,
    and at batch 64 train mode came out 10-25 points better than eval mode, another effect.
    """
    gaps = {}
    for batch, steps in ((2, 1600), (64, 50)):
        run_dir = tmp_path / f"b{batch}"
        train_here("data=fashion_mnist", "model=cnn", "norm=batch", "trainer=cpu",
              "optim.warmup_epochs=0", "trainer.max_epochs=1",
              f"trainer.limit_train_batches={steps}",
              "trainer.limit_val_batches=4", "trainer.limit_test_batches=2",
              "trainer.enable_progress_bar=false", f"data.batch_size={batch}",
              f"data.root={tmp_path / 'data'}",
              "callbacks.population.enabled=false", "callbacks.train_eval_gap.max_samples=1024",
              run_dir=run_dir)  # fmt: skip
        values = scalars(run_dir)
        gaps[batch] = (abs(values["z_gap/acc"][-1]), abs(values["z_gap/loss"][-1]))
    assert gaps[2][0] > gaps[64][0] and gaps[2][1] > gaps[64][1], gaps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


class TensorBoardServer:
    """`tensorboard --logdir root` on a free local port, read over its HTTP API."""

    def __init__(self, root: Path):
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--host",
             "127.0.0.1", "--port", self.base.rsplit(":", 1)[1], "--reload_interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def get(self, path: str):
        return get_json(self.base + path)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(
            self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def wait_for_runs(self, count: int) -> dict:
        """The scalars plugin's {run: tags} once `count` runs are loaded."""
        deadline, tags = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                tags = self.get("/data/plugin/scalars/tags")
                if len(tags) >= count:
                    return tags
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"TensorBoard loaded {len(tags)} of {count} runs")

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def test_tensorboard_shows_the_question_before_the_statistics(bn_run):
    """Time Series and Scalars group a run's tags by their first segment and order the groups
    with TensorBoard's comparator: the question's groups (test, train, val: accuracy and loss)
    come first, every statistics callback's group after them; Lightning's epoch and the
    learning-rate monitor's lr-SGD, which would lead, sit in train/. Seen in Chromium with
    scripts/tensorboard_in_browser.py."""
    tags = set(accumulator(bn_run).Tags()["scalars"])
    assert {names.EPOCH, names.LR, "train/loss_step", names.VAL_ACC} <= tags
    groups = sorted({t.split("/")[0] for t in tags}, key=cmp_to_key(compare_tag_names))
    question = ["test", "train", "val"]
    assert groups[: len(question)] == question, groups
    assert all(g.startswith(names.LATER) for g in groups[len(question) :]), groups
    assert len(groups) > len(question)  # the statistics are logged, after the question


def test_a_tensorboard_server_shows_the_runs_and_tags(bn_run):
    server = TensorBoardServer(bn_run.parent)
    try:
        tags = server.wait_for_runs(1)
        assert "run" in server.get("/data/runs")
        assert {"z_gap/acc", "z_stats/drift_mean_to_batch_mean", "val/acc"} <= set(tags["run"])
        assert tags["run"]["z_hp/val_acc"]  # the final value, written once
        points = server.get("/data/plugin/scalars/scalars?run=run&tag=z_hp%2Fval_acc")
        assert len(points) == 1 and math.isfinite(points[0][2])  # no NaN placeholder at step 0
    finally:
        server.close()


def test_hparams_tab_of_a_sweep_shows_the_columns_that_differ_over_http(tmp_path):
    """The issue's check: a sweep of BN and GN at two batch sizes, launched as a user would (the
    default launcher), read through TensorBoard's HPARAMS HTTP API: the columns are those whose
    value differs among the runs (dataset, seed, devices are constant and left out; lr scales
    with the batch), every norm option that differs is a column of one type (text) in every
    run, integers read as integers and sort in numeric order, each metric column is named by
    its record column, and every metric cell of every run is finite."""
    sweep = tmp_path / "sweep"
    train("-m", *tiny_overrides(tmp_path), "norm=batch,group", "data.batch_size=16,4",
          f"hydra.sweep.dir={sweep}")  # fmt: skip
    server = TensorBoardServer(sweep)
    try:
        assert len(server.wait_for_runs(4)) == 4
        experiment = server.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        groups = server.post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "startIndex": 0, "sliceSize": 10,
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                "STATUS_RUNNING"],
            "colParams": [{"hparam": "norm"}],
        })["sessionGroups"]  # fmt: skip
        assert len(groups) == 4
        cells = {name: [g["hparams"].get(name) for g in groups] for name in infos}
        assert {"norm", "batch_size", "norm.num_groups", "norm.momentum"} <= set(infos)
        assert not {"dataset", "seed", "devices", "model", "norm.eps"} & set(infos)
        for name, values in cells.items():
            assert len(set(map(str, values))) > 1, (name, values)  # no constant column
            assert infos[name]["differs"], name
        for option in (n for n in infos if n.startswith("norm.")):
            assert {type(v) for v in cells[option]} == {str}, option
        assert infos["batch_size"]["type"] == "DATA_TYPE_STRING"
        batch = sorted(set(cells["batch_size"]))  # TensorBoard's order: as text
        assert [v.strip() for v in batch] == ["4", "16"]
        num_groups = sorted(set(cells["norm.num_groups"]))
        assert [v.strip() for v in num_groups] == ["8", "n/a"]
        names = [m.get("displayName") for m in experiment["metricInfos"]]
        assert names[:4] == ["val_acc", "test_acc", "gap_acc", "drift_to_batch"]
        for group in groups:
            values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
            assert len(values) == len(names) and all(map(math.isfinite, values.values()))
        gn = next(g for g in groups if g["hparams"]["norm"] == "group")
        gn_values = {m["name"]["tag"]: m["value"] for m in gn["metricValues"]}
        assert gn_values["z_hp/drift_to_batch"] == 0 and gn_values["z_hp/gap_acc"] == 0
    finally:
        server.close()
