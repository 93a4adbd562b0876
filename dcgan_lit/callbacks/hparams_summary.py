"""The TensorBoard HParams tab: every run's settings beside its final metrics, so sweeps compare at a glance."""

from numbers import Number

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams

from dcgan_lit.callbacks.run_config import RunConfig

# Final metrics shown in the tab, when the run has them.
METRICS: tuple[str, ...] = ("val/fid", "val/kid", "train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z2")


def flat_settings(config: dict, prefix: str = "") -> dict[str, object]:
    """{'model': {'lr_g': 2e-4, 'generator': {...}}} -> {'model.lr_g': 2e-4, ...}, scalars only."""
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{name}."))
        elif isinstance(value, (Number, str, bool)) and not name.endswith("_target_"):
            out[name] = value
    return out


class HParamsSummary(Callback):
    """Writes the run's model and data settings with its final metrics to the TensorBoard HParams tab."""

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run_config = next((c.config for c in trainer.callbacks if isinstance(c, RunConfig)), None)
        settings = flat_settings(run_config or dict(pl_module.hparams))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in METRICS}
        if not metrics or not trainer.is_global_zero:
            return
        # The tab reads each metric's value from the run's own scalars, already logged; writing them again (as
        # TensorBoardLogger.log_hyperparams would, at step 0) would put a stray point on every curve.
        experiment, start, end = hparams(settings, metrics)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                writer = logger.experiment.file_writer
                for summary in (experiment, start, end):
                    writer.add_summary(summary)
                writer.flush()
