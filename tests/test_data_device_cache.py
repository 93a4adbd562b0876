"""The device-resident data path (data.gpu_cache) on the CPU: same batches, same run, disk cache keys, fallback."""

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from dcgan_lit.data.device_cache import IndexDataset, is_index_batch
from dcgan_lit.data.folder import FolderDataModule
from dcgan_lit.train import train
from tests.conftest import events
from tests.conftest import load_checkpoint as load


def scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """The run's training scalars, less wall-clock throughput, which no two runs share."""
    acc = events(run)
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
        if tag.startswith("train/") and tag != "train/images_per_sec"
    }


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """40 small photos of assorted sizes and modes, as a user's folder would hold."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
        img.save(root / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


def test_index_dataset_fetches_whole_batches() -> None:
    batch = IndexDataset(10).__getitems__([3, 1, 4])
    assert batch.dtype == torch.long and batch.tolist() == [3, 1, 4] and is_index_batch(batch)
    assert not is_index_batch(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_cached_path_trains_exactly_like_the_streaming_path(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Same seed, same batches, same flips: weights, checkpoints and TensorBoard scalars are identical."""
    runs = {}
    for cached in ("true", "false"):
        out = tmp_path / f"cached_{cached}"
        train(tiny_cfg(f"data.gpu_cache={cached}", "seed=3", output_dir=out))
        runs[cached] = out
    a, b = (load(runs[c] / "checkpoints" / "last.ckpt") for c in ("true", "false"))
    assert a["global_step"] == b["global_step"] == 12
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert sorted(p.name for p in (runs["true"] / "checkpoints").iterdir()) == sorted(
        p.name for p in (runs["false"] / "checkpoints").iterdir()
    )
    assert scalars(runs["true"]) == scalars(runs["false"])
    summary = json.loads((runs["true"] / "throughput.json").read_text())
    assert summary["device_cache"] is True and summary["batches"] == 6 and summary["images"] == 6 * 16
    assert json.loads((runs["false"] / "throughput.json").read_text())["device_cache"] is False


def test_cached_path_resumes_like_an_uninterrupted_run(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_cfg("data.gpu_cache=true", "trainer.max_epochs=1", output_dir=first))
    ckpt = first / "checkpoints" / "last.ckpt"
    train(tiny_cfg("data.gpu_cache=true", "trainer.max_epochs=2", f"ckpt_path={ckpt}", output_dir=second))
    resumed = load(second / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 12 and resumed["epoch"] == 1
    steps = [step for step, _ in scalars(second)["train/d_loss"]]
    assert steps == [3, 4, 5]  # the resumed run carries on from batch 3


def test_folder_cache_matches_streaming_and_is_keyed_by_files_and_transform(photo_folder: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"

    def module(**kw: object) -> FolderDataModule:
        args = {"image_size": 16, "nc": 3, "batch_size": 4, "gpu_cache": True, "preprocess_workers": 0} | kw
        return FolderDataModule(root=str(photo_folder), cache_dir=str(cache_dir), val_fraction=0.1, **args)

    dm = module()
    dm.prepare_data()
    dm.setup("fit")
    assert dm.device_images is not None and dm.device_images.shape == (36, 3, 16, 16)
    streamed = torch.stack([dm.data_train[i] for i in range(len(dm.data_train))])
    assert torch.equal(dm.device_images, streamed)  # pixel for pixel what the streaming path serves
    (first_file,) = cache_dir.glob("*.npy")
    assert first_file.suffix == ".npy" and "16px-3ch" in first_file.name

    # Same files and transform: the cache file is reused, not rebuilt.
    mtime = first_file.stat().st_mtime_ns
    again = module()
    again.prepare_data()
    again.setup("fit")
    assert list(cache_dir.glob("*.npy")) == [first_file] and first_file.stat().st_mtime_ns == mtime
    assert again.preprocess_seconds == 0.0

    # Another transform (image_size) or a changed file gives a new cache file.
    bigger = module(image_size=32)
    bigger.prepare_data()
    assert len(list(cache_dir.glob("*.npy"))) == 2
    victim = photo_folder / "img_000.jpg"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(victim)
    os.utime(victim, ns=(mtime + 10**9, mtime + 10**9))
    changed = module()
    changed.prepare_data()
    changed.setup("fit")
    assert len(list(cache_dir.glob("*.npy"))) == 3
    assert changed.preprocess_seconds > 0
    assert not list(cache_dir.glob("*.tmp.npy"))  # no temporary left behind


def test_start_up_stats_each_file_once_for_both_cache_keys(
    photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dcgan_lit.data.preprocess as preprocess

    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(os.path.join(str(photo_folder), "")):
            stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(preprocess.os, "stat", counting_stat)
    dm = FolderDataModule(root=str(photo_folder), cache_dir=str(tmp_path / "cache"), image_size=16, nc=3,
                          batch_size=4, gpu_cache=True, preprocess_workers=0)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    # Slow on network disks: the bad-file check and the decode cache share one stat per file.
    assert dm.device_images is not None and sorted(stats) == sorted(str(p) for p in photo_folder.iterdir())


def test_the_training_splits_features_read_the_cache_without_workers(photo_folder: Path, tmp_path: Path) -> None:
    def module(gpu_cache: bool) -> FolderDataModule:
        dm = FolderDataModule(root=str(photo_folder), cache_dir=str(tmp_path / "cache"), image_size=16, nc=3,
                              batch_size=4, num_workers=2, gpu_cache=gpu_cache, preprocess_workers=0)  # fmt: skip
        dm.prepare_data()
        dm.setup("fit")
        return dm

    cached = module(gpu_cache=True).split_dataloader("train")
    streamed = module(gpu_cache=False).split_dataloader("train")
    assert cached.num_workers == 0 and streamed.num_workers == 2  # the files are decoded only where not cached
    assert torch.equal(torch.cat(list(cached)), torch.cat(list(streamed)))  # the same images in the same order


def test_over_budget_falls_back_to_streaming_with_one_log_line(
    tiny_cfg: Callable[..., DictConfig], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tiny_cfg("data.gpu_cache=true", "data.gpu_cache_budget_gb=0.0001")
    dm = instantiate(cfg.data)
    with caplog.at_level(logging.INFO):
        dm.setup("fit")
        dm.setup("fit")
    assert dm.device_images is None
    assert not is_index_batch(next(iter(dm.train_dataloader())))
    lines = [r.getMessage() for r in caplog.records if "gpu_cache" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "data.gpu_cache_budget_gb=0.0001" in lines[0] and "streaming" in lines[0]


def test_cache_is_off_by_default_on_the_cpu(tiny_cfg: Callable[..., DictConfig]) -> None:
    dm = instantiate(tiny_cfg().data)
    dm.setup("fit")
    assert dm.gpu_cache is None and dm.device_images is None


def test_index_batches_gather_normalize_and_flip_on_the_device(tiny_cfg: Callable[..., DictConfig]) -> None:
    dm = instantiate(tiny_cfg("data.gpu_cache=true", "data.hflip=false").data)
    dm.setup("fit")
    idx = next(iter(dm.train_dataloader()))
    assert is_index_batch(idx) and idx.shape == (16,)
    images = dm.on_after_batch_transfer(idx, 0)
    expected = dm.data_train.images[idx].float() / 127.5 - 1
    assert images.shape == (16, 3, 32, 32) and torch.allclose(images, expected)
