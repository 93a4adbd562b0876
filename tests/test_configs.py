"""Every config group option and every experiment composes, and its objects instantiate."""

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig

from dcgan_lit.callbacks.sample_grid import SampleGrid
from dcgan_lit.data.datamodule import ImageDataModule
from dcgan_lit.module import DCGAN
from dcgan_lit.precision import resolve_precision
from dcgan_lit.train import instantiate_group
from tests.conftest import CONF_DIR, compose_train, load_checkpoint


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_defaults_are_the_offline_synthetic_dcgan_with_the_quickstart_recipe() -> None:
    cfg = compose_train(["paths.output_dir=/tmp/x"])
    assert cfg.data._target_.endswith("SyntheticDataModule") and cfg.data.image_size == 32
    # experiment=quickstart: the tutorial's DCGAN and Adam, half as wide, batch 32, 10 epochs, EMA of G.
    assert cfg.model.nz == 100 and cfg.model.generator.ngf == 32 and cfg.model.discriminator.ndf == 32
    assert cfg.model.lr_g == 2e-4 and cfg.model.lr_d == 2e-4 and list(cfg.model.optimizer_g.betas) == [0.5, 0.999]
    assert cfg.data.batch_size == 32 and cfg.trainer.max_epochs == 10 and cfg.callbacks.ema.decay == 0.995
    assert cfg.seed == 999 and cfg.ckpt_path is None


def test_experiment_tutorial_is_the_tutorial_recipe_on_the_default_data() -> None:
    cfg = compose_train(["experiment=tutorial"])
    assert cfg.data._target_.endswith("SyntheticDataModule")
    assert cfg.model.generator.ngf == 64 and cfg.model.discriminator.ndf == 64 and "ema" not in cfg.callbacks
    assert cfg.trainer.max_epochs == 5 and list(cfg.model.optimizer_d.betas) == [0.5, 0.999]


@pytest.mark.parametrize("option", options("data"))
def test_every_data_option(option: str, tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = tiny_cfg(f"data={option}", *([f"data.root={tmp_path}"] if option == "folder" else []))
    dm = instantiate(cfg.data)
    assert isinstance(dm, ImageDataModule)
    assert (dm.image_size, dm.nc, dm.batch_size) == (32, cfg.data.nc, 16)
    assert cfg.data.nc == (1 if "mnist" in option else 3)


@pytest.mark.parametrize("option", options("model"))
def test_every_model_option(option: str, tiny_cfg: Callable[..., DictConfig]) -> None:
    model = instantiate(tiny_cfg(f"model={option}").model)
    assert isinstance(model, DCGAN)
    assert len(model.configure_optimizers()) == 2


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_option(option: str, tiny_cfg: Callable[..., DictConfig]) -> None:
    cfg = tiny_cfg(f"trainer={option}")
    accelerators = {"default": "auto", "cpu": "cpu", "gpu": "gpu", "ddp": "gpu", "slurm": "gpu"}
    assert cfg.trainer.accelerator == accelerators[option]
    if option in ("ddp", "slurm"):
        assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"
    if option == "slurm":
        return  # its SLURMEnvironment needs a SLURM job; tests/test_cluster_configs.py checks it
    if option == "ddp":
        assert cfg.trainer.devices == 2
    # CI has no GPU: build the GPU configs on the CPU to check that every other key is a valid Trainer argument.
    # trainer.precision=auto is train.py's to resolve, as it does here.
    precision, _ = resolve_precision(str(cfg.trainer.precision), "cpu")
    trainer = instantiate(
        cfg.trainer, accelerator="cpu", devices=1 if option != "ddp" else 2, logger=False, precision=precision
    )
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 2


@pytest.mark.parametrize("option", options("logger"))
def test_every_logger_option(option: str, tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    store = tmp_path / "mlflow"  # MLflow's store is shared by all runs: by default outputs/mlflow
    cfg = tiny_cfg(f"logger={option}")
    if "mlflow" in cfg.logger:
        cfg.logger.mlflow.store_dir = str(store)
    loggers = instantiate_group(cfg.logger)
    assert len(loggers) == (4 if option == "many_loggers" else 1)
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            assert logger._tracking_uri == f"sqlite:///{store / 'mlflow.db'}"
        else:
            assert Path(logger.save_dir) == tmp_path / "run"


@pytest.mark.parametrize("option", options("callbacks"))
def test_every_callbacks_option(option: str, tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    callbacks = instantiate_group(tiny_cfg(f"callbacks={option}").callbacks)
    checkpoints = [c for c in callbacks if isinstance(c, L.pytorch.callbacks.ModelCheckpoint)]
    assert {Path(c.dirpath) for c in checkpoints} == {tmp_path / "run" / "checkpoints"}
    assert any(c.filename == "last" and c.every_n_epochs == 1 for c in checkpoints)
    assert any(isinstance(c, SampleGrid) for c in callbacks)


def test_experiment_celeba_is_the_tutorial() -> None:
    cfg = compose_train(["experiment=celeba", "paths.output_dir=/tmp/x"])
    assert cfg.data._target_.endswith("FolderDataModule") and cfg.data.root == "data/celeba"
    assert (cfg.data.image_size, cfg.data.nc, cfg.data.batch_size) == (64, 3, 128)
    assert (cfg.model.nz, cfg.model.generator.ngf, cfg.model.discriminator.ndf) == (100, 64, 64)
    assert cfg.model.lr_g == cfg.model.lr_d == 2e-4
    assert list(cfg.model.optimizer_g.betas) == list(cfg.model.optimizer_d.betas) == [0.5, 0.999]
    assert cfg.trainer.max_epochs == 5


def test_experiment_space_is_the_200_image_report() -> None:
    cfg = compose_train(["experiment=space", "data.root=/some/folder", "paths.output_dir=/tmp/x"])
    assert (cfg.data.image_size, cfg.data.batch_size, cfg.model.nz) == (64, 10, 128)
    assert cfg.model.lr_g == cfg.model.lr_d == 2e-4
    assert list(cfg.model.optimizer_g.betas) == [0.5, 0.999] and cfg.trainer.max_epochs == 200
    assert "2e-3" in (CONF_DIR / "experiment" / "space.yaml").read_text()  # the report's better lr is documented


def test_experiment_fashion_mnist() -> None:
    cfg = compose_train(["experiment=fashion_mnist", "paths.output_dir=/tmp/x"])
    assert cfg.data.variant == "fashion_mnist" and (cfg.data.image_size, cfg.data.nc, cfg.data.batch_size) == (
        64,
        1,
        128,
    )
    assert "/usr/share/datasets/fashion-mnist" in cfg.data.search_dirs


def test_overrides_users_type() -> None:
    cfg = compose_train(
        [
            "trainer.devices=4",
            "trainer.max_epochs=10",
            "model.lr_g=1e-4",
            "model.lr_d=4e-4",
            "seed=123",
            "paths.output_dir=/tmp/x",
        ]
    )
    assert (cfg.trainer.devices, cfg.trainer.max_epochs, cfg.model.lr_g, cfg.model.lr_d, cfg.seed) == (
        4,
        10,
        1e-4,
        4e-4,
        123,
    )
    # model shapes follow the data by interpolation, so one override changes both nets
    cfg = compose_train(["data.image_size=64", "data.nc=1", "paths.output_dir=/tmp/x"])
    assert (cfg.model.generator.image_size, cfg.model.discriminator.nc) == (64, 1)


def experiment_data(experiment: str, folder: Path) -> list[str]:
    """Overrides pointing an experiment at data the test writes: no download, no /usr/share/datasets."""
    from tests.test_data_folder import make_celeba
    from tests.test_data_mnist import digits, write_idx

    data = compose_train([f"experiment={experiment}", "paths.output_dir=x"]).data
    if data._target_.endswith("SyntheticDataModule"):  # the default run's data, and FID turned on to score it
        return ["data.num_images=120", "metrics=fid"]
    if data._target_.endswith("FolderDataModule"):
        make_celeba(folder, n=60)  # 57 training images: enough to score against (metrics.min_heldout)
        return [f"data.root={folder}", "data.num_workers=0"]
    assert data._target_.endswith("MNISTDataModule"), data._target_
    write_idx(folder, digits(64, 0), digits(16, 1), gz=True)
    return [f"data.root={folder}", "data.search_dirs=[]", "data.download=false"]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_trains_and_scores_on_generated_data(
    experiment: str, tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path
) -> None:
    """Each experiment, shrunk, for 2 batches and a FID with the stand-in extractor: offline, with its own data."""
    from dcgan_lit.train import train

    cfg = tiny_cfg(f"experiment={experiment}", *experiment_data(experiment, tmp_path / "data_files"),
                   "trainer.max_epochs=1", "trainer.limit_train_batches=2", "data.batch_size=8",
                   f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=16",
                   "metrics.num_fake_train=16")  # fmt: skip
    metrics = train(cfg)
    fid = next(k for k in ("val/fid", "val/fid_bf16") if k in metrics)  # bf16 where an experiment asks and it is fast
    assert all(math.isfinite(metrics[k]) for k in ("train/d_loss", "train/g_loss", fid, fid.replace("fid", "kid")))
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert any(f"'monitor': '{fid}'" in key for key in best["callbacks"])  # best.ckpt follows the logged score
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 * (cfg.model.get("n_critic", 1) + 1)  # 2 batches, D then G updates each
    assert ckpt["run_config"]["data"]["_target_"] == cfg.data._target_


def test_the_readme_names_every_config_group_and_option() -> None:
    import re

    readme = (CONF_DIR.parent / "README.md").read_text()
    listing = " ".join(readme[readme.index("The config groups:") :].split("Print the composed config")[0].split())
    for group in sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("paths", "hydra")):
        named = re.search(rf"`{group}/` \(([^)]*)\)", listing)
        assert named, f"README's config group list lacks {group}/"
        assert sorted(o.strip() for o in named.group(1).split(",")) == options(group), group
