"""GAN losses as small pure functions on discriminator logits, chosen by name with `model.loss`.

bce      the non-saturating loss of Goodfellow et al. and of the DCGAN tutorial (the default)
hinge    Lim & Ye (2017), Miyato et al. (2018): usually with spectral norm on D
lsgan    Mao et al. (2017): least squares against the labels
wgan-gp  Gulrajani et al. (2017): Wasserstein critic with a gradient penalty, several critic steps per G step
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOSSES: tuple[str, ...] = ("bce", "hinge", "lsgan", "wgan-gp")


def bce_real(logits: Tensor, target: float = 1.0) -> Tensor:
    """-log(sigmoid(logits)), the tutorial's BCELoss against label 1, computed stably from logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def bce_fake(logits: Tensor) -> Tensor:
    """-log(1 - sigmoid(logits)), the BCELoss against label 0."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


def d_loss(kind: str, d_real: Tensor, d_fake: Tensor, real_label: float = 1.0) -> Tensor:
    """D's loss on its logits for a real and a fake batch; real_label < 1 is one-sided label smoothing."""
    if kind == "bce":
        return bce_real(d_real, real_label) + bce_fake(d_fake)
    if kind == "hinge":
        return F.relu(real_label - d_real).mean() + F.relu(1 + d_fake).mean()
    if kind == "lsgan":
        return 0.5 * ((d_real.float() - real_label) ** 2).mean() + 0.5 * (d_fake.float() ** 2).mean()
    if kind == "wgan-gp":
        return d_fake.float().mean() - d_real.float().mean()  # the gradient penalty is added by the caller
    raise ValueError(f"model.loss={kind!r}: must be one of {', '.join(LOSSES)}")


def g_loss(kind: str, d_fake: Tensor) -> Tensor:
    """G's loss on D's logits for its fakes: each loss's generator side, scored against the real label."""
    if kind == "bce":
        return bce_real(d_fake)  # the non-saturating form: maximize log D(G(z))
    if kind in ("hinge", "wgan-gp"):
        return -d_fake.float().mean()
    if kind == "lsgan":
        return 0.5 * ((d_fake.float() - 1) ** 2).mean()
    raise ValueError(f"model.loss={kind!r}: must be one of {', '.join(LOSSES)}")


def gradient_penalty(discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] at random points between real and fake images (WGAN-GP)."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
