"""Values that cannot work are refused before training, naming the key."""

from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from dcgan_lit.config_check import check_config
from dcgan_lit.errors import ConfigError
from tests.conftest import CONF_DIR, compose_train, exits


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lr_g=-2e-4", r"model.lr_g=-0.0002: must be a finite number > 0"),
        ("model.lr_d=0", r"model.lr_d=0: must be a finite number > 0"),
        ("model.lr_d=inf", r"model.lr_d=inf: must be a finite number > 0"),
        ("trainer.max_steps=0", r"trainer.max_steps=0: must be a whole number of batches >= 1"),
        ("data.image_size=48", r"data.image_size=48 is not supported.*16, 32, 64, 128, 256"),
        ("data.nc=2", r"data.nc=2: must be 1 \(grayscale\) or 3 \(RGB\)"),
        ("data.batch_size=0", r"data.batch_size=0: must be a whole number >= 1"),
        ("data.batch_size=abc", r"data.batch_size='abc': must be a whole number >= 1"),
        ("data.num_workers=-1", r"data.num_workers=-1: must be a whole number >= 0"),
        ("model.nz=0", r"model.nz=0: must be a whole number >= 1"),
        ("model.generator.ngf=0", r"model.generator.ngf=0"),
        ("model.optimizer_g.betas=[0.5,1.5]", r"model.optimizer_g.betas=\[0.5, 1.5\]: must be two numbers in \[0, 1\)"),
        ("trainer.max_epochs=0", r"trainer.max_epochs=0: must be a whole number >= 1"),
        ("data.val_fraction=1.5", r"data.val_fraction=1.5: must be a fraction in \[0, 1\)"),
        ("model.image_size=64", r"model.image_size=64 differs from data.image_size=32: set data.image_size only"),
        ("ckpt_path=/no/such/last.ckpt", r"ckpt_path='/no/such/last.ckpt': no such file"),
        ("trainer.devices=4", r"trainer.devices=4 with trainer.strategy='auto' would run plain DDP.*Use trainer=ddp"),
        ("trainer.devices=[0,1]", r"trainer.devices=\[0, 1\] with trainer.strategy='auto'"),
        ("trainer.devices=auto", r"trainer.devices='auto' with"),
        ("metrics=fid metrics.num_fake=0", r"metrics.num_fake=0: must be a whole number >= 2"),
        ("metrics=fid metrics.num_fake=1", r"metrics.num_fake=1: must be a whole number >= 2"),
        ("metrics=fid metrics.every_n_epochs=0", r"metrics.every_n_epochs=0: must be a whole number >= 1"),
        ("metrics=fid metrics.min_heldout=1", r"metrics.min_heldout=1: must be a whole number >= 2"),
        ("callbacks=ema callbacks.ema.decay=1.0", r"callbacks.ema.decay=1.0: must be a number in \[0, 1\)"),
        ("callbacks=ema callbacks.ema.decay=-0.1", r"callbacks.ema.decay=-0.1: must be a number in \[0, 1\)"),
        ("model.lr_decay_start=1.0", r"model.lr_decay_start=1.0: must be in \[0, 1\), or null"),
        ("model.penalty_every=0", r"model.penalty_every=0: must be a whole number >= 1"),
        (
            "model.lr_decay_start=0.5 trainer.max_epochs=-1",
            r"model.lr_decay_start needs a known end of training, and trainer.max_epochs=-1 with no trainer.max_steps",
        ),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    cfg = compose_train([*override.split(), "paths.output_dir=/tmp/x"])
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_folder_without_root_says_to_set_it() -> None:
    with pytest.raises(ConfigError, match=r"data.root is not set: pass data.root=path/to/your/images"):
        check_config(compose_train(["data=folder", "paths.output_dir=/tmp/x"]))


ON_BUILT_IN_DATA = ("quickstart", "tutorial")  # the experiments on the synthetic images, which have no root


@pytest.mark.parametrize(
    "overrides",
    [
        *[
            [f"experiment={p.stem}", *([] if p.stem in ON_BUILT_IN_DATA else ["data.root=/x"])]
            for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))
        ],
        ["trainer.max_epochs=-1", "data.image_size=128"],
        ["trainer=ddp", "trainer.devices=4"],
        ["trainer=gpu", "trainer.devices=[1]"],
        ["callbacks=ema", "callbacks.ema.decay=0.0"],
        [
            "metrics=fid",
            "metrics.num_fake=2",
            "metrics.num_fake_train=2",
            "data.val_fraction=0",
        ],  # scored against the training images
    ],
    ids=lambda overrides: " ".join(overrides),
)
def test_good_configs_pass(overrides: list[str]) -> None:
    cfg = compose_train([*overrides, "paths.output_dir=/tmp/x"])
    check_config(cfg)  # raises ConfigError for any value it refuses
    if overrides[0].startswith("experiment=") and overrides[0].removeprefix("experiment=") not in ON_BUILT_IN_DATA:
        assert cfg.metrics is not None  # every experiment on real data scores FID: its metric settings were checked


def test_a_removed_key_that_another_key_reads_is_one_line_naming_both(
    tiny_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture
) -> None:
    """`~model.generator.kernel_size` (D reads it) ended in omegaconf's InterpolationKeyError traceback."""
    from dcgan_lit.train import run

    code, stderr = exits(run, tiny_cfg("~model.generator.kernel_size"), capsys)
    assert code == 2 and stderr == (
        "error: model.discriminator.kernel_size: Interpolation key 'generator.kernel_size' not found: a key it "
        "refers to was removed (~) or misspelled; set model.discriminator.kernel_size itself too, or keep the key "
        "it refers to.\n"
    )
