"""The folder data set on generated files: layouts, formats, modes, crops and the missing-data errors."""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from dcgan_lit.data.folder import FolderDataModule, FolderImages, find_images
from dcgan_lit.errors import ConfigError, DataError


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
        dm = FolderDataModule(
            str(mixed_folder),
            val_fraction=0.3,
            split_seed=1,
            image_size=16,
            batch_size=2,
            cache_dir=str(mixed_folder.parent / "cache"),
        )
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
    dm = FolderDataModule(str(mixed_folder), image_size=16, batch_size=64, cache_dir=str(mixed_folder.parent / "c"))
    with pytest.raises(ConfigError, match=r"data.batch_size=64 is larger than the 9 training images"):
        dm.setup("fit")


def test_find_images_orders_like_pathlib(tmp_path: Path) -> None:
    """The split depends on the order, so the fast listing must keep pathlib's component-wise order."""
    names = ["a b/x.png", "a/x.png", "a/b/c.jpg", "a-b.jpg", "Z.PNG", "a/b.jpeg", "notes.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    expected = sorted(tmp_path / n for n in names if not n.endswith(".txt"))
    assert find_images(tmp_path) == expected


@pytest.fixture
def folder_with_broken_files(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(20):
        write(root / f"good_{i:02d}.{'jpg' if i % 2 else 'png'}", noise(40, 30, seed=i))
    whole = write(root / "truncated.jpg", noise(200, 150, seed=99), quality=95).read_bytes()
    (root / "truncated.jpg").write_bytes(whole[: len(whole) // 2])  # a download cut off half way
    (root / "not_an_image.png").write_bytes(b"\x89PNG but then garbage" * 10)
    (root / "empty.jpg").write_bytes(b"")
    return root


def test_broken_files_are_skipped_with_one_summary_warning(
    folder_with_broken_files: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dm = FolderDataModule(root=str(folder_with_broken_files), cache_dir=str(tmp_path / "cache"), image_size=16,
                          batch_size=4, num_workers=2)  # fmt: skip
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert len(dm.data_train) + len(dm.data_val) == 20
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert "skipped 3 of 23 images that cannot be read" in warnings[0]
    assert all(name in warnings[0] for name in ("truncated.jpg", "not_an_image.png", "empty.jpg"))
    assert "data.on_bad_image=error" in warnings[0]
    batches = list(dm.train_dataloader())  # two worker processes, a whole epoch: nothing crashes
    assert sum(len(b) for b in batches) == len(dm.data_train) // 4 * 4

    again = FolderDataModule(
        root=str(folder_with_broken_files), cache_dir=str(tmp_path / "cache"), image_size=16, batch_size=4
    )
    again.setup("fit")  # the check's result is cached per file list: the second run does not decode anything
    assert len(list((tmp_path / "cache").glob("*-check-*.json"))) == 1


def test_on_bad_image_error_stops_naming_the_file(folder_with_broken_files: Path, tmp_path: Path) -> None:
    dm = FolderDataModule(
        root=str(folder_with_broken_files), cache_dir=str(tmp_path / "c"), on_bad_image="error", batch_size=4
    )
    with pytest.raises(DataError, match=r"(empty|not_an_image|truncated)\.(jpg|png): cannot be read as an image .* "
                       r"set data.on_bad_image=skip"):  # fmt: skip
        dm.setup("fit")


def test_odd_but_valid_images_all_load(tmp_path: Path) -> None:
    """Smaller than the crop, extreme aspect ratios, 16-bit PNG, spaces and non-ASCII names."""
    root = tmp_path / "odd ones"
    write(root / "tiny 8x8.png", noise(8, 8))
    write(root / "panorama.jpg", noise(1000, 10))
    write(root / "tower.png", noise(10, 1000))
    sixteen = np.random.default_rng(0).integers(0, 65535, (40, 50), dtype=np.uint16)
    write(root / "sixteen_bit.png", Image.fromarray(sixteen))
    write(root / "étoile 星.jpg", noise(60, 40))
    dm = FolderDataModule(root=str(root), cache_dir=str(tmp_path / "c"), image_size=32, center_crop=178,
                          val_fraction=0.0, batch_size=1)  # fmt: skip
    dm.setup("fit")
    images = [dm.data_train[i] for i in range(len(dm.data_train))]
    assert len(images) == 5 and all(img.shape == (3, 32, 32) and img.dtype == torch.uint8 for img in images)


def test_symlink_loops_neither_crash_nor_repeat_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "sky"
    for i in range(6):
        write(root / ("sub" if i % 2 else "") / f"{i}.png", noise(20, 20, seed=i))
    (root / "up").symlink_to(".")  # a link back to the folder itself
    (root / "me").symlink_to("me")  # a link to itself: ELOOP on every stat
    (root / "sub" / "parent").symlink_to("..")
    (root / "gone.png").symlink_to(tmp_path / "deleted.png")
    with caplog.at_level("WARNING"):
        found = find_images(root)
    assert sorted(p.relative_to(root).as_posix() for p in found) == ["0.png", "2.png", "4.png", "sub/1.png",
                                                                     "sub/3.png", "sub/5.png"]  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [f"2 links under {root} lead nowhere or loop, and were "
                                                        f"skipped, e.g. {root / 'gone.png'}"]  # fmt: skip
    dm = FolderDataModule(root=str(root), cache_dir=str(tmp_path / "c"), image_size=16, val_fraction=0.0, batch_size=2)
    dm.setup("fit")
    assert len(dm.data_train) == 6


def test_a_skipped_file_is_used_again_once_it_reads(tmp_path: Path) -> None:
    """A fix that changes neither size nor mtime (a chmod, say) must not keep the file out for good."""
    root = tmp_path / "photos"
    for i in range(8):
        write(root / f"{i}.png", noise(20, 20, seed=i))
    fixed = root / "3.png"
    good, stat = fixed.read_bytes(), fixed.stat()
    fixed.write_bytes(b"\0" * len(good))  # unreadable now, same size
    os.utime(fixed, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def num_images() -> int:
        dm = FolderDataModule(root=str(root), cache_dir=str(tmp_path / "c"), image_size=16, val_fraction=0.0,
                              batch_size=2)  # fmt: skip
        dm.setup("fit")
        return len(dm.data_train)

    assert num_images() == 7
    fixed.write_bytes(good)  # the same size and mtime as the broken file: the file list's key is unchanged
    os.utime(fixed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert num_images() == 8


def break_after_setup(root: Path, tmp_path: Path, on_bad_image: str, num_workers: int = 0) -> FolderDataModule:
    """40 good images, set up and checked; then the first 12 of them are deleted, as a disk that went away would."""
    for i in range(40):
        write(root / f"{i:02d}.png", noise(20, 20, seed=i))
    dm = FolderDataModule(root=str(root), cache_dir=str(tmp_path / "cache"), image_size=16, batch_size=8,
                          val_fraction=0.0, on_bad_image=on_bad_image, num_workers=num_workers)  # fmt: skip
    dm.setup("fit")
    for path in sorted(root.glob("*.png"))[:12]:
        path.unlink()
    return dm


def test_a_file_that_fails_mid_run_is_left_out_with_one_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to be replaced, without a word, by the next image, and a run of such files recursed."""
    dm = break_after_setup(tmp_path / "photos", tmp_path, "skip")
    with caplog.at_level("WARNING"):
        epochs = [list(dm.train_dataloader()) for _ in range(2)]
    for batches in epochs:
        assert sum(len(b) for b in batches) == 40 - 12  # the 12 are left out, nothing stands in for them
    warned = [r.getMessage() for r in caplog.records if "cannot be read any more" in r.getMessage()]
    assert len(warned) == 12 and len({w.split(":")[0] for w in warned}) == 12  # once each, over both epochs
    assert all("left out of its batches" in w for w in warned)


def test_a_batch_whose_files_are_all_gone_is_an_error_not_an_empty_batch(tmp_path: Path) -> None:
    dm = break_after_setup(tmp_path / "photos", tmp_path, "skip")
    for path in (tmp_path / "photos").glob("*.png"):
        path.unlink()
    with pytest.raises(DataError, match=r"^none of the 8 images of a batch could be read .*has the data folder gone"):
        next(iter(dm.train_dataloader()))


def test_with_on_bad_image_error_a_file_that_fails_mid_run_stops_the_run_in_one_line(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """In a DataLoader worker: the worker's traceback, which torch folds into the message, is left out."""
    from dcgan_lit.train import run
    from tests.conftest import exits

    root = tmp_path / "photos"
    for i in range(40):
        write(root / f"{i:02d}.png", noise(20, 20, seed=i))
    cfg = tiny_cfg(
        "data=folder", f"data.root={root}", "data.num_workers=2", "data.batch_size=8", "data.on_bad_image=error",
        "+callbacks.delete._target_=tests.helpers.DeleteImages", f"+callbacks.delete.root={root}",
        "+callbacks.delete.batch=1",
    )  # fmt: skip
    code, stderr = exits(run, cfg, capsys)
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"error: {root}/") and "cannot be read as an image any more" in stderr
    assert "Traceback" not in stderr and "worker process" not in stderr
