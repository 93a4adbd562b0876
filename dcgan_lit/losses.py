"""GAN losses as small pure functions on discriminator logits."""

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_real(logits: Tensor, target: float = 1.0) -> Tensor:
    """-log(sigmoid(logits)), the tutorial's BCELoss against label 1, computed stably from logits."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def bce_fake(logits: Tensor) -> Tensor:
    """-log(1 - sigmoid(logits)), the BCELoss against label 0."""
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
