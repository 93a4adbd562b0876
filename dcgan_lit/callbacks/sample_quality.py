"""Sample quality during training: `val/fid`, `val/kid`, `val/precision`, `val/recall` every `every_n_epochs` epochs
and after the last one, with a warning when recall drops while precision holds (mode collapse)."""

import logging
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from dcgan_lit.callbacks.ema import sampling_generator
from dcgan_lit.console import info
from dcgan_lit.errors import ConfigError
from dcgan_lit.metrics.features import FIDFeatures, load_extractor
from dcgan_lit.metrics.precision_recall import mode_collapse_warning
from dcgan_lit.metrics.quality import Reference, choose_reference, features, fid_kid, generated, real_split_features

log = logging.getLogger(__name__)


class SampleQuality(Callback):
    """Scores G's samples against real images: torchmetrics' FID and KID, torch-fidelity's precision and recall.

    The real images are the data module's held-out split, or its training split when fewer than `min_heldout`
    images are held out (see `choose_reference`); a data set too small for either is refused at start-up.
    Their features are cached in `cache_dir` under a key of their content and the extractor's, so later runs
    (and `python -m dcgan_lit.evaluate`) reuse them. Samples come from G in eval mode (BatchNorm running
    statistics), from a fixed z, so epochs compare like with like.

    Under DDP, rank 0 alone samples and scores while the other ranks wait, and every rank logs its result.
    A score that fails is reported in one line and skipped: the epoch's checkpoints are still written.

    Args:
        every_n_epochs: how often to score; the last epoch is always scored.
        num_fake: generated images per score (10k is the usual FID-10k).
        inception_weights: a local TorchScript TF-Inception (see `make fid-weights`), or None for torchmetrics'
            own Inception, which torch-fidelity downloads.
        cache_dir: where real-image features are kept.
        batch_size: images per extractor batch.
        min_heldout: the fewest held-out images to score against; below it the training images are used.
        extractor_precision: fp32, or bf16 for monitoring only: faster on CPUs with AMX, but its scores differ from
            fp32's, so they are logged as val/fid_bf16, val/kid_bf16, ... and never as val/fid.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_fake: int = 10_000,
        inception_weights: str | None = None,
        cache_dir: str = "data/cache",
        batch_size: int = 250,
        min_heldout: int = 1000,
        extractor_precision: str = "fp32",
    ) -> None:
        self.every_n_epochs, self.num_fake, self.batch_size = every_n_epochs, num_fake, batch_size
        self.extractor_precision = extractor_precision
        self.suffix = "" if extractor_precision == "fp32" else f"_{extractor_precision}"  # val/fid_bf16
        self.inception_weights, self.cache_dir, self.min_heldout = inception_weights, Path(cache_dir), min_heldout
        self._extractor: FIDFeatures | None = None
        self.reference: Reference | None = None
        self.last: dict[str, float | int] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # At start-up, not after the first epoch. A file the user named must load; the default download may
        # fail offline, and then the run goes on without scores rather than not at all.
        try:
            self._extractor = load_extractor(self.inception_weights, self.extractor_precision)
        except ConfigError as e:
            if self.inception_weights:
                raise
            rank_zero_warn(f"{e} FID/KID are skipped in this run.")
            return
        # Lightning has set up the data module by now, so its split sizes are known before any training.
        self.reference = choose_reference(trainer.datamodule, self.min_heldout)
        info(log, f"FID/KID reference: {self.reference.describe()}")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._extractor is None:
            return
        epoch = trainer.current_epoch + 1
        last = epoch >= trainer.max_epochs if trainer.max_epochs not in (None, -1) else False
        if epoch % self.every_n_epochs and not last and not trainer.should_stop:
            return
        result: dict | None = None
        if trainer.is_global_zero:
            try:
                result = self.score(trainer, pl_module)
            except Exception as e:  # a metric must never cost the run or this epoch's checkpoint
                result = {"error": f"{type(e).__name__}: {e}"}
        result = trainer.strategy.broadcast(result, src=0)
        if "error" in result:
            log.error(
                f"epoch {trainer.current_epoch}: FID/KID failed and were skipped ({result['error']}); training "
                "and checkpoints go on."
            )
            return
        previous, self.last = self.last, result
        for name in ("fid", "kid", "precision", "recall"):
            # Every rank logs rank 0's value, so monitors such as best.ckpt agree on all ranks.
            pl_module.log(f"val/{name}{self.suffix}", float(result[name]), on_epoch=True, sync_dist=False)
        info(
            log,
            f"epoch {trainer.current_epoch}: FID{self.suffix} {result['fid']:.2f}, KID {result['kid']:.4f}, "
            f"precision {result['precision']:.3f}, recall {result['recall']:.3f}",
        )
        collapse = mode_collapse_warning(previous, result) if previous else None
        if collapse and trainer.is_global_zero:
            log.warning(f"epoch {trainer.current_epoch}: {collapse}")

    @torch.no_grad()
    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float | int]:
        device = pl_module.device
        extractor = self._extractor.to(device)
        real = real_split_features(extractor, trainer.datamodule, self.reference.split, device, self.cache_dir)
        sampler = sampling_generator(trainer, pl_module)
        fake = features(extractor, generated(sampler, self.num_fake, pl_module.hparams.nz, device), device)
        return fid_kid(extractor, real, fake, device)
