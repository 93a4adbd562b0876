"""FID and KID of generated images against a real split, with torchmetrics doing the statistics."""

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from dcgan_lit.metrics.features import FIDFeatures

log = logging.getLogger(__name__)

KID_SUBSET = 1000  # torchmetrics' default; smaller sets use subsets of their own size
KID_SUBSETS = 100


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] floats -> uint8, quantized as a saved PNG would be."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def features(extractor: FIDFeatures, batches: Iterable[Tensor], device: torch.device) -> Tensor:
    """(N, 2048) features of uint8 image batches."""
    return torch.cat([extractor(b.to(device)).cpu() for b in batches])


@torch.no_grad()
def generated(generator: nn.Module, num: int, nz: int, device: torch.device, batch_size: int = 500, seed: int = 0):
    """Yield `num` uint8 samples of `generator` in eval mode from a seeded z, batch by batch."""
    was_training = generator.training
    generator.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        for start in range(0, num, batch_size):
            z = torch.randn(min(batch_size, num - start), nz, device=device, generator=gen)
            yield to_uint8(generator(z))
    finally:
        generator.train(was_training)


def real_features(extractor: FIDFeatures, batches: Iterable[Tensor], device: torch.device, cache: Path) -> Tensor:
    """The real split's features, computed once per data set, split, resolution and extractor, then read from disk."""
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    feats = features(extractor, batches, device)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    torch.save(feats, tmp)
    os.replace(tmp, cache)
    log.info(f"cached the features of {len(feats)} real images in {cache}")
    return feats


def real_split(dm: object) -> str:
    """Names the held-out split a data module serves: class, root, resolution, channels and size."""
    return f"{type(dm).__name__}|{getattr(dm, 'root', '')}|{dm.image_size}|{dm.nc}|{len(dm.data_val)}"


def real_split_features(extractor: FIDFeatures, dm: object, device: torch.device, cache_dir: Path) -> Tensor:
    """Features of a set-up data module's held-out images, cached per split and extractor in `cache_dir`."""
    key = hashlib.sha256(f"{real_split(dm)}|{extractor.name}".encode()).hexdigest()[:16]
    return real_features(extractor, dm.heldout_dataloader(), device, cache_dir / f"real-{key}.pt")


def fid_kid(extractor: FIDFeatures, real: Tensor, fake: Tensor, device: torch.device) -> dict[str, float | int]:
    """FID and KID (mean, std) between real and fake (N, 2048) features; KID's subsets shrink for small sets."""
    n = min(len(real), len(fake))
    if n < 2:
        raise ValueError(f"FID needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    subset = min(KID_SUBSET, n)
    fid = FrechetInceptionDistance(feature=extractor, normalize=False).to(device)
    kid = KernelInceptionDistance(feature=extractor, subsets=KID_SUBSETS, subset_size=subset).to(device)
    for metric in (fid, kid):
        metric.update(real.to(device), real=True)
        metric.update(fake.to(device), real=False)
    kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid": float(kid_mean),
        "kid_std": float(kid_std),
        "num_real": len(real),
        "num_fake": len(fake),
        "kid_subset_size": subset,
    }
