"""MNIST-style data from IDX files the tests write themselves, in every layout users have them in."""

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit.data import mnist
from dcgan_lit.errors import DataError

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(images: torch.Tensor) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x0803, n, rows, cols) + images.numpy().tobytes()


def write_idx(folder: Path, train: torch.Tensor, test: torch.Tensor, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, images in (("train-images-idx3-ubyte", train), ("t10k-images-idx3-ubyte", test)):
        data = idx_bytes(images)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


def digits(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize(
    "layout, gz",
    [
        ("", True),  # flat and gzipped, like Debian's dataset-fashion-mnist
        ("raw", False),  # root/raw, decompressed
        ("FashionMNIST/raw", False),  # torchvision's own download layout
        ("FashionMNIST/raw", True),
    ],
)
def test_reads_idx_files_in_every_layout(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, layout: str, gz: bool
) -> None:
    root = tmp_path / "fm"
    train, test = digits(40, 0), digits(10, 1)
    write_idx(root / layout, train, test, gz)
    cfg = tiny_cfg("data=fashion_mnist", f"data.root={root}", "data.search_dirs=[]", "data.download=false")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.data_train) == 40 and len(dm.data_val) == 10  # the official test set is the held-out split
    x = dm.data_train[3]
    assert x.shape == (1, 32, 32) and x.dtype == torch.uint8
    expected = F.interpolate(
        train[3][None, None].float(), size=32, mode="bilinear", antialias=True, align_corners=False
    )
    assert (x.int() - expected[0].round().int()).abs().max() <= 1


def test_three_channels_repeat_the_gray(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    write_idx(tmp_path / "m", digits(20, 0), digits(5, 1), gz=False)
    dm = instantiate(tiny_cfg("data=mnist", f"data.root={tmp_path / 'm'}", "data.nc=3", "data.image_size=64").data)
    dm.setup("fit")
    x = dm.data_train[0]
    assert x.shape == (3, 64, 64) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_corrupt_and_truncated_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is not an IDX image file"):
        mnist.read_idx_images(bad)
    bad.write_bytes(idx_bytes(digits(3, 0))[:-10])
    with pytest.raises(DataError, match=r"is truncated"):
        mnist.read_idx_images(bad)
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(idx_bytes(digits(3, 0)))[:30])
    with pytest.raises(DataError, match=r"x.gz: cannot read it"):
        mnist.read_idx_images(gz)


def test_no_files_and_no_download_says_what_to_do(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = tiny_cfg(
        "data=fashion_mnist", f"data.root={tmp_path / 'empty'}", "data.search_dirs=[]", "data.download=false"
    )
    with pytest.raises(DataError, match=r"no fashion_mnist IDX files .*apt-get install dataset-fashion-mnist"):
        instantiate(cfg.data).prepare_data()


def test_failed_download_is_one_clear_error(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://mirror/, got:\nerror\n")

    monkeypatch.setitem(mnist.VARIANTS, "mnist", Offline)
    cfg = tiny_cfg("data=mnist", f"data.root={tmp_path / 'dl'}")
    with pytest.raises(
        DataError, match=r"failed \(Error downloading \S+: Tried https://mirror/, got: error\)\. Offline\? Put"
    ):
        instantiate(cfg.data).prepare_data()
    assert calls == [(str(tmp_path / "dl"), True, True)]  # torchvision's real download path was taken


@pytest.mark.skipif(
    not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").exists(), reason="Debian dataset-fashion-mnist not installed"
)
def test_debian_fashion_mnist_is_found_without_data_root(tiny_cfg: Callable[..., DictConfig]) -> None:
    dm = instantiate(tiny_cfg("data=fashion_mnist", "data.download=false").data)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.data_train) == 60_000 and len(dm.data_val) == 10_000
    # Fashion-MNIST has dark backgrounds: the corner pixels are mostly 0.
    corners = torch.stack([dm.data_val[i][0, 0, 0] for i in range(100)])
    assert (corners < 10).float().mean() > 0.9
