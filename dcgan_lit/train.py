"""Hydra entry point: compose the config, instantiate data, model, callbacks, loggers and trainer, then fit.

python -m dcgan_lit.train                        # built-in synthetic data, offline
python -m dcgan_lit.train experiment=celeba      # the PyTorch DCGAN tutorial
python -m dcgan_lit.train -m model.lr_g=1e-4,2e-4
"""

import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from omegaconf import DictConfig, OmegaConf
from torch.multiprocessing.spawn import ProcessExitedException

from dcgan_lit.callbacks.divergence import DivergenceGuard
from dcgan_lit.callbacks.preemption import PreemptionCheckpoint, signals_left_to_spawned_ranks
from dcgan_lit.callbacks.random_state import RandomState
from dcgan_lit.callbacks.run_config import RunConfig
from dcgan_lit.callbacks.spawned_logging import SpawnedLogging
from dcgan_lit.checkpoint_check import check_checkpoint
from dcgan_lit.config_check import check_accelerator, check_batch_norm, check_config, check_multirun
from dcgan_lit.console import info, quiet_console, warning
from dcgan_lit.errors import (
    ConfigError,
    Interrupted,
    JobFailed,
    TrainingDiverged,
    UserError,
    raised_in_a_spawned_rank,
)
from dcgan_lit.lightning_internals import starts_rank_processes, stopped_at
from dcgan_lit.loggers import finish as finish_loggers
from dcgan_lit.output_files import writable_folder
from dcgan_lit.precision import emulated_bf16, resolve_precision, trains_on_cpu

log = logging.getLogger(__name__)
EXIT_USER_ERROR = 2  # a config, data or checkpoint problem the message explains
EXIT_DIVERGED = 3  # a loss became NaN or infinite; the last good checkpoint is kept
EXIT_BUG = 1  # anything else: Python's own exit code for an uncaught exception
ERROR_FILE = "error.txt"  # a failed run's reason, in its run folder


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
    check_accelerator(str(cfg.trainer.get("accelerator", "auto")))
    writable_folder(cfg.paths.output_dir, key="paths.output_dir")
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model)
    check_batch_norm(model, datamodule.batch_size)
    g, d = (
        get_human_readable_count(sum(p.numel() for p in net.parameters()))
        for net in (model.generator, model.discriminator)
    )
    info(log, f"model: G {type(model.generator).__name__} {g} parameters, D {type(model.discriminator).__name__} {d}")
    resumed_at = None  # the global step of the checkpoint resumed from
    if cfg.get("ckpt_path"):
        ckpt = check_checkpoint(cfg.ckpt_path, model, dict(model.hparams))
        resumed_at = ckpt.get("global_step")
        info(log, f"resuming {cfg.ckpt_path}: epoch {ckpt.get('epoch')}, {resumed_at} optimizer steps done")
    callbacks = instantiate_group(cfg.get("callbacks"))
    # metrics=none leaves it null, or holding only what an experiment tunes for its scores (experiment=space's cadence)
    if cfg.get("metrics") and cfg.metrics.get("_target_"):
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
            log,
            f"trainer.max_steps={cfg.trainer.max_steps} batches: Lightning counts {steps['max_steps']} "
            f"optimizer steps ({model.optimizer_steps_per_batch} per batch)",
        )
    precision, why = resolve_precision(str(cfg.trainer.precision), str(cfg.trainer.accelerator))
    info(log, f"precision: {precision} ({why})")
    if slow := emulated_bf16("trainer.precision", precision, trains_on_cpu(str(cfg.trainer.accelerator))):
        warning(log, slow)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision, **steps
    )

    spawned = starts_rank_processes(trainer)  # ddp_spawn*: the ranks are processes of their own
    if spawned:  # a spawned one starts with no logging: give it this process's
        trainer.callbacks.append(SpawnedLogging())

    info(log, f"run folder: {cfg.paths.output_dir}")
    fitted = False
    preemption = [c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)]
    where = (
        f"saved {preemption[0].ckpt_path}; continue with ckpt_path={preemption[0].ckpt_path}"
        if preemption
        else "no checkpoint callback"
    )
    try:
        with signals_left_to_spawned_ranks(trainer, spawned):
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        fitted = True
    except SIGTERMException:
        signum = preemption[0].signal if preemption else signal.SIGTERM
        raise Interrupted(signum, f"interrupted by {signum.name} at {stopped_at(trainer)}: {where}") from None
    except ProcessExitedException as e:  # a spawned rank's; the ranks' own lines in the log say where they stopped
        if e.exit_code not in (128 + signal.SIGTERM, 128 + signal.SIGINT):
            raise
        signum = signal.Signals(e.exit_code - 128)
        raise Interrupted(signum, f"interrupted by {signum.name}: {where}") from None
    finally:
        finish_loggers(loggers, failed=not fitted)
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
    """The user-fixable error behind e, if any: Hydra wraps errors raised inside `_target_` constructors, and a
    spawned DDP rank's error reaches this process as its traceback's text."""
    while e is not None:
        if isinstance(e, (UserError, MisconfigurationException)):
            return e
        if (rebuilt := raised_in_a_spawned_rank(e)) is not None:
            return rebuilt
        e = e.__cause__
    return None


def failure(e: Exception, output_dir: Path | None) -> tuple[str, int]:
    """The one line that says why a run failed, and its exit code; a bug (no user error behind it) is named by its
    exception type, and its traceback goes to stderr."""
    cause = user_error(e)
    if isinstance(cause, TrainingDiverged):
        last = output_dir / "checkpoints" / "last.ckpt" if output_dir else None
        kept = (
            f" The last good checkpoint: {last}" if last and last.is_file() else " No checkpoint had been written yet."
        )
        return f"error: {cause}{kept}", EXIT_DIVERGED
    if cause is not None:
        where = "trainer: " if isinstance(cause, MisconfigurationException) else ""
        return f"error: {where}{cause}", EXIT_USER_ERROR
    lines = str(e).strip().splitlines() or [""]
    return f"error: {type(e).__name__}: {lines[0]}", EXIT_BUG


def in_multirun() -> bool:
    """Whether this run is one job of a Hydra sweep (`-m`), run by a launcher that goes on to the next job."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_folder(cfg: DictConfig) -> Path | None:
    """The run's folder, if it could be made: where a failure's reason is written beside the run's other files."""
    try:
        folder = Path(cfg.paths.output_dir)
    except Exception:  # an unresolvable paths.output_dir is itself the error being reported
        return None
    return folder if folder.is_dir() else None


def run(cfg: DictConfig) -> float | None:
    """train(cfg) as the command line runs it; returns the metric a sweeper optimizes (`optimized_metric`).

    A failure is one line on stderr, also written to the run folder's error.txt, never a traceback wall (a bug
    keeps its traceback). A single run then exits: 2 for an error the user can fix, 3 for a diverged loss. A job
    of a multirun raises JobFailed instead, so that Hydra marks that job failed and the sweep goes on. An
    interruption (SIGTERM, Ctrl-C) exits with 128 + the signal, 143 or 130, and ends a sweep too: the scheduler
    or the user asked the whole job to stop.
    """
    quiet_console()
    try:
        value = optimized_value(cfg.get("optimized_metric"), train(cfg))
    except Interrupted as e:
        print(e, file=sys.stderr)
        sys.exit(128 + e.signum)  # what shells and schedulers expect of a job stopped by that signal
    except Exception as e:
        multirun, folder = in_multirun(), run_folder(cfg)
        line, code = failure(e, folder)
        if code == EXIT_BUG and not multirun:
            raise
        details = traceback.format_exc() if code == EXIT_BUG else ""
        print(details + line, file=sys.stderr)
        if folder is not None:
            try:
                (folder / ERROR_FILE).write_text(details + line + "\n")
            except OSError:
                pass  # the line is on the console; a run folder that takes no files is often the error itself
        if multirun:
            raise JobFailed(line) from e
        sys.exit(code)
    info(log, "done; see the run with: " + "; ".join(viewers(cfg)))
    return value


def viewers(cfg: DictConfig) -> list[str]:
    """The command that shows the run, for each of its loggers."""
    out, shown = cfg.paths.output_dir, []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        if name == "tensorboard":
            shown.append(f"tensorboard --logdir {out}")
        elif name == "csv":
            shown.append(f"{Path(out) / 'csv' / 'metrics.csv'}")
        elif name == "wandb":
            shown.append(f"wandb sync {Path(out) / 'wandb'}/offline-run-* (if offline), then the W&B web page")
        elif name == "mlflow":
            shown.append(f"mlflow ui --backend-store-uri sqlite:///{Path(node.store_dir).resolve() / 'mlflow.db'}")
    return shown or [str(out)]


def optimized_value(metric: str | None, metrics: dict[str, float]) -> float | None:
    """The value of `optimized_metric` for a sweeper; a run that did not log it failed as a trial."""
    if not metric:
        return None
    if metric not in metrics:
        raise ConfigError(
            f"optimized_metric={metric} was not logged by this run, so a sweeper has nothing to compare; it logged "
            f"{', '.join(sorted(metrics)) or 'nothing'}."
        )
    return metrics[metric]


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
