"""FID and KID during training: `val/fid`, `val/kid` every `every_n_epochs` epochs and after the last one."""

import logging
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from dcgan_lit.errors import ConfigError
from dcgan_lit.metrics.features import FIDFeatures, load_extractor
from dcgan_lit.metrics.quality import features, fid_kid, generated, real_split_features

log = logging.getLogger(__name__)


class SampleQuality(Callback):
    """Scores G's samples against the data module's held-out real images with torchmetrics' FID and KID.

    The real images' features are computed once per data set, split, resolution and extractor, and cached in
    `cache_dir`, so later runs (and `python -m dcgan_lit.evaluate`) reuse them. Samples come from G in eval mode
    (BatchNorm running statistics), from a fixed z, so epochs compare like with like.

    Args:
        every_n_epochs: how often to score; the last epoch is always scored.
        num_fake: generated images per score (10k is the usual FID-10k).
        inception_weights: a local TorchScript TF-Inception (see `make fid-weights`), or None for torchmetrics'
            own Inception, which torch-fidelity downloads.
        cache_dir: where real-image features are kept.
        batch_size: images per extractor batch.
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        num_fake: int = 10_000,
        inception_weights: str | None = None,
        cache_dir: str = "data/cache",
        batch_size: int = 250,
    ) -> None:
        self.every_n_epochs, self.num_fake, self.batch_size = every_n_epochs, num_fake, batch_size
        self.inception_weights, self.cache_dir = inception_weights, Path(cache_dir)
        self._extractor: FIDFeatures | None = None
        self.last: dict[str, float | int] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # At start-up, not after the first epoch. A file the user named must load; the default download may
        # fail offline, and then the run goes on without scores rather than not at all.
        try:
            self._extractor = load_extractor(self.inception_weights)
        except ConfigError as e:
            if self.inception_weights:
                raise
            rank_zero_warn(f"{e} FID/KID are skipped in this run.")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._extractor is None:
            return
        epoch = trainer.current_epoch + 1
        last = epoch >= trainer.max_epochs if trainer.max_epochs not in (None, -1) else False
        if epoch % self.every_n_epochs and not last and not trainer.should_stop:
            return
        self.last = self.score(trainer, pl_module)
        for name in ("fid", "kid"):
            pl_module.log(f"val/{name}", self.last[name], on_epoch=True, sync_dist=False, rank_zero_only=True)
        log.info(f"epoch {trainer.current_epoch}: FID {self.last['fid']:.2f}, KID {self.last['kid']:.4f}")

    @torch.no_grad()
    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float | int]:
        device = pl_module.device
        extractor = self._extractor.to(device)
        real = real_split_features(extractor, trainer.datamodule, device, self.cache_dir)
        sampler = getattr(pl_module, "sampling_generator", lambda: pl_module.generator)()
        fake = features(extractor, generated(sampler, self.num_fake, pl_module.hparams.nz, device), device)
        return fid_kid(extractor, real, fake, device)
