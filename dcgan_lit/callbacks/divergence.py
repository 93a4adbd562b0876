"""Stop a run whose losses or weights became NaN or infinite, and never write a checkpoint of that state."""

import math

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from dcgan_lit.errors import TrainingDiverged

LOSS_NAMES: tuple[str, str] = ("train/d_loss", "train/g_loss")  # the first two of the step's stats


class DivergenceGuard(Callback):
    """Watches the stats every training_step returns (`{"stats": (d_loss, g_loss, ...), "logged": ...}`) without a
    host sync.

    The first batch whose losses were not finite is kept on the device and read back only where the host syncs
    anyway: at the batches the logger writes, at each epoch's last batch, and before any checkpoint is written.
    """

    def __init__(self) -> None:
        self.first_bad_batch: Tensor | None = None  # -1: none yet
        self.first_bad_stats: Tensor | None = None

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: dict, batch: object, batch_idx: int
    ) -> None:
        stats = outputs["stats"]
        batch_number = pl_module.batches_done - 1  # this batch, counted from 0 over the whole run
        if self.first_bad_batch is None:
            self.first_bad_batch = torch.full((), -1, dtype=torch.long, device=stats.device)
            self.first_bad_stats = torch.zeros_like(stats)
        first = (self.first_bad_batch < 0) & ~torch.isfinite(stats[:2]).all()
        self.first_bad_stats.copy_(torch.where(first, stats, self.first_bad_stats))
        self.first_bad_batch.copy_(torch.where(first, batch_number, self.first_bad_batch))
        if outputs["logged"]:  # the host syncs there anyway
            self.raise_if_diverged()

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        self.raise_if_diverged()  # never overwrite the last good checkpoint with NaN weights
        # The last update can also overflow the weights while its losses were still finite.
        bad = [name for name, p in pl_module.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingDiverged(
                f"weights became NaN or infinite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}) "
                f"by batch {pl_module.batches_done}: no checkpoint of this state was written. Lower "
                "model.lr_g / model.lr_d and resume from the last checkpoint."
            )

    def raise_if_diverged(self) -> None:
        """TrainingDiverged if a loss has been NaN or infinite since training started (syncs once)."""
        if self.first_bad_batch is None or int(self.first_bad_batch) < 0:
            return
        values = dict(zip(LOSS_NAMES, self.first_bad_stats[:2].tolist(), strict=True))
        bad = ", ".join(f"{name}={value}" for name, value in values.items() if not math.isfinite(value))
        raise TrainingDiverged(
            f"{bad} at batch {int(self.first_bad_batch)}: training stopped and no checkpoint of this state was "
            "written. Lower model.lr_g / model.lr_d, or check the data, and resume from the last checkpoint."
        )
