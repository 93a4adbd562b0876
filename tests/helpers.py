"""Callbacks the tests add to real runs through Hydra (`+callbacks.NAME._target_=tests.helpers.X`)."""

import json
import math
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from dcgan_lit.callbacks.sample_grid import batches_seen


class Pace(Callback):
    """Slows training down and reports progress in a file, so a test can signal the process mid-epoch."""

    def __init__(self, path: str, seconds: float = 0.2) -> None:
        self.path, self.seconds = Path(path), seconds

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        done = {
            "epoch": trainer.current_epoch,
            "batches": batches_seen(trainer) + 1,
            "global_step": trainer.global_step,
        }
        self.path.write_text(json.dumps(done))
        time.sleep(self.seconds)


class Poison(Callback):
    """Fills D's first convolution with NaN before batch `batch`, so that batch's losses are NaN."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if batches_seen(trainer) == self.batch:
            next(pl_module.discriminator.parameters()).data.fill_(math.nan)


class SaveRankWeights(Callback):
    """At the end of training every rank writes its G parameters to `dirpath/rank<R>.pt` (for comparing ranks)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        params = {k: v.detach().cpu() for k, v in pl_module.generator.named_parameters()}
        torch.save(params, self.dirpath / f"rank{trainer.global_rank}.pt")
