"""A seeded, reproducible train / held-out split of n items."""

import torch
from torch import Tensor


def holdout_split(n: int, val_fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices (train, val); val gets round(n * val_fraction) items, and at least one when val_fraction > 0."""
    num_val = round(n * val_fraction)
    if val_fraction > 0:
        num_val = min(max(num_val, 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[num_val:].sort().values, perm[:num_val].sort().values
