"""The device-resident data path: the whole uint8 training set lives on the GPU and each step gathers its batch there.

The DataLoader then only draws index batches (a few hundred bytes per step), so its sampler, epoch shuffling and
Lightning's DistributedSampler (one shard of indices per rank) work exactly as on the streaming path.
"""

import torch
from torch import Tensor
from torch.utils.data import Dataset


class IndexDataset(Dataset):
    """The indices 0..n-1, fetched a whole batch at a time (`__getitems__`) as one int64 tensor."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def __getitems__(self, indices: list[int]) -> Tensor:
        return torch.tensor(indices, dtype=torch.long)


def keep_batch(batch: Tensor) -> Tensor:
    """collate_fn for IndexDataset: the batch is already one tensor."""
    return batch


def is_index_batch(batch: Tensor) -> bool:
    """Index batches are 1-D int64; image batches are 4-D uint8."""
    return batch.dtype == torch.long and batch.dim() == 1


def gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.2f} GiB"
