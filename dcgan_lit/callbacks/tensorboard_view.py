"""What TensorBoard shows besides the logged scalars and grids: the DCGAN tutorial's two plots as interactive
multi-line charts (the Custom Scalars tab), each epoch's mean of the step's stats, and an HParams tab of the
settings a sweep varies beside each run's final metrics. The same settings go to W&B and MLflow as the run's
config and parameters, where the final metrics sit beside them already."""

import re
from collections.abc import Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.tensorboard.summary import hparams

from dcgan_lit.lightning_internals import write_summary
from dcgan_lit.logger_media import log_settings
from dcgan_lit.module import STAT_NAMES

# The epoch means of the step's stats: train/d_loss_epoch, ..., train/D_G_z2_epoch.
EPOCH_MEANS: tuple[str, ...] = tuple(f"{name}_epoch" for name in STAT_NAMES)

# Custom Scalars: each chart draws its tags as lines on one set of axes, as the tutorial's matplotlib plots do.
# TensorBoard reads each tag as a regular expression, searched anywhere in the name: anchored, so that
# train/d_loss does not also draw train/d_loss_epoch.
CHARTS: dict[str, dict[str, list[str]]] = {
    "GAN (per logged batch)": {
        "G and D loss": ["train/g_loss", "train/d_loss"],
        "D(x) and D(G(z)), before and after D's step": ["train/D_x", "train/D_G_z1", "train/D_G_z2"],
    },
    "GAN (epoch means)": {
        "G and D loss": ["train/g_loss_epoch", "train/d_loss_epoch"],
        "D(x) and D(G(z))": ["train/D_x_epoch", "train/D_G_z1_epoch", "train/D_G_z2_epoch"],
    },
    "Sample quality": {
        "FID": ["val/fid", "val/fid_bf16"],
        "KID": ["val/kid", "val/kid_bf16"],
        "precision and recall": ["val/precision", "val/recall", "val/precision_bf16", "val/recall_bf16"],
    },
}
LAYOUT: dict[str, dict[str, list]] = {
    category: {title: ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]] for title, tags in charts.items()}
    for category, charts in CHARTS.items()
}

# The HParams tab's metric columns, where the run has them.
METRICS: tuple[str, ...] = (
    *(f"val/{name}{suffix}" for suffix in ("", "_bf16") for name in ("fid", "kid", "precision", "recall")),
    *EPOCH_MEANS,
)


def hparam_value(value: object) -> float | str | bool:
    """What the HParams tab can show: numbers and strings as they are, lists joined, anything else (None) as str()
    writes it. MLflow refuses a parameter logged twice with two values, and Lightning logs the module's own
    hyperparameters (lr_decay_start=None among them) with str(): 'None' here too, not 'none'."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Sequence):
        return ", ".join(str(v) for v in value)
    return str(value)


class TensorBoardView(Callback):
    """The Custom Scalars layout at the start, epoch means of the stats, and the HParams tab at the end.

    Args:
        settings: the HParams tab's columns, {name: value}; conf/callbacks/default.yaml picks them from the run's
            config (learning rates, betas, loss, nz, widths, batch size, image size, epochs, seed, precision, EMA).
    """

    def __init__(self, settings: dict[str, object]) -> None:
        self.settings = {name: hparam_value(value) for name, value in settings.items()}
        self._sum: Tensor | None = None
        self._batches = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "precision" in self.settings:  # what ran: trainer.precision=auto resolves to one (dcgan_lit/precision.py)
            self.settings["precision"] = str(trainer.precision)
        if trainer.is_global_zero:
            log_settings(trainer.loggers, self.settings)
        for writer in self._writers(trainer):
            writer.add_custom_scalars(LAYOUT)

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: dict, batch: object, batch_idx: int
    ) -> None:
        stats = outputs["stats"]  # summed on the device: no host sync until the epoch ends
        self._sum = stats.detach().clone() if self._sum is None else self._sum.add_(stats)
        self._batches += 1

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._sum is None:
            return
        means = (self._sum / self._batches).tolist()
        # Under DDP each rank has its own shard and rank 0 alone writes: sync_dist makes the mean all ranks' (every
        # rank runs as many batches), with one small all-reduce per name an epoch.
        pl_module.log_dict(dict(zip(EPOCH_MEANS, means, strict=True)), on_step=False, on_epoch=True, sync_dist=True)
        self._sum, self._batches = None, 0

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logged = trainer.callback_metrics
        metrics = {name: float(logged[name]) for name in METRICS if name in logged}
        if not metrics:
            return
        # The tab reads each metric's value from the run's own scalars, already logged; writing them again (as
        # TensorBoardLogger.log_hyperparams would, at step 0) would put a stray point on every curve.
        experiment, start, end = hparams(self.settings, metrics)
        for writer in self._writers(trainer):
            for summary in (experiment, start, end):
                write_summary(writer, summary)
            writer.flush()

    @staticmethod
    def _writers(trainer: Trainer) -> list:
        if not trainer.is_global_zero:
            return []
        return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
