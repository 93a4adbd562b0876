"""GAN losses and D penalties as registry entries: `model.loss` picks a Loss, `model.penalties` adds Penalties.

    python -m dcgan_lit.train model.loss=hinge +model.penalties.r1=0.1

bce      the non-saturating loss of Goodfellow et al. and of the DCGAN tutorial (the default)
hinge    Lim & Ye (2017), Miyato et al. (2018): usually with spectral norm on D
lsgan    Mao et al. (2017): least squares against the labels
wgan-gp  Gulrajani et al. (2017): Wasserstein critic with a gradient penalty, several critic steps per G step

Every function takes D's logits, or `score(x) = D(augment(x))` for penalties, so a new entry never needs to know
about DiffAugment, BatchNorm or the training loop.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dcgan_lit.errors import ConfigError

Score = Callable[[Tensor], Tensor]  # images -> D's logits, through the same augmentation as every other D call


def bce_d(d_real: Tensor, d_fake: Tensor, real_label: float = 1.0) -> Tensor:
    # -log D(x) - log(1 - D(G(z))), the tutorial's BCELoss on logits; real_label < 1 is one-sided smoothing
    real = F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, real_label))
    return real + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def bce_g(d_fake: Tensor) -> Tensor:
    # -log D(G(z)): the non-saturating loss, i.e. the fakes scored against the flipped label 1
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def hinge_d(d_real: Tensor, d_fake: Tensor, real_label: float = 1.0) -> Tensor:
    # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
    return F.relu(real_label - d_real).mean() + F.relu(1 + d_fake).mean()


def critic_g(d_fake: Tensor) -> Tensor:
    # -E[D(G(z))], G's side of the hinge and Wasserstein losses
    return -d_fake.float().mean()


def lsgan_d(d_real: Tensor, d_fake: Tensor, real_label: float = 1.0) -> Tensor:
    # (E[(D(x) - 1)^2] + E[D(G(z))^2]) / 2
    return 0.5 * ((d_real.float() - real_label) ** 2).mean() + 0.5 * (d_fake.float() ** 2).mean()


def lsgan_g(d_fake: Tensor) -> Tensor:
    # E[(D(G(z)) - 1)^2] / 2
    return 0.5 * ((d_fake.float() - 1) ** 2).mean()


def wasserstein_d(d_real: Tensor, d_fake: Tensor, real_label: float = 1.0) -> Tensor:
    # E[D(G(z))] - E[D(x)]; real_label has no meaning for a critic
    return d_fake.float().mean() - d_real.float().mean()


def gradient_penalty(score: Score, real: Tensor, fake: Tensor) -> Tensor:
    # E[(||grad_x D(x)||_2 - 1)^2] at random points between real and fake images (WGAN-GP)
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(score(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(score: Score, real: Tensor, fake: Tensor) -> Tensor:
    # E[||grad_x D(x)||^2] / 2 on real images (Mescheder et al. 2018); its weight is R1's gamma
    return _gradient_norm_squared(score, real) / 2


def r2_penalty(score: Score, real: Tensor, fake: Tensor) -> Tensor:
    # E[||grad_x D(x)||^2] / 2 on fake images, R1's twin (the R3GAN baseline uses both)
    return _gradient_norm_squared(score, fake) / 2


def _gradient_norm_squared(score: Score, images: Tensor) -> Tensor:
    images = images.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(images).sum(), images, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(1).mean()


@dataclass(frozen=True)
class Penalty:
    """A D regularizer, added to D's loss times its weight."""

    fn: Callable[[Score, Tensor, Tensor], Tensor]  # (score, real, fake) -> a scalar
    capturable: bool = False  # whether a CUDA graph can hold it (a double backward cannot)


@dataclass(frozen=True)
class Loss:
    """D's and G's losses on D's logits, and the penalty the loss itself needs (weighted by model.gp_weight)."""

    d: Callable[[Tensor, Tensor, float], Tensor]  # (d_real, d_fake, real_label) -> D's loss
    g: Callable[[Tensor], Tensor]  # d_fake -> G's loss
    penalty: str | None = None  # a PENALTIES name


PENALTIES: dict[str, Penalty] = {
    "gp": Penalty(gradient_penalty),
    "r1": Penalty(r1_penalty),
    "r2": Penalty(r2_penalty),
}

LOSSES: dict[str, Loss] = {
    "bce": Loss(bce_d, bce_g),
    "hinge": Loss(hinge_d, critic_g),
    "lsgan": Loss(lsgan_d, lsgan_g),
    "wgan-gp": Loss(wasserstein_d, critic_g, penalty="gp"),
}


def resolve(loss: str, gp_weight: float, penalties: dict[str, float] | None) -> tuple[Loss, dict[str, float]]:
    """The Loss named `loss` and every active penalty's weight: the loss's own (gp_weight) and the extra ones."""
    if loss not in LOSSES:
        raise ConfigError(f"model.loss={loss!r}: must be one of {', '.join(LOSSES)}.")
    weights = {LOSSES[loss].penalty: gp_weight} if LOSSES[loss].penalty else {}
    for name, weight in (penalties or {}).items():
        if name not in PENALTIES:
            raise ConfigError(f"model.penalties.{name}: no such penalty; known: {', '.join(PENALTIES)}.")
        weights[name] = weight
    return LOSSES[loss], weights


def eager_only(penalties: dict[str, float], n_critic: int) -> str | None:
    """Why this combination cannot run as CUDA graphs (model.cuda_graph), from the entries' flags; None if it can."""
    reasons = [f"the {name} penalty" for name in penalties if not PENALTIES[name].capturable]
    reasons += ["model.n_critic>1"] if n_critic > 1 else []
    return f"{' and '.join(reasons)} run eagerly (cannot be captured)" if reasons else None
