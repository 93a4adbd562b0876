"""The folder data set on generated files: layouts, formats, modes, crops and the missing-data errors."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from dcgan_lit.data.folder import FolderDataModule, FolderImages, find_images
from dcgan_lit.errors import DataError


def write(path: Path, img: Image.Image, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    root = tmp_path / "my images"  # a space in the path, on purpose
    write(root / "a.jpg", noise(50, 40))
    write(root / "nested" / "deeper" / "b.PNG", noise(40, 60, seed=1))
    write(root / "nested" / "c.png", noise(64, 64, "RGBA", seed=2))
    write(root / "d.png", noise(30, 30, "L", seed=3))
    write(root / "e.png", noise(48, 48, "P", seed=4))
    write(root / "f.jpeg", noise(48, 48, "CMYK", seed=5))
    write(root / "g.bmp", noise(33, 35, seed=6))
    write(root / "h.webp", noise(70, 20, seed=7))
    write(root / "i.tif", noise(20, 70, seed=8))
    write(root / "j16.png", Image.fromarray(np.full((16, 16), 65535, np.uint16)))  # 16-bit grayscale, all white
    (root / "notes.txt").write_text("not an image")
    (root / "nested" / "labels.csv").write_text("a,1\n")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_finds_images_recursively_and_ignores_other_files(mixed_folder: Path) -> None:
    names = sorted(p.name for p in find_images(mixed_folder))
    assert names == ["a.jpg", "b.PNG", "c.png", "d.png", "e.png", "f.jpeg", "g.bmp", "h.webp", "i.tif", "j16.png"]


@pytest.mark.parametrize("nc", [1, 3])
def test_every_mode_loads_as_rgb_or_gray(mixed_folder: Path, nc: int) -> None:
    ds = FolderImages(find_images(mixed_folder), image_size=32, nc=nc)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (nc, 32, 32) and x.dtype == torch.uint8, ds.files[i]
    j16 = ds[[p.name for p in ds.files].index("j16.png")]
    assert j16.min() == 255  # 16-bit white stays white instead of being clipped or wrapped


def test_transparency_is_composited_over_black(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (8, 8), (255, 255, 255, 0))  # white, fully transparent
    x = FolderImages([write(tmp_path / "t.png", clear)], image_size=8, nc=3)[0]
    assert x.max() == 0


def test_resize_and_center_crop_keep_the_middle(tmp_path: Path) -> None:
    img = Image.new("RGB", (300, 200), (255, 0, 0))
    img.paste((0, 0, 255), (40, 0, 260, 200))  # blue middle (a bit wider than square), red sides
    x = FolderImages([write(tmp_path / "w.png", img)], image_size=16, nc=3)[0]
    assert x.shape == (3, 16, 16)
    assert (x[2] >= 250).all() and (x[0] <= 5).all()  # only the blue middle survives the crop
    # The CelebA-style option crops a square first: with center_crop=100 only the centre survives too.
    img.paste((0, 255, 0), (130, 80, 170, 120))
    y = FolderImages([write(tmp_path / "w2.png", img)], image_size=16, nc=3, center_crop=40)[0]
    assert (y[1] >= 250).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    x = FolderImages([write(tmp_path / "phone.jpg", img, exif=exif, quality=95)], image_size=16, nc=3)[0]
    assert (x[0, :6] > 200).all() and (x[2, -6:] > 200).all()  # displayed: red on top, blue below


def make_celeba(root: Path, n: int = 12) -> None:
    for i in range(1, n + 1):
        write(root / "img_align_celeba" / f"{i:06d}.jpg", noise(178, 218, seed=i), quality=90)


def test_celeba_layout_through_the_real_config(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    make_celeba(tmp_path / "data" / "celeba")  # paths.data_dir is tmp_path/data in tiny_cfg
    cfg = tiny_cfg("data=celeba", "data.image_size=64", "data.batch_size=4", "data.num_workers=0")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    assert len(dm.data_train) + len(dm.data_val) == 12 and len(dm.data_val) == 1
    assert dm.data_train[0].shape == (3, 64, 64)
    dm.center_crop = 178
    dm.data_train = None
    dm.setup("fit")
    assert dm.data_train[0].shape == (3, 64, 64)
    assert next(iter(dm.train_dataloader())).shape == (4, 3, 64, 64)


def test_split_is_reproducible_and_disjoint(mixed_folder: Path) -> None:
    def split() -> tuple[set[Path], set[Path]]:
        dm = FolderDataModule(str(mixed_folder), val_fraction=0.3, split_seed=1, image_size=16, batch_size=2)
        dm.setup("fit")
        files = dm.data_train.dataset.files
        return {files[i] for i in dm.data_train.indices}, {files[i] for i in dm.data_val.indices}

    train, val = split()
    assert len(val) == 3 and len(train) == 7 and not train & val
    assert split() == (train, val)


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    dm = FolderDataModule(str(tmp_path / "nope"), image_size=32, batch_size=2)
    with pytest.raises(DataError, match=r"data.root=.*nope.*does not exist"):
        dm.setup("fit")


def test_empty_root_names_the_path_and_the_extensions(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("hi")
    dm = FolderDataModule(str(tmp_path / "empty"), image_size=32, batch_size=2)
    with pytest.raises(DataError, match=r"no images \(.jpg, .jpeg, .png.*\) anywhere under .*empty"):
        dm.setup("fit")


def test_celeba_missing_says_where_to_get_it(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    dm = instantiate(tiny_cfg("data=celeba").data)
    with pytest.raises(DataError) as err:
        dm.setup("fit")
    msg = str(err.value)
    assert str(tmp_path / "data" / "celeba") in msg
    assert "img_align_celeba.zip" in msg and "mmlab.ie.cuhk.edu.hk" in msg
    assert f"{tmp_path / 'data' / 'celeba'}/img_align_celeba/000001.jpg" in msg


def test_batch_larger_than_the_data_is_refused(mixed_folder: Path) -> None:
    dm = FolderDataModule(str(mixed_folder), image_size=16, batch_size=64)
    with pytest.raises(Exception, match=r"data.batch_size=64 is larger than the 9 training images"):
        dm.setup("fit")


def test_find_images_orders_like_pathlib(tmp_path: Path) -> None:
    """The split depends on the order, so the fast listing must keep pathlib's component-wise order."""
    names = ["a b/x.png", "a/x.png", "a/b/c.jpg", "a-b.jpg", "Z.PNG", "a/b.jpeg", "notes.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    expected = sorted(tmp_path / n for n in names if not n.endswith(".txt"))
    assert find_images(tmp_path) == expected
