"""Callbacks the tests add to real runs through Hydra (`+callbacks.NAME._target_=tests.helpers.X`)."""

import contextlib
import json
import math
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class Pace(Callback):
    """Slows training down and reports progress in a file, so a test can signal the process mid-epoch."""

    def __init__(self, path: str, seconds: float = 0.2) -> None:
        self.path, self.seconds = Path(path), seconds
        self.first: int | None = None  # batches done after this process's first batch: 1 unless resumed

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        self.first = pl_module.batches_done if self.first is None else self.first
        done = {
            "epoch": trainer.current_epoch,
            "batches": pl_module.batches_done,
            "global_step": trainer.global_step,
            "first": self.first,
        }
        self.path.write_text(json.dumps(done))
        time.sleep(self.seconds)


class Poison(Callback):
    """Fills D's first convolution with NaN before batch `batch`, so that batch's losses are NaN; with `min_lr_d`,
    only in runs whose model.lr_d is at least that (a sweep's trials at a high learning rate "diverge")."""

    def __init__(self, batch: int, min_lr_d: float = 0.0) -> None:
        self.batch, self.min_lr_d = batch, min_lr_d

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if pl_module.batches_done == self.batch and pl_module.hparams.lr_d >= self.min_lr_d:
            next(pl_module.discriminator.parameters()).data.fill_(math.nan)


class SaveRankWeights(Callback):
    """At the end of training every rank writes its G parameters to `dirpath/rank<R>.pt` (for comparing ranks)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        params = {k: v.detach().cpu() for k, v in pl_module.generator.named_parameters()}
        torch.save(params, self.dirpath / f"rank{trainer.global_rank}.pt")


class SaveRankDraws(Callback):
    """Per rank: the sum of each z that G trains on, the images the FID extractor embedded, and the logged val/fid.

    Written to `dirpath/draws<R>.json` at the end of training, for comparing what the DDP ranks drew and computed.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.z_sums: list[float] = []
        self.embedded = 0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from dcgan_lit.callbacks.sample_quality import SampleQuality

        def record_z(module: torch.nn.Module, args: tuple) -> None:
            if module.training:  # the training step's G(z), not the eval-mode sample grids
                self.z_sums.append(round(float(args[0].double().sum()), 4))

        def count(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
            if args[0].dim() == 4:  # images, not cached feature rows passing through
                self.embedded += len(out)

        pl_module.generator.register_forward_pre_hook(record_z)
        for callback in trainer.callbacks:
            if isinstance(callback, SampleQuality) and callback._extractor is not None:
                callback._extractor.register_forward_hook(count)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        fid = trainer.callback_metrics.get("val/fid")
        record = {"z_sums": self.z_sums, "embedded": self.embedded, "val_fid": None if fid is None else float(fid)}
        (self.dirpath / f"draws{trainer.global_rank}.json").write_text(json.dumps(record))


class CountDCalls(Callback):
    """Records the batch size of every training-mode D call of each batch, in `dirpath/d_calls.json`."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.calls: list[list[int]] = [[]]

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        def record(module: torch.nn.Module, args: tuple) -> None:
            if module.training:
                self.calls[-1].append(len(args[0]))

        pl_module.discriminator.register_forward_pre_hook(record)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        self.calls.append([])

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        (self.dirpath / "d_calls.json").write_text(json.dumps(self.calls[:-1]))


class ReplayByCalling:
    """A CPU stand-in for CUDA graphs (cuda_graph_step.GraphBackend): capture records the function and runs
    nothing, as a CUDA capture runs no kernels; replay calls it again."""

    class Graph:
        def __init__(self) -> None:
            self.fn: object = None
            self.replays = 0

        def replay(self) -> None:
            self.replays += 1
            self.fn()

    def new_graph(self) -> "ReplayByCalling.Graph":
        return self.Graph()

    def capture(self, graph: "ReplayByCalling.Graph", fn: object, share_pool_with: object = None) -> None:
        graph.fn = fn

    def on_side_stream(self, fn: object, *args: object) -> torch.Tensor:
        return fn(*args)

    def synchronize(self) -> None:
        pass

    def capture_autocast(self) -> contextlib.nullcontext:
        return contextlib.nullcontext()


class CaptureOnCPU(Callback):
    """Runs the model's steps through CudaGraphStep with the ReplayByCalling backend; writes replay counts."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from dcgan_lit.cuda_graph_step import CudaGraphStep

        pl_module.graph_step = CudaGraphStep(pl_module, pl_module.gan_step, backend=ReplayByCalling())

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = pl_module.graph_step
        self.path.write_text(json.dumps({"d": step.graph_d.replays, "g": step.graph_g.replays}))


class DeleteImages(Callback):
    """Deletes every image under `root` before batch `batch`, as a disk that goes away mid-run."""

    def __init__(self, root: str, batch: int) -> None:
        self.root, self.batch = Path(root), batch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, *args: object) -> None:
        if pl_module.batches_done == self.batch:
            for path in self.root.glob("*.png"):
                path.unlink()


class SlowScore(Callback):
    """Makes each of rank 0's Inception passes take `seconds` and writes `marker` at the first, so a test can
    signal a run (DDP included) while it scores."""

    def __init__(self, marker: str, seconds: float = 0.5) -> None:
        self.marker, self.seconds = Path(marker), seconds

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from dcgan_lit.callbacks.sample_quality import SampleQuality

        def slow(module: torch.nn.Module, args: tuple) -> None:
            if args[0].dim() == 4:  # images, not cached feature rows passing through
                self.marker.touch()
                time.sleep(self.seconds)

        for callback in trainer.callbacks:
            if isinstance(callback, SampleQuality) and callback._extractor is not None and trainer.is_global_zero:
                callback._extractor.register_forward_pre_hook(slow)
