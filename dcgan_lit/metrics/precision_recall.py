"""Precision and recall of generated images (Kynkäänniemi et al. 2019): the k-NN manifold estimate with k=3, on the
same Inception features as FID, computed by torch-fidelity (the `prc` metric of torch_fidelity.calculate_metrics).

FID mixes two failures: samples that look wrong, and samples that cover only part of the data. Precision is the
share of generated images that fall inside the real images' manifold (the union of balls reaching each real
image's k-th nearest real neighbour): how realistic they are. Recall is the share of real images inside the
generated images' manifold: how much of the data G covers. Mode collapse keeps precision and loses recall.
"""

from torch import Tensor
from torch_fidelity.metric_prc import calculate_precision_recall_part

NEIGHBORHOOD = 3  # k of the k-NN balls, as the paper and torch-fidelity use it

# A drop of recall between two scored epochs that signals mode collapse, when precision holds meanwhile.
RECALL_DROP = 0.1  # absolute
RECALL_DROP_RELATIVE = 1 / 3
PRECISION_HOLDS = 0.05  # the most precision may fall for the drop to count as collapse rather than divergence


def precision_recall(real: Tensor, fake: Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """(precision, recall) of `fake` (N, D) against `real` (M, D) features; batch_size bounds cdist's memory."""
    return calculate_precision_recall_part(fake.float(), real.float(), neighborhood=NEIGHBORHOOD, batch_size=batch_size)


def mode_collapse_warning(before: dict[str, float], after: dict[str, float]) -> str | None:
    """A warning when recall fell sharply between two scores while precision held: G dropped part of the data."""
    drop = before["recall"] - after["recall"]
    if drop >= RECALL_DROP and drop >= RECALL_DROP_RELATIVE * before["recall"]:
        if before["precision"] - after["precision"] <= PRECISION_HOLDS:
            return (
                f"mode collapse is likely: recall fell from {before['recall']:.2f} to {after['recall']:.2f} while "
                f"precision held ({before['precision']:.2f} -> {after['precision']:.2f}); G covers less of the data. "
                "Look at the sample grid; an earlier checkpoint may be better."
            )
    return None
