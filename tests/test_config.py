"""Every config group option composes, resolves and builds its model, with hydra.compose."""

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from normlab.config import ConfigError, Settings, load_settings, run_name
from normlab.data import dataset_spec
from normlab.norms import NORMS, registry
from normlab.optim import Schedule
from normlab.run.build import build_module
from tests.configs import compose, make

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


compose_train = compose


def test_every_group_has_options():
    expected = {"callbacks", "data", "experiment", "hydra", "logger", "model", "norm", "optim"}
    assert expected | {"paths", "trainer"} <= set(GROUPS)
    assert {o for g, o in OPTIONS if g == "norm"} == set(NORMS)


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_option_composes_and_resolves(group, option):
    cfg = compose_train([f"{group}={option}"], hydra=True)
    OmegaConf.resolve(cfg)  # every interpolation, hydra's run and sweep dirs included
    assert "/runs/" in cfg.hydra.run.dir
    assert isinstance(load_settings(cfg), Settings)


def classifies(module, data: str, batch: int = 2) -> bool:
    """The built model maps a batch of the dataset's images to one logit per class."""
    spec = dataset_spec(data)
    x = torch.randn(batch, spec.in_channels, spec.image_size, spec.image_size)
    with torch.no_grad():
        return module.train()(x).shape == (batch, spec.num_classes)


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("model", ["resnet20", "resnet18", "cnn"])
@pytest.mark.parametrize("data", ["cifar10", "cifar100", "fashion_mnist"])
def test_default_norm_options_fit_every_model(norm, model, data):
    """norm=group's default group count divides every layer of every model, for every dataset."""
    module = build_module(make([f"norm={norm}", f"model={model}", f"data={data}"]))
    assert classifies(module, data)


def test_commands_from_the_brief_compose():
    s = make(["norm=group", "norm.num_groups=8", "data.batch_size=4", "model=resnet18"])
    assert (s.norm.num_groups, s.data.batch_size, s.model.name) == (8, 4, "resnet18")
    assert build_module(s).model.stem.norm.num_groups == 8
    assert make(["data.root=/some/copy"]).data.root == "/some/copy"
    s = make(["experiment=example"])
    assert (s.norm_name, s.model.name, s.data.name) == ("group", "cnn", "fashion_mnist")


def test_settings_are_typed():
    s = make(["optim.schedule=step", "norm=layer", "norm.affine=channel", "data.batch_size=8"])
    assert s.optim.schedule is Schedule.step and s.norm.affine.value == "channel"
    assert s.data.batch_size == 8 and s.optim.milestones == [0.5, 0.75]


def test_group_size_replaces_num_groups():
    s = make(["norm=group", "norm.group_size=4", "model=resnet20"])
    assert build_module(s).model.stem.norm.num_groups == 4  # 16 channels / 4 per group
    assert s.key_choices()["norm.num_groups"] is None


def test_linear_lr_scaling():
    assert make(["data.batch_size=128"]).learning_rate() == pytest.approx(0.1)
    assert make(["data.batch_size=2"]).learning_rate() == pytest.approx(0.1 * 2 / 128)
    assert make(["data.batch_size=2", "optim.lr_scaling=none"]).learning_rate() == 0.1
    assert make(["data.batch_size=2"]).learning_rate(world_size=4) == pytest.approx(0.1 * 8 / 128)


def test_precision_auto_is_32_bit_without_a_gpu(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert make().trainer.lightning_options()["precision"] == "32-true"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert make().trainer.lightning_options()["precision"] == "bf16-mixed"
    assert make(["trainer=cpu"]).trainer.lightning_options()["precision"] == "32-true"


def test_run_dir_is_named_by_overrides_norm_first_then_batch():
    cfg = compose_train(["norm=group", "data.batch_size=8"], hydra=True)
    cfg.hydra.job.override_dirname = "data.batch_size=8,norm=group"  # what Hydra sets at launch
    assert cfg.hydra.run.dir.endswith("/runs/norm=group,data.batch_size=8")
    assert cfg.hydra.sweep.subdir == "norm=group,data.batch_size=8"


def test_a_long_run_name_is_cut_with_a_hash_and_stays_unique():
    # Hydra's sorted override_dirname of the 4-run sweep with seed and determinism
    sweep = ("callbacks.drift.every_n_steps=10,data.batch_size={b},data=fashion_mnist,"
             "model=cnn,norm={n},seed=1,trainer.deterministic=true,trainer.max_epochs=2,"
             "trainer.limit_train_batches=0.1,trainer.enable_progress_bar=false")  # fmt: skip
    runs = [(n, b) for n in ("batch", "group") for b in (2, 128)]
    names = [run_name(sweep.format(n=n, b=b)) for n, b in runs]
    assert len(set(names)) == 4
    for name, (n, b) in zip(names, runs, strict=True):
        assert len(name) <= 80 and name.startswith(f"norm={n},data.batch_size={b},")
        assert re.search(r"~[0-9a-f]{8}$", name)
    listed = run_name("optim.milestones=[0.3,0.6],norm=layer")  # a comma inside a value
    assert listed == "norm=layer,optim.milestones=[0.3,0.6]"


def test_sweep_runs_are_named_by_what_the_sweep_varies(tmp_path):
    """The issue's 4-run sweep: constant overrides stay in .hydra/ and metrics.json, not in the
    name; the sweep's own and its experiment's varied keys name the run."""
    task = ["data=fashion_mnist", "model=cnn", "norm=batch,group", "data.batch_size=2,128",
            "seed=1", "trainer.deterministic=true", "callbacks.drift.every_n_steps=10"]  # fmt: skip
    multirun = {
        "hydra": {"overrides": {"task": task}, "sweeper": {"params": {"optim.gamma": "0.1,0.2"}}}
    }
    OmegaConf.save(OmegaConf.create(multirun), tmp_path / "multirun.yaml")
    job = ("callbacks.drift.every_n_steps=10,data.batch_size=128,data=fashion_mnist,model=cnn,"
           "norm=group,optim.gamma=0.2,seed=1,trainer.deterministic=true")  # fmt: skip
    assert run_name(job, str(tmp_path)) == "norm=group,data.batch_size=128,optim.gamma=0.2"
    assert run_name(job, str(tmp_path / "not_a_sweep")).startswith(
        "norm=group,data.batch_size=128,"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["norm.eps=0"], "norm.eps=0.0; allowed: a number > 0"),
        (["norm.momentum=1.5"], "norm.momentum=1.5; allowed: a number in [0, 1], or null"),
        (["norm=instance", "norm.momentum=-0.1"], "norm.momentum=-0.1; allowed: a number in"),
        (["data.batch_size=0"], "data.batch_size=0; allowed: an integer >= 1"),
        (["data.batch_size=1"], "data.batch_size=1 with norm=batch; allowed: an integer >= 2 "
                                "(batch statistics need 2 samples), or a norm without batch "
                                "dependence: frn, group, instance, layer, none"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0; allowed: an integer >= 1, or -1"),
        (["seed=-1"], "seed=-1; allowed: an integer in [0, 2**32 - 1]"),
        (["compile=yes"], "compile=yes; allowed: auto, true, false"),
        (["compile=1"], "compile=1; allowed: auto, true, false"),
        (["optim.base_lr=-1"], "optim.base_lr=-1.0; allowed: a number >= 0"),
        (["optim.milestones=[0.8,0.4]", "optim.schedule=step"],
         "optim.milestones=[0.8, 0.4]; allowed: increasing fractions of training in (0, 1)"),
        (["model=cnn", "model.width=0"], "model.width=0; allowed: an integer >= 1"),
        (["data.val_size=70000"], "data.val_size=70000; allowed: an integer from 1 to 49999 "
                                  "(cifar10 has 50000 training images)"),
        (["norm=ghost_batch", "norm.virtual_batch_size=3", "data.batch_size=8"],
         "norm.virtual_batch_size=3 with data.batch_size=8; allowed: a divisor >= 2 of the "
         "batch: [2, 4, 8]"),
        (["norm=batch_renorm", "norm.r_max=0.5"], "norm.r_max=0.5; allowed: a number >= 1"),
        (["norm=batch_renorm", "data.batch_size=1"], "data.batch_size=1 with norm=batch_renorm"),
        (["norm=group", "trainer.sync_batchnorm=true"],
         "trainer.sync_batchnorm=true with norm=group; allowed: false, or a norm with batch "
         "statistics to synchronize across devices: batch, batch_renorm"),
        (["norm=group", "norm.num_groups=32", "model=cnn", "model.width=24"],
         "layer stage1.conv1.norm (24 channels): group norm on 24 channels: num_groups=32 does "
         "not divide 24; valid num_groups: [1, 2, 3, 4, 6, 8, 12, 24]"),
        (["norm=group", "norm.group_size=3"],
         "layer stem.norm (16 channels): group norm on 16"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_in_one_line_naming_key_value_and_what_is_allowed(
    overrides, message
):
    with pytest.raises(ConfigError) as info:
        build_module(make(overrides))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (["data.batch_size=abc"], "data.batch_size", "could not be converted to Integer"),
        (["optim.schedule=cosin"], "optim.schedule", "expected one of [cosine, step, constant]"),
        (["optim.lr_scaling=sqrt"], "optim.lr_scaling", "expected one of [linear, none]"),
        (["norm=layer", "norm.affine=chan"], "norm.affine",
         "expected one of [elementwise, channel, none]"),
        (["norm.num_groups=4"], "norm.num_groups", "Could not override"),  # BN has no groups
        (["model=cnn", "model.zero_init_residual=true"], "model.zero_init_residual",
         "Could not override"),
        (["trainer.max_epoch=3"], "trainer.max_epoch", "Could not override"),
    ],
)  # fmt: skip
def test_hydra_refuses_wrong_types_unknown_choices_and_keys(overrides, key, allowed):
    """The schemas make Hydra itself refuse these while composing, naming the key."""
    with pytest.raises(ConfigCompositionException) as info:
        compose_train(overrides)
    text = f"{info.value} {info.value.__cause__}"
    assert key in text and allowed in text


def test_batch_size_1_is_fine_without_batch_statistics():
    assert classifies(build_module(make(["norm=group", "data.batch_size=1"])), "cifar10", batch=1)


def test_a_new_norm_gets_its_schema_from_its_builder():
    """Registering a builder is all a new norm needs: its keyword options become its typed
    config, with the builder's defaults, and the shared ranges apply to them."""

    @registry.register("scratch_norm")
    def build_scratch(num_channels, spatial_size=None, *, eps: float = 1e-3, k: int | None = None):
        return torch.nn.Identity()

    try:
        node = OmegaConf.structured(registry.schema("scratch_norm"))
        assert OmegaConf.to_container(node) == {"name": "scratch_norm", "eps": 1e-3, "k": None}
        with pytest.raises(Exception, match="could not be converted to Float"):
            node.eps = "small"
        with pytest.raises(ConfigError, match=r"norm.eps=0.0; allowed: a number > 0"):
            registry.schema("scratch_norm")(eps=0.0)
        fields = {f.name: f.type for f in dataclasses.fields(registry.schema("scratch_norm"))}
        assert fields["eps"] is float
    finally:
        del registry.NORMS["scratch_norm"]
        registry.schema.cache_clear()
