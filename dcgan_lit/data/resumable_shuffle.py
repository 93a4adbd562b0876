"""Shuffling that a run resumed mid-epoch can continue exactly where the interrupted run stopped."""

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffle(Sampler[int]):
    """A new permutation of range(n) each epoch, drawn from (seed, epoch) alone.

    RandomSampler draws its permutation from the global RNG when it is iterated, so a run resumed mid-epoch would
    train on other batches than the run it continues. This permutation depends only on (seed, epoch), and
    `already_done()` (asked each time an epoch starts) says how many of its samples were trained on before the
    interruption, so the resumed epoch yields exactly the rest.

    Args:
        n: the data set size.
        seed: the shuffling seed; the same seed gives the same order in every run.
        already_done: samples of the current epoch to skip; 0 except when resuming mid-epoch.
    """

    def __init__(self, n: int, seed: int, already_done: Callable[[], int] = lambda: 0) -> None:
        self.n, self.seed, self.epoch, self.already_done = n, seed, 0, already_done

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)
        order = torch.randperm(self.n, generator=gen)
        return iter(order[self.already_done() :].tolist())

    def __len__(self) -> int:
        return self.n


class ResumableDataLoader(DataLoader):
    """A DataLoader over an EpochShuffle that tells Lightning it can resume mid-epoch.

    Lightning stores `state_dict()` in checkpoints and hands it back on resume; the shuffling seed travels with
    it, so the resumed run continues the interrupted run's order even if it was started with another seed.
    """

    def state_dict(self) -> dict[str, int]:
        return {"shuffle_seed": self.sampler.seed} if isinstance(self.sampler, EpochShuffle) else {}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, EpochShuffle) and "shuffle_seed" in state:
            self.sampler.seed = state["shuffle_seed"]
