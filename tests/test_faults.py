"""Runs that are interrupted, killed, or cannot write: nothing saved is lost, and resuming continues exactly."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from dcgan_lit.callbacks import sample_quality
from dcgan_lit.checkpoint_io import AtomicCheckpointIO
from dcgan_lit.errors import CheckpointError, ConfigError
from dcgan_lit.metrics.features import FIDFeatures
from dcgan_lit.train import run, train
from tests.conftest import DDP_ON_TWO_CPUS, REPO, TINY, exits
from tests.conftest import load_checkpoint as load

# 108 training images in batches of 16: 6 batches an epoch, 2 epochs.
RUN = ["data.num_images=120", "trainer.limit_train_batches=6", "trainer.max_epochs=2", "seed=7"]
FOLDER_RUN = RUN[1:]  # the folder's own images instead of 120 synthetic ones


def start_cli(out: Path, *overrides: str, env: dict[str, str] | None = None, run: list[str] = RUN) -> subprocess.Popen:
    """The training command in a process group of its own, as a scheduler starts a job, so `os.killpg` can signal
    it with its DataLoader workers and leave pytest alone."""
    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    args = [*tiny, *run, f"hydra.run.dir={out}", f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}"]
    cmd = [sys.executable, "-m", "dcgan_lit.train", *args, *overrides]
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def progress(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"epoch": -1, "batches": 0}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The last checkpoint of the RUN config trained without interruption, to compare resumed runs with."""
    from tests.conftest import compose_train

    out = tmp_path_factory.mktemp("whole")
    train(compose_train([*TINY, *RUN, f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}"]))
    return load(out / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_mid_epoch_saves_a_checkpoint_and_resuming_matches_an_uninterrupted_run(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, uninterrupted: dict, signum: signal.Signals
) -> None:
    """SIGTERM and Ctrl-C alike: the batch finishes, then a checkpoint; resumed, the run ends torch.equal."""
    cut = tmp_path / "cut"
    pace = tmp_path / "progress.json"
    proc = start_cli(cut, "+callbacks.pace._target_=tests.helpers.Pace", f"+callbacks.pace.path={pace}")
    wait_for(lambda: progress(pace)["batches"] >= 8, proc)  # epoch 1, batch 2 of 6
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr[-3000:]  # 143 for SIGTERM, 130 for Ctrl-C
    ckpt = cut / "checkpoints" / "last.ckpt"
    assert f"interrupted by {signum.name} at epoch 1, batch " in stderr and f"ckpt_path={ckpt}" in stderr
    saved = load(ckpt)
    done_in_epoch = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    assert saved["epoch"] == 1 and 1 <= done_in_epoch < 6, "the checkpoint must be mid-epoch"
    # A whole number of batches: D and G both updated as often (Ctrl-C used to land between them).
    assert saved["global_step"] == 2 * (6 + done_in_epoch)

    resumed = tmp_path / "resumed"
    train(tiny_cfg(*RUN, f"ckpt_path={ckpt}", "callbacks.throughput.warmup_batches=1", output_dir=resumed))
    assert uninterrupted["global_step"] == 24  # 12 batches x (D step + G step)
    same_training_state(uninterrupted, load(resumed / "checkpoints" / "last.ckpt"))
    # Its speed is that of the batches it trained itself, not of the whole run's count (then img/s was null).
    summary = json.loads((resumed / "throughput.json").read_text())
    left = 12 - (6 + done_in_epoch)
    assert (summary["batches"], summary["images"]) == (left, left * 16)
    assert summary["steady_images_per_sec"] > 0 and len(summary["epoch_seconds"]) == 1
    # The resumed epoch's time is what it trained here, not seconds since the host booted (its clock was never set).
    assert 0 < summary["epoch_seconds"][0] <= summary["train_seconds"]


def test_sigkill_during_saves_never_leaves_a_truncated_checkpoint(tmp_path: Path) -> None:
    """Kill -9 a run that saves last.ckpt every batch, at random moments, 4 times; resume from it each time."""
    rng = random.Random(0)
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.ckpt"
    big = ["model.generator.ngf=48", "model.discriminator.ndf=48", "trainer.max_epochs=1000"]  # a 12 MB checkpoint
    frequent = ["callbacks.last_checkpoint.every_n_epochs=null", "+callbacks.last_checkpoint.every_n_train_steps=2"]
    steps = []
    for _ in range(4):
        resume = [f"ckpt_path={ckpt}"] if ckpt.exists() else []
        proc = start_cli(out, *big, *frequent, *resume)
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        wait_for(lambda before=before: ckpt.exists() and ckpt.stat().st_mtime_ns != before, proc)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        state = load(ckpt)  # must always load: complete, never truncated
        assert {"state_dict", "optimizer_states", "loops"} <= set(state)
        steps.append(state["global_step"])
    assert steps == sorted(steps) and steps[-1] > steps[0], steps  # each restart continued from the last save
    print(f"\nglobal_step after each of 4 SIGKILLs: {steps}")


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def no_space(obj: object, f: object) -> None:
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match=r"cannot write the checkpoint .*last.ckpt: No space left on device\. "
                       r"Nothing already saved was changed"):  # fmt: skip
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left behind


def test_an_output_folder_that_cannot_be_created_is_one_line_at_start(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, stderr = exits(run, tiny_cfg(output_dir=blocker / "run"), capsys)
    assert code == 2 and stderr.startswith(f"error: paths.output_dir={str(blocker / 'run')!r}: cannot write there")


@pytest.mark.parametrize("log_every", [1, 50])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture, log_every: int
) -> None:
    """NaN at batch 4 (epoch 1): found at that batch's log step, or at the latest before the next save."""
    out = tmp_path / "run"
    poison = ["+callbacks.poison._target_=tests.helpers.Poison", "+callbacks.poison.batch=4"]
    code, stderr = exits(
        run, tiny_cfg(*poison, "trainer.max_epochs=2", f"trainer.log_every_n_steps={log_every}"), capsys
    )
    assert code == 3, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: train/d_loss=nan") and "at batch 4: training stopped" in last, last
    assert f"The last good checkpoint: {out / 'checkpoints' / 'last.ckpt'}" in last
    kept = load(out / "checkpoints" / "last.ckpt")
    assert kept["epoch"] == 0 and kept["global_step"] == 6  # epoch 0's 3 batches, untouched by the NaN state
    assert all(torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point())


def test_ckpt_path_that_is_not_a_checkpoint_or_from_another_model_is_refused(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.ckpt"
    notes.write_text("these are my notes, not a checkpoint")
    with pytest.raises(CheckpointError, match=r"ckpt_path=.*notes.ckpt' cannot be read as a checkpoint: it is a "
                       r"text file \(36 bytes, starting 'these are my notes, not a checkpoint'\)"):  # fmt: skip
        train(tiny_cfg(f"ckpt_path={notes}"))

    first = tmp_path / "first"
    train(tiny_cfg("trainer.max_epochs=1", output_dir=first))
    ckpt = first / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError) as info:
        train(tiny_cfg(f"ckpt_path={ckpt}", "model.nz=32", "data.image_size=16", output_dir=tmp_path / "second"))
    message = str(info.value)
    assert "was trained with another model" in message
    assert "image_size=32 in the checkpoint but 16 here (set data.image_size)" in message
    assert "nz=16 in the checkpoint but 32 here (set model.nz)" in message
    assert "generator.main.0.weight: (16, 32, 4, 4) in the checkpoint, (32, 16, 4, 4) here" in message
    assert not (tmp_path / "second" / "checkpoints").exists()  # refused before anything was written


def test_resuming_a_finished_run_says_there_is_nothing_to_train(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    first = tmp_path / "first"
    train(tiny_cfg("trainer.max_epochs=1", output_dir=first))
    with pytest.raises(ConfigError, match=r"ckpt_path='.*last.ckpt' has already trained 1 epochs, so "
                       r"trainer.max_epochs=1 left nothing to train\. Raise the limit to continue, e.g. "
                       r"trainer.max_epochs=6"):  # fmt: skip
        train(tiny_cfg("trainer.max_epochs=1", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}"))


def test_a_full_disk_while_writing_samples_and_figures_costs_neither_the_run_nor_its_checkpoints(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import matplotlib.figure
    from PIL import Image

    import dcgan_lit.callbacks.sample_grid as sample_grid

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    pil_save = Image.Image.save

    def no_space_on_disk(image: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if isinstance(fp, (str, Path)):  # files fail; TensorBoard's in-memory PNGs still encode
            no_space()
        pil_save(image, fp, *args, **kwargs)

    monkeypatch.setattr(sample_grid, "save_image", no_space)  # the grids
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", no_space)  # losses.png, scores.png
    monkeypatch.setattr(Image.Image, "save", no_space_on_disk)  # progress.gif, real_vs_fake.png
    train(tiny_cfg("trainer.max_epochs=2"))
    assert load(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 1  # both epochs trained and saved
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "cannot write" in r.getMessage()]
    assert (
        f"cannot write {tmp_path / 'run' / 'samples' / 'real.png'} (No space left on device); skipped it, "
        "training and checkpoints go on" in warnings
    )
    assert any("epoch_001.png" in w for w in warnings) and any("losses.png" in w for w in warnings)


def same_training_state(a: dict, b: dict) -> None:
    """Weights, BatchNorm buffers and Adam states torch.equal, at the same global step."""
    assert a["global_step"] == b["global_step"]
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for i, state in opt_a["state"].items():
            for name, value in state.items():
                assert torch.equal(value, opt_b["state"][i][name]), (i, name)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """120 generated 40x40 photos in a folder, read by 2 DataLoader workers as every folder run reads them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(120):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    # 114 for training in batches of 16: 7 a epoch, of which RUN trains 6.
    return ["data=folder", f"data.root={root}", "data.num_workers=2"]


@pytest.fixture(scope="module")
def uninterrupted_folder_run(tmp_path_factory: pytest.TempPathFactory, photo_folder: list[str]) -> dict:
    from tests.conftest import compose_train

    out = tmp_path_factory.mktemp("whole_folder")
    train(
        compose_train([*photo_folder, *TINY, *FOLDER_RUN, f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}"])
    )
    return load(out / "checkpoints" / "last.ckpt")


def loader_workers(proc: subprocess.Popen) -> list[int]:
    """The DataLoader worker processes of a training process (its children)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_whole_process_group_with_loader_workers_saves_and_resumes_exactly(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, photo_folder: list[str], uninterrupted_folder_run: dict,
    signum: signal.Signals,
) -> None:  # fmt: skip
    """What SLURM's scancel, `timeout` and systemd send (SIGTERM) and a terminal's Ctrl-C (SIGINT): every process
    of the job gets it. SIGTERM used to kill the workers, and the run ended in a traceback with no checkpoint."""
    cut, pace = tmp_path / "cut", tmp_path / "progress.json"
    pacing = ["+callbacks.pace._target_=tests.helpers.Pace", f"+callbacks.pace.path={pace}"]
    proc = start_cli(cut, *photo_folder, *pacing, run=FOLDER_RUN)
    wait_for(lambda: progress(pace)["batches"] >= 8, proc)  # epoch 1, batch 2 of 6
    assert len(loader_workers(proc)) == 2  # the group holds the workers too
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    ckpt = cut / "checkpoints" / "last.ckpt"
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted by {signum.name} at epoch 1, batch ")
    assert f"ckpt_path={ckpt}" in stderr and "Traceback" not in stderr and "killed by signal" not in stderr
    saved = load(ckpt)
    done_in_epoch = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    assert saved["epoch"] == 1 and 1 <= done_in_epoch < 6 and saved["global_step"] == 2 * (6 + done_in_epoch)

    resumed = tmp_path / "resumed"
    train(tiny_cfg(*photo_folder, *FOLDER_RUN, f"ckpt_path={ckpt}", output_dir=resumed))
    same_training_state(uninterrupted_folder_run, load(resumed / "checkpoints" / "last.ckpt"))


ONE_CPU_SLURM_TASK = ["trainer=slurm", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto",
                      "trainer.benchmark=null"]  # fmt: skip


def slurm_job(tmp_path: Path) -> dict[str, str]:
    """SLURM's variables for a one-task job 4242, and a stand-in `scontrol` on PATH that appends its arguments to
    tmp_path/scontrol.log."""
    scontrol = tmp_path / "bin" / "scontrol"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    return {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_JOB_ID": "4242",
            "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "dcgan",
            "SLURM_NODELIST": "localhost", "PATH": f"{scontrol.parent}:{os.environ['PATH']}"}  # fmt: skip


def test_the_slurm_requeue_signal_to_the_group_saves_whole_batches_and_the_requeued_job_resumes_exactly(
    tmp_path: Path, photo_folder: list[str], uninterrupted_folder_run: dict
) -> None:
    """trainer=slurm as SLURM runs it: submitit's SIGUSR2, then SLURM's SIGTERM, each to every process of the job.

    Lightning's requeue handler saves hpc_ckpt_1.ckpt and runs `scontrol requeue` (a stand-in that records its
    arguments); the workers survive both signals; the requeued job, the same command in the same folder, resumes
    from hpc_ckpt_1.ckpt and ends equal to an uninterrupted run.
    """
    slurm = slurm_job(tmp_path)
    out, pace = tmp_path / "job", tmp_path / "progress.json"
    job = [
        *photo_folder,
        *ONE_CPU_SLURM_TASK,
        "+callbacks.pace._target_=tests.helpers.Pace",
        f"+callbacks.pace.path={pace}",
    ]

    proc = start_cli(out, *job, env=slurm, run=FOLDER_RUN)
    wait_for(lambda: progress(pace)["batches"] >= 8, proc)
    os.killpg(proc.pid, signal.SIGUSR2)  # submitit's warning before the time limit
    hpc = out / "hpc_ckpt_1.ckpt"
    wait_for(lambda: (tmp_path / "scontrol.log").exists(), proc)
    at_requeue = progress(pace)["batches"]
    wait_for(lambda: progress(pace)["batches"] >= at_requeue + 2, proc)  # the workers survived: training goes on
    os.killpg(proc.pid, signal.SIGTERM)  # SLURM stops the job to requeue it
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "killed by signal" not in stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    saved = load(hpc)
    assert saved["global_step"] % 2 == 0, "the requeue checkpoint must hold whole batches (D and G both updated)"

    requeued = start_cli(out, *job, env=slurm, run=FOLDER_RUN)  # SLURM runs the same command again
    _, stderr = requeued.communicate(timeout=300)
    assert requeued.returncode == 0, stderr[-3000:]
    assert progress(pace)["first"] == saved["global_step"] // 2 + 1  # it went on from hpc_ckpt_1.ckpt
    same_training_state(uninterrupted_folder_run, load(out / "checkpoints" / "last.ckpt"))


def test_a_folder_run_resumed_from_an_epochs_last_checkpoint_trains_as_if_never_stopped(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, photo_folder: list[str], uninterrupted_folder_run: dict
) -> None:
    """With loader workers the resumed run's first iterator used to be drawn before Lightning set the epoch: epoch
    1 was trained in epoch 0's order, and a mid-epoch resume skipped a batch too few."""
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    one_epoch = [o for o in FOLDER_RUN if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=1"]
    train(tiny_cfg(*photo_folder, *one_epoch, output_dir=first))
    train(tiny_cfg(*photo_folder, *FOLDER_RUN, f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", output_dir=resumed))
    same_training_state(uninterrupted_folder_run, load(resumed / "checkpoints" / "last.ckpt"))


def test_a_signal_during_a_score_stops_it_between_two_inception_passes_and_saves_at_once(
    tiny_cfg: Callable[..., DictConfig], tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A score on a CPU takes minutes (a fid5k-train about 7 on 2 cores), longer than a scheduler waits between
    SIGTERM and SIGKILL. The run used to finish the score before saving; now it saves within one pass."""
    passes: list[int] = []
    sent: list[signal.Signals] = []
    forward = FIDFeatures.forward

    def counting_forward(self: FIDFeatures, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # images; cached features pass through as rows
            passes.append(len(x))
            if len(passes) == 3 and not sent:  # the third of the 108 real images' 14 passes, then 8 of samples
                sent.append(signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGTERM)
        return forward(self, x)

    monkeypatch.setattr(FIDFeatures, "forward", counting_forward)
    scored = ["metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=64",
              "metrics.num_fake_train=64", "metrics.batch_size=8", "metrics.every_n_epochs=1",
              "trainer.max_epochs=2"]  # fmt: skip
    with caplog.at_level("INFO"):
        code, stderr = exits(run, tiny_cfg(*scored), capsys)
    assert code == 143 and "interrupted by SIGTERM at the end of epoch 0: saved " in stderr, stderr[-3000:]
    assert len(passes) == 3  # not one pass after the signal
    assert any(r.getMessage().startswith("epoch 0: score stopped after ") for r in caplog.records)
    assert not list((tmp_path / "data").rglob("real-*.pt"))  # no half-computed real features cached
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert load(ckpt)["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1  # epoch 0, whole

    passes.clear()
    resumed = train(tiny_cfg(*scored, f"ckpt_path={ckpt}", output_dir=tmp_path / "resumed"))
    assert len(passes) == 14 + 8 and resumed["val/fid"] > 0  # epoch 1 trained and scored whole


def test_a_signal_while_a_score_draws_its_samples_stops_it_before_the_next_batch_of_them(
    tiny_cfg: Callable[..., DictConfig], tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """fid5k-train draws all 5,000 samples before its first Inception pass (they are kept for the copy check's
    grid): under DDP on 2 cores that took fewshot's G 100 s, which a stop between Inception passes did not cover."""
    drawn: list[int] = []
    sampler = sample_quality.sampling_generator

    def signal_at_the_first_batch(module: torch.nn.Module, args: tuple) -> None:
        drawn.append(len(args[0]))
        if len(drawn) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    def hooked(trainer: object, pl_module: object) -> torch.nn.Module:
        g = sampler(trainer, pl_module)
        g.register_forward_pre_hook(signal_at_the_first_batch)
        return g

    monkeypatch.setattr(sample_quality, "sampling_generator", hooked)
    scored = ["metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake_train=250",
              "metrics.every_n_epochs=1"]  # fmt: skip
    with caplog.at_level("INFO"):
        code, stderr = exits(run, tiny_cfg(*scored), capsys)
    assert code == 143 and "interrupted by SIGTERM at the end of epoch 0: saved " in stderr, stderr[-3000:]
    assert drawn == [100]  # of 100, 100 and 50: a CPU draws 100 a call
    assert any(r.getMessage().startswith("epoch 0: score stopped after ") for r in caplog.records)


def test_slurms_requeue_signal_during_a_score_stops_it_and_requeues_after_the_next_batch(
    tiny_cfg: Callable[..., DictConfig], tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """submitit's SIGUSR2 comes a minute or two before the time limit; a score on a CPU can outlast that. The
    requeue used to wait for the score; now the score stops and the requeue follows the next batch."""
    for name, value in slurm_job(tmp_path).items():
        monkeypatch.setenv(name, value)
    passes: list[int] = []
    forward = FIDFeatures.forward

    def counting_forward(self: FIDFeatures, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            passes.append(len(x))
            if len(passes) == 3:  # in epoch 0's score
                os.kill(os.getpid(), signal.SIGUSR2)
        return forward(self, x)

    monkeypatch.setattr(FIDFeatures, "forward", counting_forward)
    scored = ["metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=64",
              "metrics.num_fake_train=64", "metrics.batch_size=8", "metrics.every_n_epochs=1",
              "trainer.max_epochs=2", "trainer.limit_train_batches=6"]  # fmt: skip
    with caplog.at_level("INFO"):
        result = train(tiny_cfg(*ONE_CPU_SLURM_TASK, *scored))
    assert any(r.getMessage().startswith("epoch 0: score stopped after ") for r in caplog.records)
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    saved = load(tmp_path / "run" / "hpc_ckpt_1.ckpt")
    assert saved["global_step"] == 2 * (6 + 1)  # epoch 0 and the first batch of epoch 1, whole
    assert len(passes) == 3 + 14 + 8 and result["val/fid"] > 0  # then the last epoch scored whole, as it went on


def test_sigterm_to_a_ddp_run_during_a_score_stops_the_score_and_saves_on_every_rank(
    tmp_path: Path, tiny_weights: Path
) -> None:
    """Two gloo ranks, signalled as a cluster signals a job: rank 0 scores while rank 1 waits for its result.
    Lightning's SIGTERM handler broadcasts on every rank each time it runs. A rank 1 blocked in a collective of its
    own answered rank 0's broadcast with the wrong one (a gloo error, exit 1); a rank 1 that ran the handler twice,
    for the group's signal and for rank 0's forwarding of it, left its second broadcast unanswered (a hang)."""
    out, marker = tmp_path / "run", tmp_path / "scoring"
    scored = [*DDP_ON_TWO_CPUS, "trainer.max_epochs=2", "metrics=fid", f"metrics.inception_weights={tiny_weights}",
              "metrics.num_fake_train=64", "metrics.batch_size=8", "metrics.every_n_epochs=1"]  # fmt: skip
    slow = ["+callbacks.slow._target_=tests.helpers.SlowScore", f"+callbacks.slow.marker={marker}"]
    proc = start_cli(out, *scored, *slow)
    wait_for(marker.exists, proc, timeout=180)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no exit 60 s after SIGTERM: {proc.communicate()[1][-3000:]}") from None
    assert proc.returncode == 143 and "interrupted by SIGTERM at the end of epoch 0: " in stderr, stderr[-3000:]
    assert "score stopped after " in (out / "train.log").read_text()
    saved = load(out / "checkpoints" / "last.ckpt")
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 1  # epoch 0, whole

    resumed = tmp_path / "resumed"
    proc = start_cli(resumed, *scored, f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}")
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    scores = json.loads((resumed / "sample_quality.json").read_text())["scores"]
    assert [s["epoch"] for s in scores] == [2] and scores[0]["fid"] > 0  # epoch 1 trained and scored on both ranks


def test_a_second_ddp_fit_in_the_same_processes_does_not_read_the_first_fits_scores(
    tmp_path: Path, tiny_weights: Path
) -> None:
    """The other ranks take rank 0's score from the process group's store, where the first fit's epoch-1 score is
    still kept when a script fits again in the same processes: each fit's keys are its own."""
    script = [sys.executable, str(REPO / "tests" / "two_ddp_fits.py"), str(tmp_path), str(tiny_weights)]
    proc = subprocess.run(script, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for fit in ("fit1", "fit2"):
        scored = json.loads((tmp_path / fit / "sample_quality.json").read_text())["scores"][0]["fid"]  # rank 0's
        logged = [json.loads((tmp_path / fit / f"draws{r}.json").read_text())["val_fid"] for r in (0, 1)]
        assert logged == [pytest.approx(scored, rel=1e-6)] * 2, (fit, scored, logged)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_a_spawned_ddp_jobs_group_saves_mid_epoch_and_the_job_resumes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """trainer.strategy=ddp_spawn*, as a -m sweep on several devices runs it, signalled as a cluster or a terminal
    signals it. The main process used to die at once (Ctrl-C: SIGKILL its ranks) with no checkpoint; a rank's
    SIGTERMException, a SystemExit, ended it with code 0 and no result, and the main process then waited forever."""
    out, pace = tmp_path / "run", tmp_path / "progress.json"
    spawned = [*DDP_ON_TWO_CPUS, "trainer.strategy=ddp_spawn_find_unused_parameters_true"]
    paced = [
        "+callbacks.pace._target_=tests.helpers.Pace",
        f"+callbacks.pace.path={pace}",
        "+callbacks.pace.seconds=0.3",
    ]
    proc = start_cli(out, *spawned, *paced)
    wait_for(lambda: progress(pace)["batches"] >= 4, proc, timeout=180)  # epoch 1 (3 batches a rank an epoch)
    os.killpg(proc.pid, signum)
    try:
        _, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"no exit 90 s after {signum.name}: {proc.communicate()[1][-3000:]}") from None
    ckpt = out / "checkpoints" / "last.ckpt"
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert (
        stderr.strip().splitlines()[-1] == f"interrupted by {signum.name}: saved {ckpt}; continue with ckpt_path={ckpt}"
    )
    saved = load(ckpt)
    # Saved at the batch's end, as a rank must (it runs no on_exception): the batch counts processed, as in the
    # checkpoints that lightning_internals.epoch_position reads.
    done_in_epoch = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
    assert saved["epoch"] == 1 and 1 <= done_in_epoch < 3 and saved["global_step"] == 2 * (3 + done_in_epoch)

    resumed = tmp_path / "resumed"
    proc = start_cli(resumed, *spawned, f"ckpt_path={ckpt}")
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    assert load(resumed / "checkpoints" / "last.ckpt")["global_step"] == 2 * 6  # 2 epochs of 3 batches


def test_signal_handlers_are_as_before_after_a_run(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning puts back the handlers it replaced before the callbacks' teardown; ours must not then put
    Lightning's back over them (SLURM's requeue handlers, here), or a finished trainer would answer the next signal
    and chain itself into the next run of a sweep."""
    for name, value in slurm_job(tmp_path).items():
        monkeypatch.setenv(name, value)
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
    before = {s: signal.getsignal(s) for s in signals}
    train(tiny_cfg(*ONE_CPU_SLURM_TASK, "trainer.max_epochs=1"))
    assert {s: signal.getsignal(s) for s in signals} == before
