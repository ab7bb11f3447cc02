"""How hydra/launcher=packed groups a sweep's jobs, without training any."""

import pytest

from normlab.config import ConfigError
from normlab.pack.grouping import plan_packs
from normlab.pack.packable import pack_refusal, require_one_pack
from tests.configs import compose, make

BASE = ["model=cnn", "data=fashion_mnist", "callbacks=none", "trainer=cpu"]


def jobs(*variants):
    return {i: {"cfg": compose([*BASE, *v])} for i, v in enumerate(variants)}


def test_runs_differing_in_seed_lr_and_norm_option_values_share_a_pack():
    packs, alone = plan_packs(
        jobs(
            ["seed=0"],
            ["seed=1", "optim.base_lr=0.3"],
            ["seed=2", "norm.momentum=0.3"],
            ["optim.momentum=0.5"],
        )
    )
    assert packs == [[0, 1, 2, 3]] and alone == {}


def test_a_pack_takes_at_most_max_members_and_a_leftover_runs_alone():
    packs, alone = plan_packs(jobs(["seed=0"], ["seed=1"], ["seed=2"]), max_members=2)
    assert packs == [[0, 1]]
    assert alone == {2: "no other job of the sweep shares its pack settings"}


def test_runs_differing_in_batch_norm_kind_or_shape_never_share_a_pack():
    packs, alone = plan_packs(
        jobs(
            ["data.batch_size=8"],
            ["data.batch_size=8", "seed=1"],
            ["data.batch_size=16"],
            ["norm=group"],
            ["model.width=8"],
        )
    )
    assert packs == [[0, 1]] and set(alone) == {2, 3, 4}
    with pytest.raises(ConfigError, match="differ in data.batch_size"):
        require_one_pack([make([*BASE, "data.batch_size=8"]), make([*BASE, "data.batch_size=16"])])
    with pytest.raises(ConfigError, match="parameters differ"):
        require_one_pack([make(BASE), make([*BASE, "norm.affine=false"])])


def test_each_refusal_names_the_setting_and_what_is_allowed():
    assert pack_refusal(make(["model=cnn"])) is None  # the statistics callbacks on: packed
    assert "model=torchvision" in pack_refusal(make([*BASE, "model=torchvision"]))
    assert pack_refusal(make([*BASE, "compile=true", "trainer.accelerator=cpu"])) is None
    on_cuda = pack_refusal(make([*BASE, "compile=true", "trainer.accelerator=gpu"]))
    assert "compile=false" in on_cuda and "CUDA" in on_cuda
    assert "allowed in a pack: none" in pack_refusal(make([*BASE, "ckpt_path=x.ckpt"]))
    assert pack_refusal(make(BASE)) is None
    _, alone = plan_packs(jobs(["seed=0"], ["seed=1", "model=torchvision"]))
    assert "model=torchvision" in alone[1] and "no other job" in alone[0]
    with pytest.raises(ConfigError, match="max_members=0"):
        plan_packs(jobs(["seed=0"]), max_members=0)
