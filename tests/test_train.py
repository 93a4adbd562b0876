"""The real train() on a tiny config: files on disk, TensorBoard content, resuming."""

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from dcgan_lit.train import train
from tests.conftest import events
from tests.conftest import load_checkpoint as load

SCALARS = {"train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z1", "train/D_G_z2"}


def test_tiny_run_writes_checkpoint_tensorboard_and_grids(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_cfg("trainer.max_epochs=2", "callbacks.model_checkpoint.every_n_epochs=1"))

    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["epoch_000.ckpt", "epoch_001.ckpt", "last.ckpt"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_000.png", "epoch_001.png", "real.png"]

    acc = events(run)
    assert SCALARS <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/d_loss")] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]  # one point per batch, not per optimizer step
    assert {"samples/fixed_noise", "samples/real"} <= set(acc.Tags()["images"])
    grids = acc.Images("samples/fixed_noise")
    assert len(grids) == 2 and [g.step for g in grids] == [1, 2]  # after epochs 1 and 2
    assert (grids[0].width, grids[0].height) == (8 * 34 + 2, 8 * 34 + 2)  # 8x8 grid of 32 px images, 2 px padding

    ckpt = load(run / "checkpoints" / "last.ckpt")  # plain tensors and numbers only: loads with weights_only
    assert ckpt["global_step"] == 12  # 2 epochs x 3 batches x (D step + G step)
    assert ckpt["hyper_parameters"]["lr_g"] == 2e-4 and ckpt["hyper_parameters"]["nz"] == 16


def test_the_last_epoch_gets_a_grid_off_the_grid_cadence(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """A 3-epoch run drawing every 2 epochs used to end with no grid of its final weights."""
    run = tmp_path / "run"
    train(tiny_cfg("trainer.max_epochs=3", "callbacks.sample_grid.every_n_epochs=2"))
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png", "real.png"]
    assert [g.step for g in events(run).Images("samples/fixed_noise")] == [2, 3]


def test_resume_continues_at_the_saved_step_with_the_same_fixed_noise(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_cfg("trainer.max_epochs=1", output_dir=first))
    saved = load(first / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 6

    # Another seed: a fresh start would draw other weights and other fixed noise.
    train(
        tiny_cfg(
            "trainer.max_epochs=2", "seed=1", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", output_dir=second
        )
    )
    resumed = load(second / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 12 and resumed["epoch"] == 1
    assert torch.equal(resumed["state_dict"]["fixed_noise"], saved["state_dict"]["fixed_noise"])
    # Adam's own step counters carried over: 3 steps before the stop + 3 after.
    assert all(s["step"].item() == 6 for opt in resumed["optimizer_states"] for s in opt["state"].values())
    # The resumed run logs from batch 3 on, where the first run stopped.
    assert [e.step for e in events(second).Scalars("train/g_loss")] == [3, 4, 5]
    assert sorted(p.name for p in (second / "samples").iterdir()) == ["epoch_001.png", "real.png"]


def test_csv_logger(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    train(tiny_cfg("logger=csv", "trainer.max_epochs=1"))
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    steps, epochs = [r for r in rows if r["train/d_loss"]], [r for r in rows if r["train/d_loss_epoch"]]
    assert len(steps) == 3 and SCALARS <= set(rows[0]) and all(float(r["train/d_loss"]) > 0 for r in steps)
    assert len(epochs) == 1  # the epoch means, one row per epoch
    assert (tmp_path / "run" / "samples" / "epoch_000.png").is_file()  # grids do not need TensorBoard


def test_same_seed_same_run(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        train(tiny_cfg("trainer.max_epochs=1", "seed=7", "trainer.deterministic=true", output_dir=out))
    sa, sb = (load(p / "checkpoints" / "last.ckpt")["state_dict"] for p in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_step_metrics_are_written_every_log_every_n_steps_batches(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """The module only calls self.log on batches Lightning writes; TensorBoard must get exactly those."""
    run = tmp_path / "run"
    train(tiny_cfg("trainer.log_every_n_steps=2", "trainer.max_epochs=2"))
    acc = events(run)
    for tag in SCALARS:
        assert [e.step for e in acc.Scalars(tag)] == [1, 3, 5], tag


def test_callback_metrics_hold_the_last_batch_even_between_log_steps(tiny_cfg: Callable[..., DictConfig]) -> None:
    metrics = train(tiny_cfg("trainer.log_every_n_steps=50"))
    assert SCALARS <= set(metrics)  # what a sweep's optimized_metric or a monitor would read


def test_max_steps_counts_batches_not_lightnings_optimizer_steps(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="dcgan_lit.train"):
        train(tiny_cfg("trainer.max_steps=4", "trainer.max_epochs=100", "trainer.limit_train_batches=3"))
    assert "trainer.max_steps=4 batches: Lightning counts 8 optimizer steps (2 per batch)" in caplog.text
    ckpt = load(run / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 8  # 4 batches x (D step + G step)
    assert [e.step for e in events(run).Scalars("train/g_loss")] == [0, 1, 2, 3]  # 4 G updates


def test_run_artifacts_are_written_and_logged(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_cfg("trainer.max_epochs=3"))
    art = run / "artifacts"
    assert sorted(p.name for p in art.iterdir()) == ["losses.png", "progress.gif", "real_vs_fake.png", "scores.png"]
    assert Image.open(art / "progress.gif").n_frames == 3  # one fixed-noise grid per epoch
    real, last = Image.open(run / "samples" / "real.png"), Image.open(run / "samples" / "epoch_002.png")
    # The real grid gathers images over batches (3 of 16 here) up to 64: 8 per row, 32 px + 2 px padding.
    assert real.size == (8 * 34 + 2, 6 * 34 + 2) and last.size == (8 * 34 + 2, 8 * 34 + 2)
    band = int(1.5 * max(12, real.width // 16))  # the caption band above the pair
    captioned = (real.width + last.width + 16, band + max(real.height, last.height))
    assert Image.open(art / "real_vs_fake.png").size == captioned
    assert "samples/real_vs_fake" in events(run).Tags()["images"]  # the two plots are Custom Scalars charts there
    history = load(run / "checkpoints" / "last.ckpt")["callbacks"]["RunArtifacts"]["stat_history"]
    assert history.shape == (9, 6) and history[:, 0].tolist() == list(range(9))  # every batch logged, in order


def test_a_resumed_runs_progress_gif_covers_the_whole_run(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """It used to hold only the epochs after the resume, while losses.png kept the whole history."""
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_cfg("trainer.max_epochs=2", output_dir=first))
    train(tiny_cfg("trainer.max_epochs=4", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", output_dir=second))
    gif = Image.open(second / "artifacts" / "progress.gif")
    assert gif.n_frames == 4  # epochs 1 and 2 from the first run's folder, 3 and 4 from this one's
    frames = []
    for i in range(4):
        gif.seek(i)
        frames.append(gif.convert("RGB").copy())
    grids = [first / "samples" / "epoch_000.png", first / "samples" / "epoch_001.png"]
    grids += [second / "samples" / "epoch_002.png", second / "samples" / "epoch_003.png"]
    for frame, grid in zip(frames, grids, strict=True):  # GIF frames are palette-quantized: compare loosely
        diff = torch.tensor(np.asarray(frame), dtype=torch.int16) - torch.tensor(
            np.asarray(Image.open(grid).convert("RGB")), dtype=torch.int16
        )
        assert diff.abs().float().mean() < 4, grid
    history = load(second / "checkpoints" / "last.ckpt")["callbacks"]["RunArtifacts"]["stat_history"]
    assert history[:, 0].tolist() == list(range(12))  # losses.png: every batch of both runs


def test_a_resumed_runs_gif_leaves_out_grids_that_are_gone_with_a_warning(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    train(tiny_cfg("trainer.max_epochs=2", output_dir=first))
    (first / "samples" / "epoch_000.png").unlink()
    with caplog.at_level(logging.WARNING):
        train(tiny_cfg("trainer.max_epochs=3", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", output_dir=second))
    assert Image.open(second / "artifacts" / "progress.gif").n_frames == 2
    assert any("1 grids of the run this one resumed are gone" in r.getMessage() for r in caplog.records)


def test_the_last_epoch_writes_last_ckpt_whatever_its_cadence(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """callbacks.last_checkpoint.every_n_epochs=5 over 2 epochs: the run still ends with its final weights saved."""
    from tests.conftest import load_checkpoint

    train(tiny_cfg("callbacks.last_checkpoint.every_n_epochs=5", "trainer.max_epochs=2"))
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 1
