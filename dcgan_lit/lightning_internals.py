"""The one place dcgan_lit reads Lightning state that has no public API.

Each function names the private attribute it reads; tests/test_lightning_internals.py fails with that name when
a Lightning release moves it, instead of the run quietly sampling from the wrong generator.
"""

from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import WeightAveraging


def averaged_model(callback: WeightAveraging) -> LightningModule | None:
    """The averaged copy of the LightningModule a WeightAveraging callback keeps; None before fit sets it up.

    Reads `WeightAveraging._average_model` (a torch AveragedModel): Lightning offers no accessor.
    """
    average = getattr(callback, "_average_model", None)
    return None if average is None else average.module
