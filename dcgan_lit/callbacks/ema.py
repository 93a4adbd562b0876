"""An exponential moving average of the weights (Lightning's WeightAveraging) that G's samples come from."""

from collections.abc import Iterator
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn, update_bn

from dcgan_lit.errors import ConfigError
from dcgan_lit.lightning_internals import averaged_model

BN_STATS = ("averaged", "recomputed")


class GeneratorEMA(WeightAveraging):
    """Lightning's EMAWeightAveraging, with a choice of BatchNorm statistics for the averaged G.

    The average is torch's `get_ema_multi_avg_fn` (a lerp) rather than EMAWeightAveraging's
    `decay * avg + (1 - decay) * x`, which moves a constant buffer by rounding at every step: the fixed noise
    would drift away from the noise the run started with, and a resumed run would draw its grids from other z.

    Sample grids, FID/KID and the checkpoints' `state_dict` (so generate and evaluate) use the averaged G
    (see `sampling_generator`). Its BatchNorm layers normalize with running statistics, which can be:

    - `averaged`: averaged like the weights (torch's `use_buffers=True`). These are statistics of the live G's
      activations over the last ~1/(1 - decay) steps, not of the averaged weights' own activations.
    - `recomputed`: before each use, the averaged G runs on `bn_samples` fresh z in train mode and its
      statistics are set from those activations (`torch.optim.swa_utils.update_bn`): the "standing statistics"
      of Brock et al. (2019). The z come from a fixed seed, so training's random stream is untouched.

    A step here is a batch (one D and one G update), not Lightning's global step, which counts each optimizer's
    step: with two optimizers every global step index Lightning hands `should_update` is odd.

    Args:
        decay: the EMA decay per update.
        half_life_images: when set, replaces `decay` by 0.5 ** (images per update / half_life_images), the images
            of all ranks: stylegan2-ada's `ema_kimg` (its half-life, times 1000). The average then spans the same
            images whatever the batch size; 0.9995 at batch 32 is a half-life of 44,350 images.
        bn_stats: averaged or recomputed.
        bn_samples: z drawn to recompute the statistics, in batches of `bn_batch_size`.
        update_every_n_steps: average every n batches.
        update_starting_at_step: the first batch averaged, counted from 0 (a warm-up: the average starts as a copy
            of G after that many batches); None averages from the first batch.
        warmup: after n updates use min(decay, (1 + n) / (10 + n)), TensorFlow's ExponentialMovingAverage with
            num_updates. Without it, the average still holds 0.999^n of G's random initial weights after n steps
            (47% after 760), and its samples stay grey for the first tens of epochs of a short run.
    """

    def __init__(
        self,
        decay: float = 0.999,
        half_life_images: float | None = None,
        bn_stats: str = "averaged",
        bn_samples: int = 8192,
        bn_batch_size: int = 512,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        warmup: bool = False,
    ) -> None:
        if bn_stats not in BN_STATS:
            raise ConfigError(f"callbacks.ema.bn_stats={bn_stats!r}: must be one of {', '.join(BN_STATS)}.")
        if bn_samples < 1 or bn_batch_size < 2:
            raise ConfigError(
                f"callbacks.ema.bn_samples={bn_samples}, bn_batch_size={bn_batch_size}: need >= 1 and >= 2 "
                "(BatchNorm needs 2 samples per batch)."
            )
        if update_every_n_steps < 1:
            raise ConfigError(f"callbacks.ema.update_every_n_steps={update_every_n_steps}: must be >= 1.")
        if half_life_images is not None and half_life_images <= 0:
            raise ConfigError(f"callbacks.ema.half_life_images={half_life_images}: must be > 0 (or null to use decay).")
        self.update = EMAUpdate(decay, warmup)  # the same object AveragedModel calls: its decay is set per batch
        super().__init__(use_buffers=True, multi_avg_fn=self.update)
        self.half_life_images = half_life_images
        self.steps_per_batch = 1  # Lightning's global steps per batch, from the module in setup()
        self.update_every_n_steps, self.update_starting_at_step = update_every_n_steps, update_starting_at_step
        self.bn_stats, self.bn_samples, self.bn_batch_size = bn_stats, bn_samples, bn_batch_size
        self._stats_step: int | None = None  # the global step the averaged G's statistics were computed at

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.steps_per_batch = getattr(pl_module, "optimizer_steps_per_batch", 1)
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.half_life_images is not None:
            images = len(batch) * trainer.world_size * self.update_every_n_steps
            self.update.decay = 0.5 ** (images / self.half_life_images)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """After a batch's optimizer steps (as EMAWeightAveraging), from `update_starting_at_step`, every n batches.

        `step_idx` is Lightning's global step minus 1, so after batch b it is steps_per_batch * (b + 1) - 1.
        """
        if step_idx is None:
            return False
        batch = (step_idx + 1) // self.steps_per_batch - 1
        started = self.update_starting_at_step is None or batch >= self.update_starting_at_step
        return started and batch % self.update_every_n_steps == 0

    def averaged_generator(self, trainer: Trainer, nz: int) -> nn.Module | None:
        """The averaged G, its statistics brought up to date; None before fit has set it up."""
        averaged = averaged_model(self)
        if averaged is None:
            return None
        generator = averaged.generator
        if self.bn_stats == "recomputed" and self._stats_step != trainer.global_step:
            update_bn(self._latents(nz, next(generator.parameters()).device), generator)
            self._stats_step = trainer.global_step
        return generator

    def _latents(self, nz: int, device: torch.device) -> Iterator[Tensor]:
        gen = torch.Generator(device=device).manual_seed(0)
        for start in range(0, self.bn_samples, self.bn_batch_size):
            size = min(self.bn_batch_size, self.bn_samples - start)
            yield torch.randn(max(size, 2), nz, device=device, generator=gen)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        # The checkpoint's state_dict is the averaged model: generate and evaluate sample with its statistics.
        self.averaged_generator(trainer, pl_module.hparams.nz)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)


class EMAUpdate:
    """torch's EMA update (`get_ema_multi_avg_fn`); with warmup, its decay after n updates is
    min(decay, (1 + n) / (10 + n)). An object rather than a closure: `ddp_spawn` pickles the callbacks."""

    def __init__(self, decay: float, warmup: bool) -> None:
        self.decay, self.warmup = decay, warmup

    @torch.no_grad()
    def __call__(self, averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        decay = self.decay
        if self.warmup:
            n = float(num_averaged)  # AveragedModel reads this counter on the host at every update anyway
            decay = min(decay, (1 + n) / (10 + n))
        get_ema_multi_avg_fn(decay)(averaged, current, num_averaged)


def sampling_generator(trainer: Trainer, pl_module: LightningModule) -> nn.Module:
    """G for sample grids and metrics: the averaged G when a weight-averaging callback runs, else the model's G."""
    for callback in trainer.callbacks:
        if isinstance(callback, GeneratorEMA):
            generator = callback.averaged_generator(trainer, pl_module.hparams.nz)  # statistics per bn_stats
        elif isinstance(callback, WeightAveraging):
            averaged = averaged_model(callback)
            generator = None if averaged is None else averaged.generator
        else:
            continue
        if generator is not None:
            return generator
    return pl_module.generator
