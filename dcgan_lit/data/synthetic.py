"""A built-in, procedurally generated 'space' data set: star fields, shaded planets (some ringed) and galaxies.

Every image is a star field over faint nebula clouds with one main object: nothing else, a shaded planet,
a planet with a tilted ring, an elliptical galaxy, or a spiral galaxy. The objects have real structure
(lighting, occlusion, spiral arms), so a generator that learns shows it in its samples within minutes.
All images are rendered at once with tensor ops, in chunks; 10k images at 64x64 take a few seconds.
"""

import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from dcgan_lit.data.datamodule import ImageDataModule
from dcgan_lit.data.in_memory import InMemoryImages
from dcgan_lit.data.split import holdout_split

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("stars", "planet", "ringed_planet", "elliptical", "spiral")
_CHUNK = 1024  # images rendered per chunk; bounds the memory of the (chunk, 3, S, S) temporaries


class SyntheticDataModule(ImageDataModule):
    """The built-in default data set: needs no files and no network.

    Args:
        num_images: images rendered in all, before the held-out split.
        seed: the data set's own seed; the same seed gives the same images on every machine and rank.
        val_fraction, split_seed: size and seed of the held-out split.
        **kwargs: ImageDataModule's arguments (image_size, nc, batch_size, num_workers, pin_memory, hflip).
    """

    def __init__(
        self, num_images: int = 10_000, seed: int = 0, val_fraction: float = 0.1, split_seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_images, self.seed, self.val_fraction, self.split_seed = num_images, seed, val_fraction, split_seed

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        start = time.perf_counter()
        images, _ = render_space_images(self.num_images, self.image_size, self.seed)
        if self.nc == 1:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * luma).sum(1, keepdim=True).round().to(torch.uint8)
        seconds = time.perf_counter() - start
        log.info(f"rendered {self.num_images} synthetic space images at {self.image_size}px in {seconds:.1f}s")
        train_idx, val_idx = holdout_split(self.num_images, self.val_fraction, self.split_seed)
        return InMemoryImages(images[train_idx]), InMemoryImages(images[val_idx])


def render_space_images(num_images: int, image_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Render `num_images` RGB images, returned as uint8 (N, 3, S, S) and their kind indices (N,) into KINDS.

    The result depends only on (num_images, image_size, seed).
    """
    images, kinds = [], []
    for start in range(0, num_images, _CHUNK):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + start)
        n = min(_CHUNK, num_images - start)
        kind = torch.randint(len(KINDS), (n,), generator=gen)
        images.append(_render_chunk(kind, image_size, gen))
        kinds.append(kind)
    return torch.cat(images), torch.cat(kinds)


def _render_chunk(kind: Tensor, size: int, gen: torch.Generator) -> Tensor:
    n = kind.numel()
    lin = (torch.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    y, x = torch.meshgrid(lin, lin, indexing="ij")  # (S, S)
    pixel = 2 / size

    def rand(*shape: int, lo: float = 0.0, hi: float = 1.0) -> Tensor:
        return torch.rand(*shape, generator=gen) * (hi - lo) + lo

    img = _nebula(n, size, gen) + _stars(n, size, gen)  # (n, 3, S, S), additive light

    for k, name in enumerate(KINDS):
        idx = (kind == k).nonzero().squeeze(1)
        m = idx.numel()
        if m == 0 or name == "stars":
            continue
        # Per-image parameters as (m, 1, 1) so they broadcast against the (S, S) grid.
        p = lambda lo, hi, m=m: rand(m, 1, 1, lo=lo, hi=hi)  # noqa: E731
        cx, cy, theta = p(-0.25, 0.25), p(-0.25, 0.25), p(0, math.pi)
        u = (x - cx) * torch.cos(theta) + (y - cy) * torch.sin(theta)  # (m, S, S), rotated frame
        v = -(x - cx) * torch.sin(theta) + (y - cy) * torch.cos(theta)
        base = img[idx]

        if name in ("planet", "ringed_planet"):
            r = p(0.35, 0.6) if name == "planet" else p(0.2, 0.32)
            light = F.normalize(torch.cat([rand(m, 2, lo=-1, hi=1), rand(m, 1, lo=0.3, hi=1.0)], 1), dim=1)
            color = _random_colors(m, gen, saturation=(0.3, 0.8))
            planet_rgb, planet_alpha = _planet(u, v, r, light, color, pixel, gen)
            if name == "ringed_planet":
                tilt = p(0.15, 0.4)
                ring_rgb, ring_alpha = _ring(u, v / tilt, r, pixel / tilt, gen)
                behind = (v < 0).unsqueeze(1).float()  # the far half of the ring passes behind the disc
                base = _over(base, ring_rgb, ring_alpha * behind)
                base = _over(base, planet_rgb, planet_alpha)
                base = _over(base, ring_rgb, ring_alpha * (1 - behind))
            else:
                base = _over(base, planet_rgb, planet_alpha)
        elif name == "elliptical":
            q, re = p(0.4, 1.0), p(0.15, 0.35)
            r_ell = torch.sqrt(u**2 + (v / q) ** 2) / re
            light = 3.0 * torch.exp(-2.5 * r_ell.clamp_min(1e-3).sqrt())  # de Vaucouleurs-like, softened core
            base = base + light.unsqueeze(1) * torch.tensor([1.0, 0.86, 0.62]).view(1, 3, 1, 1)
        else:  # spiral
            q, rd = p(0.35, 1.0), p(0.15, 0.28)
            arms, pitch = torch.randint(2, 4, (m, 1, 1), generator=gen).float(), p(0.25, 0.45)
            v = v / q
            rho = torch.sqrt(u**2 + v**2)
            phi = torch.atan2(v, u)
            phase = arms * (phi - torch.log(rho + 1e-3) / torch.tan(pitch)) + p(0, 2 * math.pi)
            arm = ((1 + torch.cos(phase)) / 2) ** 3 * torch.exp(-rho / rd) * (1 - torch.exp(-((rho / 0.08) ** 2)))
            bulge = torch.exp(-((rho / p(0.05, 0.1)) ** 2))
            base = (
                base
                + 1.4 * arm.unsqueeze(1) * torch.tensor([0.62, 0.75, 1.0]).view(1, 3, 1, 1)
                + 1.2 * bulge.unsqueeze(1) * torch.tensor([1.0, 0.9, 0.7]).view(1, 3, 1, 1)
            )
        img[idx] = base

    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def _nebula(n: int, size: int, gen: torch.Generator) -> Tensor:
    """Faint clouds of two tints: low-resolution noise, smoothly upsampled."""
    low = torch.rand(n, 2, 5, 5, generator=gen)
    clouds = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1) ** 3
    tints = _random_colors(2 * n, gen, saturation=(0.5, 0.9)).view(n, 2, 3, 1, 1)
    strength = torch.rand(n, 1, 1, 1, generator=gen) * 0.2
    return (clouds.unsqueeze(2) * tints).sum(1) * strength


def _stars(n: int, size: int, gen: torch.Generator) -> Tensor:
    """Point stars with a power-law brightness and a colour temperature, blurred to a soft PSF."""
    per_image = max(4, size * size // 96)
    flat = torch.zeros(n, 3, size * size)
    pos = torch.randint(size * size, (n, per_image), generator=gen)
    brightness = 0.25 / (torch.rand(n, per_image, generator=gen) + 0.06)  # mostly faint, a few bright
    warmth = torch.rand(n, per_image, generator=gen)
    tint = torch.stack([0.75 + 0.25 * warmth, 0.85 + 0.0 * warmth, 1.0 - 0.35 * warmth], 1)  # (n, 3, k)
    flat.scatter_add_(2, pos.unsqueeze(1).expand(-1, 3, -1), tint * brightness.unsqueeze(1))
    stars = flat.view(n, 3, size, size)
    k = torch.tensor([0.25, 1.0, 0.25])
    psf = (k[:, None] * k[None, :]) / 2.25  # a 3x3 PSF: one pixel bright, neighbours dimmer
    return F.conv2d(stars, psf.expand(3, 1, 3, 3).contiguous(), padding=1, groups=3)


def _random_colors(m: int, gen: torch.Generator, saturation: tuple[float, float]) -> Tensor:
    """(m, 3, 1, 1) RGB colours from a random hue and the given saturation range."""
    hue = torch.rand(m, 1, generator=gen)
    sat = torch.rand(m, 1, generator=gen) * (saturation[1] - saturation[0]) + saturation[0]
    offsets = torch.tensor([0.0, 1 / 3, 2 / 3])
    rgb = 0.5 + 0.5 * torch.cos(2 * math.pi * (hue + offsets))  # smooth hue wheel
    return (1 - sat + sat * rgb).view(m, 3, 1, 1)


def _planet(
    u: Tensor, v: Tensor, r: Tensor, light: Tensor, color: Tensor, pixel: float, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """A Lambert-shaded sphere with latitude bands; returns rgb (m, 3, S, S) and alpha (m, 1, S, S)."""
    m = u.shape[0]
    nx, ny = u / r, v / r
    d2 = nx**2 + ny**2
    nz = torch.sqrt((1 - d2).clamp_min(0))
    lx, ly, lz = (light[:, i].view(m, 1, 1) for i in range(3))
    shade = (nx * lx + ny * ly + nz * lz).clamp_min(0) + 0.04
    freq = torch.rand(m, 1, 1, generator=gen) * 10 + 4
    bands = 1 + 0.25 * torch.sin(freq * ny + torch.rand(m, 1, 1, generator=gen) * 6.3)
    rgb = color * (shade * bands).unsqueeze(1)
    alpha = ((r - torch.sqrt(u**2 + v**2)) / pixel + 0.5).clamp(0, 1).unsqueeze(1)  # one-pixel antialiased rim
    return rgb, alpha


def _ring(u: Tensor, v: Tensor, r: Tensor, pixel: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """A flat ring seen edge-on at a tilt (v already stretched by 1/tilt); rgb and alpha as in `_planet`."""
    m = u.shape[0]
    rho = torch.sqrt(u**2 + v**2) / r
    inner = torch.rand(m, 1, 1, generator=gen) * 0.3 + 1.25
    outer = inner + torch.rand(m, 1, 1, generator=gen) * 0.5 + 0.4
    soft = (pixel / r).clamp_min(1e-3)
    band = ((rho - inner) / soft).clamp(0, 1) * ((outer - rho) / soft).clamp(0, 1)
    gaps = 0.65 + 0.35 * torch.cos(rho * 30)  # ringlets
    alpha = (0.85 * band * gaps).unsqueeze(1)
    rgb = torch.tensor([0.85, 0.78, 0.62]).view(1, 3, 1, 1).expand(m, 3, 1, 1)
    return rgb * torch.ones_like(alpha), alpha


def _over(dst: Tensor, src: Tensor, alpha: Tensor) -> Tensor:
    """Alpha-composite src over dst."""
    return src * alpha + dst * (1 - alpha)
