"""Any folder of images, searched recursively with no class subfolders.

So CelebA's img_align_celeba/ works as unzipped.
"""

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, Subset, default_collate
from torchvision.transforms import v2

from dcgan_lit.data.datamodule import ImageDataModule
from dcgan_lit.data.image_check import unreadable_images
from dcgan_lit.data.preprocess import cache_key, file_signatures, materialize
from dcgan_lit.data.split import holdout_split
from dcgan_lit.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def find_images(root: Path) -> list[Path]:
    """All image files under root, at any depth, sorted so that the order (and so the split) is reproducible.

    Symlinks are followed, but each real folder is entered once: a link back up the tree (`up -> .`) or a loop
    (`me -> me`) neither lists an image twice nor ends in ELOOP. Broken links are left out with one warning.
    """
    # scandir and string sorting: CelebA's 202,599 files list in well under a second, pathlib takes several.
    # DirEntry.is_file() and is_dir() read the directory entry's type: no stat per file, and they follow symlinks.
    found, folders, seen, broken = [], [str(root)], set(), []
    while folders:
        folder = folders.pop()
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        subfolders = []
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    if entry.is_dir():
                        subfolders.append(entry.path)
                    elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                        found.append(entry.path)
                    elif entry.is_symlink() and not os.path.exists(entry.path):
                        broken.append(entry.path)
                except OSError:  # a link loop (ELOOP) or an entry that vanished
                    broken.append(entry.path)
        # In name order whatever the file system's order, so which spelling of a linked folder is kept, and so
        # the file list and the split, is the same on every machine.
        folders.extend(sorted(subfolders, reverse=True))
    if broken:
        log.warning(f"{len(broken)} links under {root} lead nowhere or loop, and were skipped, e.g. {min(broken)}")
    # With the separator as the lowest character, string order is pathlib's component-wise order.
    return [Path(f) for f in sorted(found, key=lambda f: f.replace(os.sep, "\0"))]


def to_mode(img: Image.Image, nc: int) -> Image.Image:
    """Convert any PIL mode to RGB (nc=3) or L (nc=1); transparency is composited over black."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert() would clip to 255, so rescale to 8 bits by hand.
        a = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray((a / scale * 255).round().clip(0, 255).astype(np.uint8), "L")
    if (img.mode == "P" and "transparency" in img.info) or img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        black = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, img.convert("RGBA"))
    return img.convert("L" if nc == 1 else "RGB")


class FolderImages(Dataset):
    """Images from a list of files: optional center crop, resize of the short side, center crop to a square.

    This is the tutorial's `Resize(image_size) + CenterCrop(image_size)`; with `center_crop=178` it first takes
    CelebA's 178x178 face square, as some write-ups do, so no forehead or chin is lost to the second crop.

    The folder check leaves out files that cannot be decoded before training starts. A file that fails later (it
    was deleted, or its disk went away) is handled as `on_bad_image` says: "skip" serves None, which
    `collate_readable` leaves out of its batch, with one warning naming the file (per loader process); "error"
    raises a DataError naming it.
    """

    def __init__(
        self, files: list[Path], image_size: int, nc: int, center_crop: int | None = None, on_bad_image: str = "skip"
    ) -> None:
        self.files, self.nc, self.on_bad_image = files, nc, on_bad_image
        self.failed: set[int] = set()  # files that failed in this process, each warned about once
        steps = [v2.CenterCrop(center_crop)] if center_crop else []
        steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), v2.PILToTensor()]
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor | None:
        try:
            with Image.open(self.files[i]) as img:
                ImageOps.exif_transpose(img, in_place=True)  # phone photos: upright as displayed, not as stored
                return self.transform(to_mode(img, self.nc))
        except Exception as e:
            if self.on_bad_image == "error":
                raise DataError(
                    f"{self.files[i]}: cannot be read as an image any more ({e}); restore or delete it, or set "
                    "data.on_bad_image=skip to leave such files out. The last checkpoint is in the run folder."
                ) from e
            if i not in self.failed:
                self.failed.add(i)
                log.warning(f"{self.files[i]}: cannot be read any more ({e}); left out of its batches")
            return None


def collate_readable(images: list[Tensor | None]) -> Tensor:
    """Stack a batch, leaving out the images a FolderImages could not read (None); all of them is an error."""
    readable = [image for image in images if image is not None]
    if not readable:
        raise DataError(
            f"none of the {len(images)} images of a batch could be read (see the warnings above): has the data "
            "folder gone? The last checkpoint is in the run folder."
        )
    return default_collate(readable)


class FolderDataModule(ImageDataModule):
    """Trains on every image under `root`; a seeded `val_fraction` of them is held out for metrics.

    Args:
        root: the folder to search, recursively.
        center_crop: crop this square from the middle before resizing (178 for CelebA faces), or None.
        val_fraction, split_seed: size and seed of the held-out split.
        missing_hint: appended to the error when no images are found; `{root}` is replaced by the root.
        cache_dir: where the decoded uint8 array for `gpu_cache` is kept between runs.
        preprocess_workers: processes that decode the images for that cache; None uses every core.
        on_bad_image: "skip" leaves out files that cannot be decoded, with one warning listing them;
            "error" stops at the first one, naming it.
        **kwargs: ImageDataModule's arguments (image_size, nc, batch_size, num_workers, pin_memory, hflip).
    """

    def __init__(
        self,
        root: str,
        center_crop: int | None = None,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        missing_hint: str = "",
        cache_dir: str = "data/cache",
        preprocess_workers: int | None = None,
        on_bad_image: str = "skip",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_bad_image not in ("skip", "error"):
            raise ConfigError(f"data.on_bad_image={on_bad_image!r}: must be skip or error.")
        self.on_bad_image = on_bad_image
        self.root = Path(root).expanduser()
        self.center_crop, self.val_fraction, self.split_seed = center_crop, val_fraction, split_seed
        self.missing_hint = missing_hint
        self.cache_dir, self.preprocess_workers = Path(cache_dir).expanduser(), preprocess_workers
        self._cache_file: Path | None = None
        self._files: list[Path] | None = None  # listed once, for prepare_data and setup
        self._signatures: dict[str, str] = {}  # stat'ed once, for both cache keys (the check and the decode)

    collate_fn = staticmethod(collate_readable)  # batches without the files that failed mid-run

    def prepare_data(self) -> None:
        # Runs once per machine before setup(), so under DDP one process decodes and the others read its file.
        files = self._find_files()
        num_train = len(holdout_split(len(files), self.val_fraction, self.split_seed)[0])
        if self.use_device_cache(num_train):
            self.decoded_images(files)

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        files = self._find_files()
        train_idx, val_idx = holdout_split(len(files), self.val_fraction, self.split_seed)
        log.info(f"{len(files)} images under {self.root}: {len(train_idx)} for training, {len(val_idx)} held out")
        dataset = FolderImages(files, self.image_size, self.nc, self.center_crop, self.on_bad_image)
        return Subset(dataset, train_idx.tolist()), Subset(dataset, val_idx.tolist())

    def train_images(self) -> Tensor:
        decoded = self.decoded_images(self.data_train.dataset.files)
        return torch.from_numpy(np.ascontiguousarray(decoded[self.data_train.indices]))

    def fingerprint(self, split: str) -> str:
        # The files' signatures (path below root, size, mtime) and the transform: no decoding needed. The root
        # itself is left out, so the same folder reached by another path spelling keeps its key.
        subset = self.split_dataset(split)
        files = subset.dataset.files
        return cache_key((self._signatures[str(files[i])] for i in subset.indices), self._transform_settings())

    def _transform_settings(self) -> dict:
        return {"image_size": self.image_size, "nc": self.nc, "center_crop": self.center_crop}

    def decoded_images(self, files: list[Path]) -> np.ndarray:
        """All of `files` decoded as FolderImages serves them, (N, nc, S, S) uint8, from the disk cache or built now."""
        if self._cache_file is None:
            key = cache_key((self._signatures[str(f)] for f in files), self._transform_settings())
            name = f"{self.root.resolve().name or 'root'}-{self.image_size}px-{self.nc}ch-{key}.npy"
            self._cache_file = self.cache_dir / name
        if not self._cache_file.is_file():
            # Every file has a row: one that fails now cannot be left out, so it stops the run, named.
            dataset = FolderImages(files, self.image_size, self.nc, self.center_crop, on_bad_image="error")
            self.preprocess_seconds = materialize(dataset, self._cache_file, self.preprocess_workers)
        else:
            log.info(f"using the decoded images in {self._cache_file}")
        return np.load(self._cache_file, mmap_mode="r")

    def _find_files(self) -> list[Path]:
        if self._files is None:
            files = self._search()
            self._signatures = file_signatures(files, self.root.resolve())
            self._files = self._drop_unreadable(files)
        return self._files

    def _drop_unreadable(self, files: list[Path]) -> list[Path]:
        bad = unreadable_images(self._signatures, self.root.resolve(), self.cache_dir)
        if not bad:
            return files
        if self.on_bad_image == "error":
            path, reason = next(iter(bad.items()))
            raise DataError(
                f"{path}: cannot be read as an image ({reason}); fix or delete it, or set data.on_bad_image=skip "
                f"to leave out such files ({len(bad)} of {len(files)} under {self.root})."
            )
        shown = ", ".join(f"{Path(p).name} ({r[:80]})" for p, r in list(bad.items())[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        log.warning(
            f"data.root={str(self.root)!r}: skipped {len(bad)} of {len(files)} images that cannot be read: "
            f"{shown}{more}. Set data.on_bad_image=error to stop instead."
        )
        good = [f for f in files if str(f) not in bad]
        if not good:
            raise DataError(f"data.root={str(self.root)!r}: none of the {len(files)} image files can be read.")
        return good

    def _search(self) -> list[Path]:
        where = self.root.resolve()
        hint = " " + self.missing_hint.format(root=self.root) if self.missing_hint else ""
        if not where.is_dir():
            what = "is a file, not a folder" if where.exists() else "does not exist"
            raise DataError(f"data.root={str(self.root)!r}: {where} {what}.{hint}")
        files = find_images(where)
        if not files:
            exts = ", ".join(IMAGE_EXTENSIONS)
            raise DataError(f"data.root={str(self.root)!r}: no images ({exts}) anywhere under {where}.{hint}")
        return files
