"""Pictures and settings, sent to each of the run's loggers through that logger's own API.

TensorBoard gets `add_image`; Weights & Biases `WandbLogger.log_image` and its run config; MLflow its
`log_image` (a time-stepped image, with the step slider of MLflow's UI), `log_figure` and run parameters. The CSV
logger takes scalars only. The scalars themselves (training curves, `val/fid`, ...) reach every logger through
Lightning's `self.log`, so this module handles only what Lightning does not send.
"""

import io

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor


def to_hwc(image: Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] or uint8 -> (H, W, 3) uint8, as W&B, MLflow and PIL take pictures."""
    if image.is_floating_point():
        image = image.mul(255).add(0.5).clamp(0, 255).byte()  # save_image's rounding: the PNG's pixels
    return image.permute(1, 2, 0).cpu().numpy()


def figure_pixels(fig: Figure, dpi: int = 100) -> np.ndarray:
    """The figure as it is saved to a PNG, as (H, W, 3) uint8."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return np.asarray(Image.open(buffer).convert("RGB"))


def log_image(trainer: Trainer, tag: str, image: Tensor, step: int, caption: str) -> None:
    """`image` ((3, H, W), float in [0, 1] or uint8) as `tag` in every logger that takes pictures, from rank 0.

    `step` is the picture's own counter (the epoch for sample grids): TensorBoard's and MLflow's image sliders
    count it. W&B draws every value against `trainer/global_step`, so there the picture lands at the current step,
    with `caption` (for example "epoch 3") to name it.
    """
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, image, global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[to_hwc(image)], caption=[caption])
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_image(logger.run_id, to_hwc(image), key=tag, step=step)


def log_figure(trainer: Trainer, tag: str, fig: Figure) -> None:
    """A matplotlib figure (the tutorial's loss and score plots) as `tag` in W&B and MLflow, from rank 0.

    TensorBoard draws the same curves as interactive charts (Custom Scalars, callbacks/tensorboard_view.py), so a
    static copy there would be a second, frozen chart of the same data.
    """
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=tag, images=[figure_pixels(fig)])
        elif isinstance(logger, MLFlowLogger):
            logger.experiment.log_figure(logger.run_id, fig, f"{tag}.png")


def log_settings(loggers: list[Logger], settings: dict[str, object]) -> None:
    """The run's HParams set as W&B config and MLflow parameters; TensorBoard's HParams tab is written apart
    (it pairs the settings with the final metrics, tensorboard_view.py)."""
    for logger in loggers:
        if isinstance(logger, (WandbLogger, MLFlowLogger)):
            logger.log_hyperparams(settings)
