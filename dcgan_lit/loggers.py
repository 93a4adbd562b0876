"""The loggers as the config group `logger/` builds them: TensorBoard with its tags grouped, and W&B and MLflow
(optional extras) writing offline under outputs/."""

import importlib.util
import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from dcgan_lit.console import info
from dcgan_lit.errors import ConfigError

log = logging.getLogger(__name__)


class TensorBoardLogger(LightningTensorBoardLogger):
    """Files the `epoch` scalar Lightning adds to every log step as `train/epoch`.

    TensorBoard's Time Series page orders tag groups alphabetically. With every tag in samples/ (grids), train/
    (curves) or val/ (FID, KID), the page opens on the grids and the training curves rather than on a lone
    `epoch` staircase chart.
    """

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics({"train/epoch" if k == "epoch" else k: v for k, v in metrics.items()}, step)


def needs(module: str, logger: str, extra: str) -> None:
    """One line naming the pip extra when an optional logger's package is missing, instead of an import error."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"logger={logger} needs the {module} package: pip install -e '.[{extra}]' (or pick another logger=)"
        )


def has_wandb_key() -> bool:
    """Whether this machine can upload to W&B: WANDB_API_KEY, or the key `wandb login` stores in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def offline_by_default() -> bool:
    """Offline unless this machine can upload, or WANDB_MODE (which wandb.init reads itself) decides."""
    return os.environ.get("WANDB_MODE") is None and not has_wandb_key()


def wandb_logger(save_dir: str, project: str, offline: bool | None = None, **kwargs: Any) -> Logger:
    """Lightning's WandbLogger writing under the run folder (`save_dir`/wandb/).

    Args:
        offline: null: offline unless this machine has a W&B key (or WANDB_MODE says otherwise); an offline run
            is uploaded later with `wandb sync <save_dir>/wandb/offline-run-*`.
    """
    needs("wandb", "wandb", "wandb")
    if offline is None:
        offline = offline_by_default()
        if offline:
            info(log, f"wandb: no API key here, so the run is written offline under {save_dir}/wandb; upload it with "
                      f"wandb sync {save_dir}/wandb/offline-run-*")  # fmt: skip
    return WandbLogger(save_dir=save_dir, project=project, offline=offline, **kwargs)


def mlflow_logger(store_dir: str, experiment_name: str, **kwargs: Any) -> Logger:
    """Lightning's MLFlowLogger on a local store shared by all runs: `store_dir`/mlflow.db holds the runs' params
    and metrics, `store_dir`/artifacts their images and figures.

    MLflow 3 refuses its old folder store ("maintenance mode") unless MLFLOW_ALLOW_FILE_STORE=true, and names a
    SQLite file as the local store that replaces it.
    """
    needs("mlflow", "mlflow", "mlflow")
    store = Path(store_dir).resolve()
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"logger.mlflow.store_dir={store_dir!r}: cannot create it ({e.strerror}); choose a writable folder"
        ) from e
    for name in ("alembic", "mlflow.store.db.utils"):  # the store's table set-up, not news to a user
        logging.getLogger(name).setLevel(logging.WARNING)
    return MLFlowLogger(
        experiment_name=experiment_name,
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifact_location=(store / "artifacts").as_uri(),
        **kwargs,
    )


def finish(loggers: list[Logger], failed: bool) -> None:
    """End this training run's W&B run. wandb keeps one run per process and the jobs of a multirun share the
    process, so without this the next job would log into this job's run (Lightning reuses `wandb.run`)."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=1 if failed else 0)
