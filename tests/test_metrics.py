"""FID/KID with a tiny TorchScript extractor standing in for TF-Inception (same interface, seconds on a CPU)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

from dcgan_lit.data.synthetic import render_space_images
from dcgan_lit.metrics.features import load_extractor
from dcgan_lit.metrics.quality import features, fid_kid
from dcgan_lit.train import train


class TinyInception(nn.Module):
    """(N, 3, 299, 299) in (x - 128) / 128 -> (N, 2048), like default_1.pt, from fixed random filters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, kernel_size=9, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(16)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(torch.relu(self.conv(x))).flatten(1)  # 8 x 16 x 16 = 2048


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fid") / "tiny_inception.pt"
    torch.jit.script(TinyInception().eval()).save(str(path))
    return path


def test_fid_of_a_set_with_itself_is_zero_and_grows_as_fakes_get_worse(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    cpu = torch.device("cpu")
    real_images, _ = render_space_images(300, 32, seed=1)
    real = features(extractor, real_images.split(100), cpu)
    same = fid_kid(extractor, real, real, cpu)
    assert abs(same["fid"]) < 1e-3 and abs(same["kid"]) < 1e-3

    scores = []
    for noise in (10, 40, 120):
        g = torch.Generator().manual_seed(noise)
        worse = (real_images.float() + noise * torch.randn(real_images.shape, generator=g)).clamp(0, 255)
        scores.append(fid_kid(extractor, real, features(extractor, worse.to(torch.uint8).split(100), cpu), cpu))
    fids = [s["fid"] for s in scores]
    assert 0 < fids[0] < fids[1] < fids[2], fids
    assert scores[0]["kid"] < scores[2]["kid"]


def test_kid_subsets_shrink_for_small_sets(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    images, _ = render_space_images(20, 32, seed=2)
    feats = features(extractor, [images], torch.device("cpu"))
    out = fid_kid(extractor, feats[:10], feats[10:], torch.device("cpu"))  # a 200-image folder holds out 10
    assert out["kid_subset_size"] == 10 and out["num_real"] == 10


def test_grayscale_repeats_to_three_channels(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(extractor(gray), extractor(gray.expand(-1, 3, -1, -1)))


def test_training_logs_val_fid_and_kid_and_keeps_best_ckpt(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path
) -> None:
    run = tmp_path / "run"
    metrics = train(
        tiny_cfg(
            "metrics=fid",
            f"metrics.inception_weights={tiny_weights}",
            "metrics.num_fake=40",
            "metrics.every_n_epochs=1",
            "optimized_metric=val/fid",
        )
    )
    assert metrics["val/fid"] > 0 and "val/kid" in metrics
    (events,) = (run / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
    acc.Reload()
    assert len(acc.Scalars("val/fid")) == 2 and len(acc.Scalars("val/kid")) == 2  # after each of 2 epochs
    assert (run / "checkpoints" / "best.ckpt").is_file()
    caches = list((tmp_path / "data" / "cache").glob("real-*.pt"))
    assert len(caches) == 1 and torch.load(caches[0], weights_only=True).shape == (12, 2048)  # 10% of 120 held out


def test_default_run_has_no_metrics(tiny_cfg: Callable[..., DictConfig]) -> None:
    assert tiny_cfg().metrics is None
    assert tiny_cfg("experiment=celeba", "data.root=x").metrics.num_fake == 10_000


def test_a_missing_weights_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"metrics.inception_weights='.*nope.pt' cannot be loaded as TorchScript"):
        load_extractor(str(tmp_path / "nope.pt"))
