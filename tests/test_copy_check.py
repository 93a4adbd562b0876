"""The copy check (val/nn_ratio): copies are flagged, new images of the same kind score about 1, noise is not flagged.

Features come from the tiny TorchScript stand-in for TF-Inception, through the same extractor code as FID.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from dcgan_lit.data.synthetic import render_space_images
from dcgan_lit.metrics.copy_check import COPY_WARNING_RATIO, min_distances, nearest_grid, nearest_real
from dcgan_lit.metrics.features import load_extractor
from dcgan_lit.metrics.quality import features
from dcgan_lit.train import train
from tests.conftest import events

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def space(tiny_weights: Path) -> dict[str, torch.Tensor]:
    """200 'training' and 200 held-out images of the same generated kind, and the training set's features."""
    images, _ = render_space_images(400, 32, seed=3)
    extractor = load_extractor(str(tiny_weights))
    train_images, heldout = images[:200], images[200:]
    return {
        "extractor": extractor,
        "train": train_images,
        "heldout": heldout,
        "real": features(extractor, train_images.split(100), CPU),
    }


def ratio_of(space: dict, fakes: torch.Tensor) -> float:
    return nearest_real(space["real"], features(space["extractor"], fakes.split(100), CPU)).ratio


def test_exact_copies_of_training_images_score_0_and_are_flagged(space: dict) -> None:
    picks = torch.randint(0, 200, (300,), generator=torch.Generator().manual_seed(0))
    check = nearest_real(space["real"], features(space["extractor"], space["train"][picks].split(100), CPU))
    assert check.ratio == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(check.nearest, picks) or (check.distance < 1e-4).all()  # twins in the set tie at 0
    assert check.warning() is not None and "copying its training set" in check.warning()


def test_copies_with_small_noise_are_flagged(space: dict) -> None:
    g = torch.Generator().manual_seed(1)
    noisy = (space["train"].float() + 4 * torch.randn(space["train"].shape, generator=g)).round().clamp(0, 255)
    ratio = ratio_of(space, noisy.to(torch.uint8))
    assert ratio < COPY_WARNING_RATIO


def test_held_out_images_of_the_same_kind_score_about_1(space: dict) -> None:
    ratio = ratio_of(space, space["heldout"])
    assert 0.85 < ratio < 1.2
    assert ratio > COPY_WARNING_RATIO  # never flagged


def test_noise_is_not_flagged(space: dict) -> None:
    noise = torch.randint(0, 256, (200, 3, 32, 32), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    check = nearest_real(space["real"], features(space["extractor"], noise.split(100), CPU))
    assert check.ratio > 1.5 and check.warning() is None


def test_leave_one_out_never_matches_a_row_with_itself() -> None:
    keys = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    distance, index = min_distances(keys, keys, leave_one_out=True, chunk=3)  # a chunk edge inside the set
    assert distance.tolist() == [1.0, 1.0, 2.0, 4.0] and index.tolist() == [1, 0, 1, 2]


def test_the_grid_puts_the_closest_samples_above_their_nearest_training_images(space: dict) -> None:
    fakes = torch.cat([space["heldout"][:20], space["train"][[5, 9]]])  # two copies among new images
    check = nearest_real(space["real"], features(space["extractor"], fakes.split(100), CPU))
    grid = nearest_grid(fakes, space["train"], check, num=8, nrow=8)
    assert grid.shape == (3, 2 * 34 + 2, 8 * 34 + 2)  # a row of samples, then the row of their neighbours
    cell = lambda row, col: grid[:, 2 + row * 34 : 34 + row * 34, 2 + col * 34 : 34 + col * 34]  # noqa: E731
    first_two = {tuple(cell(0, c).flatten()[:50].tolist()) for c in (0, 1)}
    copies = {tuple((space["train"][i].float() / 255).flatten()[:50].tolist()) for i in (5, 9)}
    assert first_two == copies  # the copies come first ...
    for c in (0, 1):
        assert torch.allclose(cell(0, c), cell(1, c))  # ... and each sits above itself in the training set


def test_training_against_its_own_images_logs_the_copy_check_and_the_metrics_share(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path
) -> None:
    """120 images hold out 12, fewer than metrics.min_heldout: fid5k-train's protocol with num_fake_train samples,
    val/nn_ratio, the nearest-real grid, and sample_quality.json with every score and the share of wall time."""
    run = tmp_path / "run"
    cfg = tiny_cfg("metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=999",
                   "metrics.num_fake_train=24", "metrics.every_n_epochs=1", "trainer.max_epochs=2")  # fmt: skip
    metrics = train(cfg)
    assert metrics["val/nn_ratio"] > 0
    assert len(events(run).Scalars("val/nn_ratio")) == 2
    grid = Image.open(run / "samples" / "nearest_epoch_001.png")
    assert grid.size == (8 * 34 + 2, 4 * 34 + 2)  # 16 samples, each above its nearest training image
    summary = json.loads((run / "sample_quality.json").read_text())
    assert summary["protocol"] == "fid0.024k-train" and summary["reference"]["is_training_set"] is True
    assert [s["epoch"] for s in summary["scores"]] == [1, 2] and summary["scores"][1]["num_fake"] == 24
    assert summary["scores"][1]["nn_ratio"] == pytest.approx(metrics["val/nn_ratio"], rel=1e-5)
    assert 0 < summary["metrics_share"] < 1 and summary["metrics_seconds"] > 0
    assert summary["extractor_runtime"].startswith("torch: ")  # the tiny stand-in cannot be exported to ONNX
