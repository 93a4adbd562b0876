"""Training speed in images per second, measured without a host sync on every step.

Lightning's ThroughputMonitor calls torch.cuda.synchronize() after every batch, which stalls a GPU whose
steps are a few milliseconds long. This callback synchronizes only every `every_n_batches` (the logging
interval, where Lightning reads the logged losses back anyway), so the figures describe the run as it is.
"""

import json
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from dcgan_lit.precision import cpu_has_amx_bf16


class ImagesPerSecond(Callback):
    """Logs `train/images_per_sec` and writes `throughput.json` (steady-state img/s, training time, peak memory).

    Args:
        every_n_batches: the measuring interval in batches.
        warmup_batches: batches left out of the steady-state figure (cuDNN autotuning, CUDA-graph capture).
        filename: the JSON summary, written into the trainer's default_root_dir (the run folder) by rank 0.
    """

    def __init__(self, every_n_batches: int = 50, warmup_batches: int = 20, filename: str = "throughput.json") -> None:
        self.every_n_batches, self.warmup_batches, self.filename = every_n_batches, warmup_batches, filename
        self._images = 0  # images trained on by all ranks in this fit
        self._batches = 0  # batches of this fit: a resumed run's figures describe what it trained itself
        self._mark: tuple[float, int] | None = None  # (time, images) at the last synchronized point
        self._steady: tuple[float, int] | None = None  # (time, images) when the warm-up ended
        self._fit_start = 0.0
        self._epoch_seconds: list[float] = []
        self._epoch_start = 0.0

    def _sync_time(self, pl_module: LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self._fit_start = self._sync_time(pl_module)
        # A run resumed mid-epoch gets no on_train_epoch_start for that epoch (Lightning 2.6): start its clock here.
        self._epoch_start = self._fit_start

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_start = self._sync_time(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: object, batch: Tensor, batch_idx: int
    ) -> None:
        self._images += len(batch) * trainer.world_size
        self._batches += 1
        if self._batches == self.warmup_batches:
            self._steady = (self._sync_time(pl_module), self._images)
        if pl_module.batches_done % self.every_n_batches:  # the logging steps, where the losses are read back anyway
            return
        now = self._sync_time(pl_module)
        if self._mark is not None and now > self._mark[0]:
            rate = (self._images - self._mark[1]) / (now - self._mark[0])
            pl_module.log("train/images_per_sec", rate, on_step=True, on_epoch=False, rank_zero_only=True)
        self._mark = (now, self._images)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_seconds.append(self._sync_time(pl_module) - self._epoch_start)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        end = self._sync_time(pl_module)
        summary = self.summary(trainer, pl_module, end)
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(summary, indent=2) + "\n")

    def summary(self, trainer: Trainer, pl_module: LightningModule, end: float) -> dict:
        steady = None
        if self._steady is not None and end > self._steady[0]:
            steady = (self._images - self._steady[1]) / (end - self._steady[0])
        on_gpu = pl_module.device.type == "cuda"
        datamodule = trainer.datamodule
        return {
            "steady_images_per_sec": steady,
            "train_seconds": end - self._fit_start,  # training only: decoding and caching happen before
            "epoch_seconds": self._epoch_seconds,
            "images": self._images,
            "batches": self._batches,
            "preprocess_seconds": getattr(datamodule, "preprocess_seconds", None),
            "device_cache": getattr(datamodule, "device_images", None) is not None,
            "cuda_graph": getattr(pl_module, "graph_step", None) is not None,
            "precision": str(trainer.precision),
            "channels_last": getattr(pl_module, "memory_format", None) == torch.channels_last,
            "cpu_amx_bf16": cpu_has_amx_bf16(),  # what trainer.precision=auto decides by on a CPU
            "world_size": trainer.world_size,
            "device": torch.cuda.get_device_name(pl_module.device) if on_gpu else "cpu",
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated(pl_module.device) / 2**30 if on_gpu else None,
        }
