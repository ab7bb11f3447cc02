"""Every default lives in one place, the schemas: a config file states only what its choice
changes, and a norm built from Python is the norm its name gives on the command line."""

import dataclasses
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from normlab.callbacks.settings import CallbacksSettings
from normlab.config import LoggerSettings, PathsSettings, TrainerSettings
from normlab.data.datamodule import DataSettings
from normlab.models import CnnSettings, ExternalModelSettings, ResNetSettings
from normlab.norms import NORMS, build, registry
from normlab.optim import OptimSettings
from normlab.run.identity import flat
from tests.test_config import make

CONF = Path(__file__).resolve().parents[1] / "conf"
SCHEMAS = {"data": DataSettings, "trainer": TrainerSettings, "optim": OptimSettings,
           "callbacks": CallbacksSettings, "logger": LoggerSettings,
           "paths": PathsSettings}  # fmt: skip
MODEL_SCHEMAS = {
    "cnn_schema": CnnSettings,
    "resnet_schema": ResNetSettings,
    "external_schema": ExternalModelSettings,
}
FILES = sorted((g, p.stem) for g in [*SCHEMAS, "model", "norm"] for p in (CONF / g).glob("*.yaml"))


def schema_of(group: str, node) -> type:
    if group in SCHEMAS:
        return SCHEMAS[group]
    named = [d for d in node.get("defaults", []) if isinstance(d, str) and d.endswith("_schema")]
    if group == "model":
        return MODEL_SCHEMAS[named[0]]
    return registry.schema(named[0].removesuffix("_schema"))


def defaults_of(schema: type) -> dict:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    instance = schema(**({"name": fields["name"].default} if "name" in fields else {}))
    return flat(instance)


def stated(group: str, option: str) -> dict:
    """What conf/<group>/<option>.yaml states, flat, over what the options it extends state."""
    node = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"), resolve=False)
    values: dict = {}
    for parent in node.pop("defaults", []):
        if isinstance(parent, str) and parent != "_self_" and not parent.endswith("_schema"):
            values.update(stated(group, parent))
    return {**values, **flat(node)}


@pytest.mark.parametrize(("group", "option"), FILES)
def test_a_config_file_states_only_what_its_choice_changes(group, option):
    """No value in conf/ restates a schema default: a restated default is a second source,
    which can come to disagree with the first. Interpolations (rules, e.g. a norm's group count
    from the model) and `name` (what the choice is) are not values."""
    node = OmegaConf.load(CONF / group / f"{option}.yaml")
    before = defaults_of(schema_of(group, node))  # the schema's, then what parents state
    parents = [d for d in node.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    for parent in parents:
        if not parent.endswith("_schema"):
            before.update(stated(group, parent))
    own = flat(OmegaConf.to_container(node, resolve=False))
    own.pop("defaults", None)
    restated = {
        k: v
        for k, v in own.items()
        if k != "name" and not (isinstance(v, str) and v.startswith("${")) and before.get(k) == v
    }
    assert not restated, f"conf/{group}/{option}.yaml restates schema defaults: {restated}"


@pytest.mark.parametrize("name", sorted(NORMS))
def test_build_from_python_is_the_norm_the_command_line_gives(name):
    """build(name, C) and norm=name: the same layer, but where conf/norm/<name>.yaml states a
    rule (the group count from the model)."""
    s = make([f"norm={name}", "model=cnn", "data.batch_size=32"])
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "norm" / f"{name}.yaml"), resolve=False)
    rules = {k for k, v in raw.items() if isinstance(v, str) and v.startswith("${")}
    options = {k: v for k, v in s.norm_options.items() if k in rules}
    torch.manual_seed(0)
    from_cli = build(name, 16, (8, 8), **s.norm_options)
    torch.manual_seed(0)
    from_python = build(name, 16, (8, 8), **options)
    assert repr(from_cli) == repr(from_python)
    assert vars(from_cli).keys() == vars(from_python).keys()
    for key, value in vars(from_python).items():
        if not key.startswith("_"):
            assert vars(from_cli)[key] == value, key
    for (k, a), (_, b) in zip(from_cli.state_dict().items(), from_python.state_dict().items(),
                              strict=True):  # fmt: skip
        assert torch.equal(a, b), k
