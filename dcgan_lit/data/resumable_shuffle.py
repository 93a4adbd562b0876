"""Shuffling that a run resumed mid-epoch can continue exactly where the interrupted run stopped."""

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffle(Sampler[int]):
    """A new permutation of range(n) each epoch, drawn from (seed, epoch) alone.

    RandomSampler draws its permutation from the global RNG when it is iterated, so a run resumed mid-epoch would
    train on other batches than the run it continues. This permutation depends only on (seed, epoch), and
    `position()`, asked each time the sampler is iterated, gives the epoch and how many of its samples were
    trained on before the interruption, so the resumed epoch yields exactly the rest.

    The epoch is asked for rather than waited for: a loader with workers draws its indices as soon as Lightning
    creates its iterator, and after a resume Lightning does that before it calls `set_epoch`.

    Args:
        n: the data set size.
        seed: the shuffling seed; the same seed gives the same order in every run.
        position: (epoch, samples of it to skip); None: the epoch `set_epoch` gave, from its first sample.
    """

    def __init__(self, n: int, seed: int, position: Callable[[], tuple[int, int]] | None = None) -> None:
        self.n, self.seed, self.epoch, self.position = n, seed, 0, position

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch; `position` takes precedence when given."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        epoch, done = self.position() if self.position is not None else (self.epoch, 0)
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        order = torch.randperm(self.n, generator=gen)
        return iter(order[done:].tolist())

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
