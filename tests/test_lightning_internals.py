"""What dcgan_lit/lightning_internals.py reads from Lightning without a public API: fails naming it if it moves."""

from collections.abc import Callable

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit.callbacks.ema import GeneratorEMA, sampling_generator
from dcgan_lit.lightning_internals import averaged_model
from dcgan_lit.module import DCGAN


def test_weight_averaging_keeps_the_averaged_model_where_the_adapter_reads_it(
    tiny_cfg: Callable[..., DictConfig],
) -> None:
    model = instantiate(tiny_cfg().model)
    ema = GeneratorEMA(decay=0.5)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[ema], enable_checkpointing=False)
    assert averaged_model(ema) is None  # before fit sets it up
    ema.setup(trainer, model, "fit")
    averaged = averaged_model(ema)
    assert isinstance(averaged, DCGAN), (
        "Lightning's WeightAveraging no longer keeps its AveragedModel in `_average_model`: update "
        "dcgan_lit/lightning_internals.py, or sample grids and FID silently use the live G instead of the EMA."
    )
    assert averaged.generator is not model.generator
    assert sampling_generator(trainer, model) is averaged.generator  # what grids and FID sample from
