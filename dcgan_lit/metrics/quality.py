"""FID and KID of generated images against a real split (torchmetrics), with precision and recall (torch-fidelity)."""

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from dcgan_lit.errors import DataError
from dcgan_lit.metrics.features import FIDFeatures
from dcgan_lit.metrics.precision_recall import precision_recall

log = logging.getLogger(__name__)

# Bump when the way real images become features changes (quantization, resize), so old caches are not reused.
FEATURES_FORMAT = 2
KID_SEED = 0  # KID's subsets
MIN_REAL_IMAGES = 50  # below this a data set is refused for scoring rather than given a meaningless FID
KID_SUBSET = 1000  # torchmetrics' default; smaller sets use subsets of their own size
KID_SUBSETS = 100


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8, quantized as a saved PNG would be."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


# Images per Inception pass when metrics.batch_size is null. On a CPU small batches ran faster: space's
# fid5k-train took 485 to 513 s at 10 against 575 to 590 s at 50 on a 2-core AMD EPYC, the same FID to every digit
# (BENCHMARKS.md, "The Inception's batch on a CPU"). A GPU keeps the 50 it always had.
CPU_BATCH, GPU_BATCH = 10, 50
# Samples per G call in a score. A run told to stop waits for the current one: 500 of fewshot's G took 10 to 20 s
# on one core (a rank of DDP on 2 cores), against SLURM's default 30 s between SIGTERM and SIGKILL. The same z
# either way: a seeded CPU randn draws the same numbers in 5 calls of 100 as in one of 500.
CPU_SAMPLES, GPU_SAMPLES = 100, 500


def sample_batch_size(device: torch.device) -> int:
    """Samples per G call in a score: CPU_SAMPLES on a CPU, GPU_SAMPLES elsewhere."""
    return CPU_SAMPLES if device.type == "cpu" else GPU_SAMPLES


def extractor_batch_size(batch_size: int | None, device: torch.device) -> int:
    """`metrics.batch_size`, or where it is None the device's own: CPU_BATCH on a CPU, GPU_BATCH elsewhere."""
    if batch_size is not None:
        return batch_size
    return CPU_BATCH if device.type == "cpu" else GPU_BATCH


class ScoreStopped(Exception):
    """A score given up between two Inception passes, or two batches of samples, because the run was asked to stop."""


@torch.no_grad()
def features(
    extractor: FIDFeatures,
    batches: Iterable[Tensor],
    device: torch.device,
    batch_size: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Tensor:
    """(N, 2048) features of uint8 image batches, each split into `batch_size` images per Inception pass; None
    keeps the batches as they come. `stop` is asked before every pass: a score on a CPU takes minutes (a
    fid5k-train about 7 on 2 cores), longer than a scheduler waits between SIGTERM and SIGKILL, so a run that is
    told to stop must not finish the score before it saves (raises ScoreStopped)."""
    out = []
    for batch in batches:
        for chunk in batch.split(batch_size or len(batch)):
            if stop is not None and stop():
                raise ScoreStopped
            out.append(extractor(chunk.to(device)).cpu())
    return torch.cat(out)


@torch.no_grad()
def generated(
    generator: nn.Module,
    num: int,
    nz: int,
    device: torch.device,
    batch_size: int = 500,
    seed: int = 0,
    stop: Callable[[], bool] | None = None,
) -> Iterator[Tensor]:
    """Yield `num` uint8 samples of `generator` in eval mode from a seeded z, batch by batch. `stop` is asked
    before every batch, as in `features`: 5,000 samples of a 64px G take a minute or more on a CPU."""
    was_training = generator.training
    generator.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        for start in range(0, num, batch_size):
            if stop is not None and stop():
                raise ScoreStopped
            z = torch.randn(min(batch_size, num - start), nz, device=device, generator=gen)
            yield to_uint8(generator(z))
    finally:
        generator.train(was_training)


def real_features(
    extractor: FIDFeatures,
    batches: Iterable[Tensor],
    device: torch.device,
    cache: Path,
    batch_size: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Tensor:
    """Features of real images, computed once and then read from `cache`, whose name must identify them."""
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    feats = features(extractor, batches, device, batch_size, stop)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    torch.save(feats, tmp)
    os.replace(tmp, cache)
    log.info(f"cached the features of {len(feats)} real images in {cache}")
    return feats


@dataclass(frozen=True)
class Reference:
    """The real images that FID/KID compare against: a split of the data module, and why that one."""

    split: str  # "heldout" or "train"
    num_images: int
    why: str

    def describe(self) -> str:
        name = "held-out" if self.split == "heldout" else "training"
        return f"the {self.num_images} {name} images ({self.why})"

    def protocol(self, num_fake: int) -> str:
        """The short name papers use: fid5k-train is 5,000 samples against all the training images."""
        return f"fid{num_fake / 1000:g}k-{self.split}"

    def as_dict(self) -> dict[str, object]:
        return {
            "split": self.split,
            "is_training_set": self.split == "train",
            "num_images": self.num_images,
            "why": self.why,
        }


def choose_reference(dm: object, min_heldout: int) -> Reference:
    """The held-out split when it has `min_heldout` images, else the training split; refuse when both are too small.

    FID from a few dozen images is mostly estimator bias (2 held-out images once gave "FID 362"). Few-shot GAN
    papers (DiffAugment, ADA) score small data sets against the whole training set instead, which measures fit to
    the training images rather than generalization; the log and evaluate's JSON say which was used.
    """
    num_heldout, num_train = len(dm.split_dataset("heldout")), len(dm.split_dataset("train"))
    if num_heldout >= min_heldout:
        return Reference("heldout", num_heldout, f"at least metrics.min_heldout={min_heldout}")
    if num_train >= MIN_REAL_IMAGES:
        why = (
            f"the held-out split has only {num_heldout}, fewer than metrics.min_heldout={min_heldout}, so the "
            "training images are the reference, as few-shot GAN papers do: the scores measure fit to the training "
            "set, not generalization"
        )
        return Reference("train", num_train, why)
    raise DataError(
        f"metrics: the data has {num_train} training and {num_heldout} held-out images, and FID/KID need at least "
        f"{MIN_REAL_IMAGES} real images to mean anything. Add images, or set metrics=none to train without scores."
    )


def real_split_features(
    extractor: FIDFeatures,
    dm: object,
    split: str,
    device: torch.device,
    cache_dir: Path,
    batch_size: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> Tensor:
    """Features of a set-up data module's `split` ("heldout" or "train"), cached in `cache_dir`.

    The cache key is what decides the features: the split's images by content (`dm.fingerprint`, which covers the
    files, the transform, the seed and the split) and the extractor by content, never a path as typed.
    """
    identity = f"{FEATURES_FORMAT}|{dm.fingerprint(split)}|{extractor.identity}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return real_features(extractor, dm.split_dataloader(split), device, cache_dir / f"real-{key}.pt", batch_size, stop)


def fid_kid(extractor: FIDFeatures, real: Tensor, fake: Tensor, device: torch.device) -> dict[str, float | int]:
    """FID, KID (mean, std), precision and recall between real and fake features; KID's subsets shrink for
    small sets."""
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"FID needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    subset = min(KID_SUBSET, n)
    # The features are already complete here: under DDP only rank 0 computes, so no cross-process sync.
    fid = FrechetInceptionDistance(feature=extractor, normalize=False, sync_on_compute=False).to(device)
    with warnings.catch_warnings():  # "will save all extracted features": by design, 40 MB for 5,000 samples
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save all extracted features")
        kid = KernelInceptionDistance(feature=extractor, subsets=KID_SUBSETS, subset_size=subset, sync_on_compute=False)
    kid = kid.to(device)
    for metric in (fid, kid):
        metric.update(real.to(device), real=True)
        metric.update(fake.to(device), real=False)
    # KID draws its subsets from torch's global generator: seeded apart, the same features always give the same
    # KID, and scoring mid-run leaves the training's random stream (z, DiffAugment) as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(KID_SEED)
        kid_mean, kid_std = kid.compute()
    precision, recall = precision_recall(real, fake)
    return {
        "fid": float(fid.compute()),
        "kid": float(kid_mean),
        "kid_std": float(kid_std),
        "precision": precision,
        "recall": recall,
        "num_real": len(real),
        "num_fake": len(fake),
        "kid_subset_size": subset,
    }
