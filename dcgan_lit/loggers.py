"""Lightning's TensorBoardLogger with every tag in one of dcgan_lit's groups: samples/, train/, val/."""

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


class TensorBoardLogger(LightningTensorBoardLogger):
    """Files the `epoch` scalar Lightning adds to every log step as `train/epoch`.

    TensorBoard's Time Series page orders tag groups alphabetically. With every tag in samples/ (grids), train/
    (curves) or val/ (FID, KID), the page opens on the grids and the training curves rather than on a lone
    `epoch` staircase chart.
    """

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics({"train/epoch" if k == "epoch" else k: v for k, v in metrics.items()}, step)
