"""DiffAugment (Zhao et al., 2020): differentiable augmentations applied to every image D sees, real and fake.

With 100 to 1,000 training images D memorises the real set within a few epochs; augmenting both D's inputs
with the same random, differentiable transforms keeps it honest, and G still gets gradients through them.
Policies: "color" (brightness, saturation, contrast), "translation" (up to 1/8 of the side, zero-filled),
"cutout" (a zeroed square half the side). "brightness", "saturation" and "contrast" are color's three parts on
their own (to find which of them a data set cannot take). Transforms run in the order written, so
"brightness,saturation,contrast" is "color". Each draws one factor per image. Images are expected in [-1, 1],
shape (B, C, H, W).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from dcgan_lit.errors import ConfigError


def brightness(x: Tensor) -> Tensor:
    # adds U(-0.5, 0.5): a quarter of the [-1, 1] range
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def saturation(x: Tensor) -> Tensor:
    # scales each pixel's distance from its own gray (the mean of its channels) by U(0, 2): gray stays gray
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    # scales each image's distance from its mean by U(0.5, 1.5): the mean is kept
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    b, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, size=(b, 1, 1), device=x.device)
    ty = torch.randint(-sy, sy + 1, size=(b, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )  # fmt: skip
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # (B, C, H + 2, W + 2): out-of-range pixels read the zero border
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), size=(b, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), size=(b, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(ch, device=x.device), torch.arange(cw, device=x.device),
        indexing="ij",
    )  # fmt: skip
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


POLICIES: dict[str, list[Callable[[Tensor], Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
    "brightness": [brightness],
    "saturation": [saturation],
    "contrast": [contrast],
}


def parse_policy(policy: str) -> list[str]:
    """'color,translation,cutout' -> its parts; '' -> none. Unknown names are a ConfigError naming them."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(f"model.diffaugment={policy!r}: unknown {unknown}; use any of {', '.join(POLICIES)}")
    return names


def diff_augment(x: Tensor, policy: list[str]) -> Tensor:
    for name in policy:
        for transform in POLICIES[name]:
            x = transform(x)
    return x
