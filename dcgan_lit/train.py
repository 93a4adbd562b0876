"""Hydra entry point: compose the config, instantiate data, model, callbacks, loggers and trainer, then fit.

python -m dcgan_lit.train                        # built-in synthetic data, offline
python -m dcgan_lit.train experiment=celeba      # the PyTorch DCGAN tutorial
python -m dcgan_lit.train -m model.lr_g=1e-4,2e-4
"""

import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from omegaconf import DictConfig, OmegaConf

from dcgan_lit.callbacks.divergence import DivergenceGuard
from dcgan_lit.callbacks.preemption import PreemptionCheckpoint
from dcgan_lit.callbacks.random_state import RandomState
from dcgan_lit.callbacks.run_config import RunConfig
from dcgan_lit.checkpoint_check import check_checkpoint
from dcgan_lit.config_check import check_config, check_multirun
from dcgan_lit.errors import ConfigError, TrainingDiverged, UserError
from dcgan_lit.output_files import writable_folder

log = logging.getLogger(__name__)
info = rank_zero_only(log.info)  # under DDP every rank runs this file; say things once
EXIT_USER_ERROR = 2  # a config, data or checkpoint problem the message explains
EXIT_DIVERGED = 3  # a loss became NaN or infinite; the last good checkpoint is kept
EXIT_INTERRUPTED = 128 + signal.SIGTERM  # 143, what schedulers expect of a job that was told to stop (130: Ctrl-C)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every `_target_` entry of a config group such as `callbacks` or `logger`."""
    return [instantiate(node) for node in (group or {}).values() if node is not None and "_target_" in node]


def train(cfg: DictConfig) -> dict[str, float]:
    """Train a GAN as `cfg` describes; returns the final callback metrics as floats."""
    check_config(cfg)
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        # A submitit launcher starts every rank itself, as SLURM tasks, so nothing re-runs the sweep.
        by_slurm = "submitit" in str(hydra_cfg.launcher.get("_target_", ""))
        check_multirun(cfg, hydra_cfg.mode == RunMode.MULTIRUN and not by_slurm)
    writable_folder(cfg.paths.output_dir, key="paths.output_dir")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    g, d = (
        get_human_readable_count(sum(p.numel() for p in net.parameters()))
        for net in (model.generator, model.discriminator)
    )
    info(f"model: G {type(model.generator).__name__} {g} parameters, D {type(model.discriminator).__name__} {d}")
    resumed_at = None  # the global step of the checkpoint resumed from
    if cfg.get("ckpt_path"):
        ckpt = check_checkpoint(cfg.ckpt_path, model, dict(model.hparams))
        resumed_at = ckpt.get("global_step")
        info(f"resuming {cfg.ckpt_path}: epoch {ckpt.get('epoch')}, {resumed_at} optimizer steps done")
    callbacks = instantiate_group(cfg.get("callbacks"))
    if cfg.get("metrics"):
        callbacks.append(instantiate(cfg.metrics))
    # What every run needs, whatever the callbacks group lists: NaN safety, exact resumes, and the settings that
    # generate and evaluate rebuild the nets from.
    run_config = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}
    callbacks += [DivergenceGuard(), RandomState(), RunConfig(run_config)]
    loggers = instantiate_group(cfg.get("logger"))
    # trainer.max_steps counts batches (G updates); Lightning counts optimizer steps, several per GAN batch.
    steps = {}
    if cfg.trainer.get("max_steps", -1) not in (None, -1):
        steps["max_steps"] = cfg.trainer.max_steps * model.optimizer_steps_per_batch
        # Lightning's own "`max_steps=N` reached" line shows its count; say why it is not the one typed.
        info(
            f"trainer.max_steps={cfg.trainer.max_steps} batches: Lightning counts {steps['max_steps']} "
            f"optimizer steps ({model.optimizer_steps_per_batch} per batch)"
        )
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **steps)

    info(f"run folder: {cfg.paths.output_dir}")
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SIGTERMException:
        preemption = [c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)]
        signum = preemption[0].signal if preemption else signal.SIGTERM
        where = (
            f"saved {preemption[0].ckpt_path}; continue with ckpt_path={preemption[0].ckpt_path}"
            if preemption
            else "no checkpoint callback"
        )
        print(
            f"interrupted by {signum.name} at epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_progress.current.completed}: {where}",
            file=sys.stderr,
        )
        sys.exit(128 + signum)  # what shells and schedulers expect of a job stopped by that signal
    if resumed_at is not None and trainer.global_step == resumed_at:
        limits = f"trainer.max_epochs={cfg.trainer.max_epochs}" + (
            f", trainer.max_steps={cfg.trainer.max_steps}" if cfg.trainer.get("max_steps", -1) != -1 else ""
        )
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path!r} has already trained {trainer.current_epoch} epochs, so {limits} left "
            f"nothing to train. Raise the limit to continue, e.g. trainer.max_epochs={trainer.current_epoch + 5}."
        )
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def user_error(e: BaseException) -> BaseException | None:
    """The user-fixable error behind e, if any: Hydra wraps errors raised inside `_target_` constructors."""
    while e is not None:
        if isinstance(e, (UserError, MisconfigurationException)):
            return e
        e = e.__cause__
    return None


def quiet_console() -> None:
    """Keep the console to dcgan_lit's lines, the progress bar and warnings a user can act on.

    Lightning's INFO lines (the seed, "GPU available: False", cloud-logging tips, "`Trainer.fit` stopped") go
    through its loggers, lowered to WARNING as Lightning's docs show; dcgan_lit says what matters itself. The
    LeafSpec deprecation comes from Lightning's own use of torch's pytree: nothing a user could change. Nor is
    best.ckpt's "could not find the monitored key" for val/fid or val/kid: those are logged only at scored
    epochs (metrics.every_n_epochs), and the epochs between have none by design.
    """
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", r"`ModelCheckpoint\(monitor='val/(fid|kid)'\)` could not find the monitored key")


def run(cfg: DictConfig) -> float | None:
    """train(cfg) as the command line runs it: an error the user can fix is one line and an exit code, not a
    traceback; returns the metric a sweeper optimizes (`optimized_metric`)."""
    quiet_console()
    try:
        metrics = train(cfg)
    except (UserError, MisconfigurationException, InstantiationException) as e:
        cause = user_error(e)
        if cause is None:
            raise
        if isinstance(cause, TrainingDiverged):
            last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
            kept = f" The last good checkpoint: {last}" if last.is_file() else " No checkpoint had been written yet."
            print(f"error: {cause}{kept}", file=sys.stderr)
            sys.exit(EXIT_DIVERGED)
        # One line the user can act on, not a traceback; nothing has been written that could be lost.
        where = "trainer: " if isinstance(cause, MisconfigurationException) else ""
        print(f"error: {where}{cause}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    info(f"done; see the run with: tensorboard --logdir {cfg.paths.output_dir}")
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
