"""The copy check: do generated images sit closer to a training image than training images sit to each other?

Scored against its own training images (small folders: `choose_reference`), FID and KID reward a generator that
memorizes them, and a DCGAN given 200 images does. In the same Inception features as FID:

    nn_ratio = median over fakes of (distance to the nearest training image)
             / median over training images of (distance to the nearest *other* training image)

1 means samples are as close to the training set as its own images are to each other. New images of the same kind
score about 1 (1.03 for 355 space photos the run never saw, against its 190 training ones; BENCHMARKS.md, "The
copy check"), a generator whose samples are blurrier or off-distribution scores above 1, and copies score below
it: 0 exactly, 0.59 and 0.81 with pixel noise of sigma 2 and 4 (of 255). Inception reads stronger noise on a
black sky as new texture (sigma 8 scores 1.01), so the check catches close copies; the grid is for the rest.
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.utils import make_grid

# Below this, samples sit closer to the training images than any of 200 subsets of unseen photos did (lowest 0.99)
# and as close as copies with pixel noise of sigma 4 (0.81): BENCHMARKS.md, "The copy check".
COPY_WARNING_RATIO = 0.9


@dataclass(frozen=True)
class NearestReal:
    """Each fake's nearest training image, and the ratio that summarizes how near."""

    ratio: float  # median fake-to-nearest-real over median leave-one-out real-to-real
    fake_to_real: float  # the median nearest-real distance of the fakes
    real_to_real: float  # the median leave-one-out nearest-neighbour distance among the reals
    nearest: Tensor  # (num_fake,) index of each fake's nearest real image
    distance: Tensor  # (num_fake,) the distance to it

    def warning(self) -> str | None:
        """One line when the samples are too close to the training images, else None."""
        if self.ratio >= COPY_WARNING_RATIO:
            return None
        return (
            f"nn_ratio {self.ratio:.2f} < {COPY_WARNING_RATIO}: samples sit closer to their nearest training image "
            "than new images of the same kind do; G is likely copying its training set, and FID/KID against it "
            "reward that. Look at the nearest-real grid; fewer epochs, more augmentation or more images help."
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "nn_ratio": self.ratio,
            "median_fake_to_nearest_real": self.fake_to_real,
            "median_real_to_nearest_other_real": self.real_to_real,
            "warn_below": COPY_WARNING_RATIO,
        }


def min_distances(
    queries: Tensor, keys: Tensor, leave_one_out: bool = False, chunk: int = 1024
) -> tuple[Tensor, Tensor]:
    """(distance, index) of each query row's nearest key row (Euclidean), in chunks so that memory stays
    chunk x len(keys); with leave_one_out, `queries` is `keys` and a row never matches itself."""
    dists, idxs = [], []
    keys = keys.double()
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start : start + chunk].double(), keys)  # float64: an exact copy gives 0, not 1e-3
        if leave_one_out:
            rows = torch.arange(len(d))
            d[rows, rows + start] = torch.inf
        best = d.min(1)
        dists.append(best.values)
        idxs.append(best.indices)
    return torch.cat(dists).float(), torch.cat(idxs)


def nearest_real(real: Tensor, fake: Tensor) -> NearestReal:
    """The copy check of `fake` (N, F) features against the `real` (M, F) training features; M >= 2."""
    if len(real) < 2 or len(fake) < 1:
        raise ValueError(f"the copy check needs at least 2 real and 1 generated image, got {len(real)} and {len(fake)}")
    loo, _ = min_distances(real, real, leave_one_out=True)
    distance, nearest = min_distances(fake, real)
    fake_to_real, real_to_real = float(distance.median()), float(loo.median())
    ratio = fake_to_real / real_to_real if real_to_real > 0 else float("inf")
    return NearestReal(ratio, fake_to_real, real_to_real, nearest, distance)


def nearest_grid(fakes: Tensor, reals: Dataset, check: NearestReal, num: int = 16, nrow: int = 8) -> Tensor:
    """A float grid in [0, 1]: the `num` samples closest to the training set, each above its nearest training
    image (rows of `nrow` samples, then the row of their neighbours). If these are not copies, none are.

    fakes: uint8 (N, C, S, S); reals: the data set of uint8 images; both in the order `nearest_real` saw them.
    """
    closest = check.distance.argsort()[:num]
    pairs = []
    for start in range(0, len(closest), nrow):
        picked = closest[start : start + nrow]
        neighbours = torch.stack([reals[int(i)] for i in check.nearest[picked]])
        pairs += [fakes[picked.to(fakes.device)].cpu(), neighbours.cpu()]
    images = torch.cat(pairs).float() / 255
    return make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
