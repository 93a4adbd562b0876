"""MNIST and Fashion-MNIST: torchvision's download, or IDX files already on disk (gzipped or not, any usual layout)."""

import gzip
import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import datasets

from dcgan_lit.data.datamodule import ImageDataModule
from dcgan_lit.data.in_memory import InMemoryImages
from dcgan_lit.errors import DataError

log = logging.getLogger(__name__)

VARIANTS: dict[str, type[datasets.MNIST]] = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}
# The held-out split is the official 10k test set, so FID numbers compare with published ones.
IDX_IMAGES: dict[str, str] = {"train": "train-images-idx3-ubyte", "val": "t10k-images-idx3-ubyte"}
_IDX_MAGIC_UINT8_3D = 0x0803


def read_idx_images(path: Path) -> Tensor:
    """Read an IDX3 uint8 image file (optionally .gz) into a (N, rows, cols) uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read it ({e}); delete it and let it download again, or fix data.root.") from e
    if len(data) < 16 or struct.unpack(">I", data[:4])[0] != _IDX_MAGIC_UINT8_3D:
        raise DataError(f"{path} is not an IDX image file (no 0x00000803 header); point data.root at the real files.")
    n, rows, cols = struct.unpack(">III", data[4:16])
    if len(data) - 16 != n * rows * cols:
        raise DataError(
            f"{path} is truncated: the header promises {n}x{rows}x{cols} bytes; delete it and download again."
        )
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=16).copy()).view(n, rows, cols)


def find_idx_file(dirs: list[Path], name: str, variant: str) -> Path | None:
    """The first of name / name.gz in each dir, dir/raw, or torchvision's dir/<Class>/raw."""
    for d in dirs:
        for folder in (d, d / "raw", d / VARIANTS[variant].__name__ / "raw"):
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    return None


class MNISTDataModule(ImageDataModule):
    """MNIST-style 28x28 digits or garments, resized once to image_size (bilinear, as the tutorial's Resize).

    Args:
        root: where to look for the IDX files first, and where torchvision downloads them.
        variant: "mnist" or "fashion_mnist".
        download: download with torchvision when no IDX files are found.
        search_dirs: more folders to look in before downloading, e.g. Debian's /usr/share/datasets/fashion-mnist.
        **kwargs: ImageDataModule's arguments (image_size, nc, batch_size, num_workers, pin_memory, hflip).
    """

    def __init__(
        self,
        root: str,
        variant: str = "mnist",
        download: bool = True,
        search_dirs: list[str] | tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if variant not in VARIANTS:
            raise DataError(f"data.variant={variant!r}: must be one of {', '.join(VARIANTS)}.")
        self.root, self.variant, self.download = Path(root).expanduser(), variant, download
        self.dirs = [self.root, *(Path(d).expanduser() for d in search_dirs)]

    def _find(self) -> dict[str, Path] | None:
        found = {split: find_idx_file(self.dirs, name, self.variant) for split, name in IDX_IMAGES.items()}
        return found if all(found.values()) else None

    def prepare_data(self) -> None:
        if self._find() is not None:
            return
        where = ", ".join(str(d) for d in self.dirs)
        debian = (
            " (Debian/Ubuntu: apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist)"
        )
        hint = (
            f"Put {IDX_IMAGES['train']}(.gz) and {IDX_IMAGES['val']}(.gz) in data.root"
            + (debian if self.variant == "fashion_mnist" else "")
            + ", then set data.root to that folder."
        )
        if not self.download:
            raise DataError(
                f"data.root={str(self.root)!r}: no {self.variant} IDX files in {where}, and data.download=false. {hint}"
            )
        log.info(f"no {self.variant} IDX files in {where}; downloading to {self.root}")
        try:
            for train in (True, False):
                VARIANTS[self.variant](str(self.root), train=train, download=True)
        except Exception as e:  # torchvision raises RuntimeError/URLError/OSError depending on what failed
            reason = " ".join(str(e).split())  # torchvision lists every mirror on its own line
            raise DataError(
                f"data.root={str(self.root)!r}: downloading {self.variant} failed ({reason}). Offline? {hint}"
            ) from e

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        found = self._find()
        if found is None:  # prepare_data ran on another node, or was skipped
            self.prepare_data()
            found = self._find()
        log.info(f"{self.variant}: reading {found['train']} and {found['val']}")
        return tuple(InMemoryImages(self._resize(read_idx_images(found[s]))) for s in ("train", "val"))

    def _resize(self, digits: Tensor) -> Tensor:
        """(N, 28, 28) uint8 -> (N, nc, image_size, image_size) uint8, in chunks to bound memory."""
        out = torch.empty(digits.shape[0], 1, self.image_size, self.image_size, dtype=torch.uint8)
        for start in range(0, digits.shape[0], 4096):
            chunk = digits[start : start + 4096, None].float()
            resized = F.interpolate(chunk, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
            out[start : start + 4096] = resized.round().clamp(0, 255).to(torch.uint8)
        return out.expand(-1, self.nc, -1, -1).contiguous() if self.nc > 1 else out
