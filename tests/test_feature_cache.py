"""The real-image feature cache behind val/fid and evaluate: keyed by what decides the features, never by a path."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from dcgan_lit.data.folder import FolderDataModule
from dcgan_lit.data.synthetic import SyntheticDataModule
from dcgan_lit.metrics.features import FIDFeatures, load_extractor
from dcgan_lit.metrics.quality import features, real_split_features
from tests.test_data_folder import noise, write


class PixelFeatures(nn.Module):
    """A stand-in extractor whose features are the pixels themselves: any change of the images shows."""

    def forward(self, x: Tensor) -> Tensor:
        return x.float().flatten(1)


class Counting:
    """An extractor that counts the images it has been asked to embed."""

    def __init__(self) -> None:
        self.extractor = FIDFeatures(PixelFeatures(), tf_range=False, name="pixels")
        self.images = 0
        self.extractor.register_forward_hook(lambda m, args, out: setattr(self, "images", self.images + len(out)))


def folder(root: Path, n: int, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    for i in range(n):
        write(root / f"{i:03d}.png", noise(*size, seed=seed * 1000 + i))
    return root


def folder_dm(root: Path, cache: Path, **kwargs: object) -> FolderDataModule:
    settings = {"val_fraction": 0.1, "split_seed": 0, "image_size": 16, "batch_size": 4, **kwargs}
    dm = FolderDataModule(str(root), cache_dir=str(cache), **settings)
    dm.setup("fit")
    return dm


def cached(counting: Counting, dm: object, cache: Path) -> Tensor:
    """The held-out features as the metric gets them, checked against a fresh computation from the images."""
    got = real_split_features(counting.extractor, dm, "heldout", torch.device("cpu"), cache)
    fresh = features(FIDFeatures(PixelFeatures(), tf_range=False, name="pixels"), dm.heldout_dataloader(), "cpu")
    assert torch.equal(got, fresh), "the cached features are not those of the held-out images"
    return got


def test_every_change_of_a_folders_heldout_images_recomputes(tmp_path: Path) -> None:
    counting, cache = Counting(), tmp_path / "cache"
    root = folder(tmp_path / "imgs", 60)
    cached(counting, folder_dm(root, cache), cache)
    assert counting.images == 6

    def recomputed(dm: FolderDataModule) -> bool:
        before = counting.images
        cached(counting, dm, cache)
        return counting.images > before

    # The same folder by another spelling of its path, and a copy elsewhere with the same files: reused.
    assert not recomputed(folder_dm(tmp_path / "imgs" / ".." / "imgs", cache))
    os.symlink(root, tmp_path / "link")
    assert not recomputed(folder_dm(tmp_path / "link", cache))
    # Each of these changes which images are held out, or what they look like: computed afresh.
    assert recomputed(folder_dm(root, cache, split_seed=1))
    assert recomputed(folder_dm(root, cache, center_crop=20))
    assert recomputed(folder_dm(root, cache, image_size=32))
    write(root / "060.png", noise(40, 30, seed=60))  # 61 images: still round(6.1) = 6 held out, other ones
    assert recomputed(folder_dm(root, cache))
    for i in range(61):  # every image replaced by another of the same name
        write(root / f"{i:03d}.png", noise(40, 30, seed=5000 + i))
    assert recomputed(folder_dm(root, cache))
    # val_fraction 0.1 -> 0.105 keeps round(6.1) = 6 and the same seeded draw: the same images, rightly reused.
    assert not recomputed(folder_dm(root, cache, val_fraction=0.105))


def test_a_file_replaced_by_one_of_the_same_size_recomputes(tmp_path: Path) -> None:
    counting, cache = Counting(), tmp_path / "cache"
    root = tmp_path / "imgs"
    for i in range(20):  # BMP: the file size depends on the dimensions only
        write(root / f"{i:03d}.bmp", noise(40, 30, seed=i))
    dm = folder_dm(root, cache, val_fraction=0.5)
    cached(counting, dm, cache)
    target = dm.data_val.dataset.files[dm.data_val.indices[0]]
    size, mtime = target.stat().st_size, target.stat().st_mtime_ns
    write(target, noise(40, 30, seed=999))
    os.utime(target, ns=(mtime + 10**9, mtime + 10**9))  # as a copy made a second later would be
    assert target.stat().st_size == size
    before = counting.images
    cached(counting, folder_dm(root, cache, val_fraction=0.5), cache)
    assert counting.images > before


@pytest.mark.parametrize("change", [{"seed": 1}, {"split_seed": 1}, {"num_images": 61}, {"nc": 1}])
def test_synthetic_data_changes_recompute(tmp_path: Path, change: dict) -> None:
    counting, cache = Counting(), tmp_path / "cache"
    base = {"num_images": 60, "image_size": 16, "batch_size": 4}

    def dm(**kwargs: object) -> SyntheticDataModule:
        module = SyntheticDataModule(**{**base, **kwargs})
        module.setup("fit")
        return module

    cached(counting, dm(), cache)
    before = counting.images
    cached(counting, dm(**change), cache)
    assert counting.images > before
    assert len(list(cache.glob("real-*.pt"))) == 2


def test_the_extractor_is_identified_by_its_weights_not_its_path(tmp_path: Path, tiny_weights: Path) -> None:
    dm = SyntheticDataModule(num_images=40, image_size=16, batch_size=4)
    dm.setup("fit")
    cache, cpu = tmp_path / "cache", torch.device("cpu")
    real_split_features(load_extractor(str(tiny_weights)), dm, "heldout", cpu, cache)
    copy = tmp_path / "renamed.pt"
    shutil.copyfile(tiny_weights, copy)
    real_split_features(load_extractor(str(copy)), dm, "heldout", cpu, cache)
    assert len(list(cache.glob("real-*.pt"))) == 1  # the same weights under another name

    other = torch.jit.load(str(tiny_weights))
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    other.save(str(tmp_path / "other.pt"))
    real_split_features(load_extractor(str(tmp_path / "other.pt")), dm, "heldout", cpu, cache)
    assert len(list(cache.glob("real-*.pt"))) == 2  # other weights, other features
