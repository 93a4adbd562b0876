"""`python -m dcgan_lit.train` as a user runs it: one-line errors, and multirun sweeps."""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from dcgan_lit.train import run
from tests.conftest import DDP_ON_TWO_CPUS as TWO_GLOO_RANKS
from tests.conftest import TINY, cli, exits

A_GPU_HERE = torch.cuda.is_available() or torch.backends.mps.is_available()
DDP_ON_TWO_CPUS = (*TWO_GLOO_RANKS, "trainer.max_epochs=1")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cli("train", *args, timeout=timeout)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["data.image_size=48"],
            "error: data.image_size=48 is not supported: the DCGAN doubles the resolution from 4x4, "
            "so it must be one of 16, 32, 64, 128, 256.",
        ),
        pytest.param(
            ["model.cuda_graph=true"],
            "error: model.cuda_graph=true needs a CUDA GPU and none is available; set model.cuda_graph=false.",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU"),
        ),
        *[
            pytest.param(
                [trainer],
                "error: trainer.accelerator='gpu' needs a GPU, and torch sees none (torch ",
                marks=pytest.mark.skipif(A_GPU_HERE, reason="checks the message given without a GPU"),
            )
            for trainer in ("trainer=gpu", "trainer=ddp")
        ],
        (
            ["experiment=celeba", "data.root=/no/such/celeba"],
            "error: data.root='/no/such/celeba': /no/such/celeba does not exist. "
            "CelebA is not downloaded automatically",
        ),
        (
            ["model.loss=nope"],
            "error: model.loss='nope': must be one of bce, hinge, lsgan, wgan-gp.",
        ),  # in a constructor
        (["+trainer.gradient_clip_val=1"], "error: trainer: "),  # Lightning's own refusal, for manual optimization
    ],
)
def test_bad_input_is_one_line_not_a_traceback(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    code, stderr = exits(run, tiny_cfg(*args), capsys)
    assert code == 2 and stderr.startswith(message) and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_command_line_prints_that_one_line(tmp_path: Path) -> None:
    proc = run_cli("data.image_size=48", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data.image_size=48 is not supported")


def test_multirun_sweep_gives_one_run_folder_each(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    tiny = [o for o in TINY if "max_epochs" not in o] + ["data.num_images=60"]
    proc = run_cli(
        "-m",
        "model.lr_g=1e-4,2e-4",
        "trainer.max_epochs=1",
        *tiny,
        f"hydra.sweep.dir={sweep}",
        f"paths.data_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, lr in zip(jobs, ["0.0001", "0.0002"], strict=True):
        assert f"model.lr_g={lr}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert list((job / "tensorboard").glob("events.out.tfevents.*"))
        assert (job / "checkpoints" / "last.ckpt").is_file()


def ddp_run(out: Path, tiny_weights: Path) -> subprocess.CompletedProcess:
    tiny = [o for o in TINY if not o.startswith(("trainer=", "trainer.max_epochs"))] + ["data.num_images=120"]
    return run_cli(
        *DDP_ON_TWO_CPUS,
        *tiny,
        "metrics=fid",
        f"metrics.inception_weights={tiny_weights}",
        "metrics.num_fake=16",
        "metrics.num_fake_train=16",
        "metrics.every_n_epochs=1",
        "+callbacks.ranks._target_=tests.helpers.SaveRankWeights",
        f"+callbacks.ranks.dirpath={out / 'ranks'}",
        "+callbacks.draws._target_=tests.helpers.SaveRankDraws",
        f"+callbacks.draws.dirpath={out / 'ranks'}",
        f"hydra.run.dir={out}",
        f"paths.data_dir={out / 'data'}",
        timeout=120,  # a collective that only one rank enters hangs: fail instead
    )


def test_ddp_ranks_draw_their_own_noise_keep_one_g_and_score_once(tmp_path: Path, tiny_weights: Path) -> None:
    """trainer=ddp on two gloo processes: the manual GAN step must not trip DDP's unused-parameter check."""
    runs = []
    for name in ("first", "again"):
        out = tmp_path / name
        proc = ddp_run(out, tiny_weights)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "sync_dist" not in proc.stderr  # the epoch means are all ranks', as Lightning recommends
        draws = [json.loads((out / "ranks" / f"draws{r}.json").read_text()) for r in (0, 1)]
        weights = [torch.load(out / "ranks" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
        runs.append((draws, weights))
    (draws, (g0, g1)), (draws_again, (h0, _)) = runs
    out = tmp_path / "first"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # one writer
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 only
    # The copy check's grid too: 120 images hold out too few, so the training images are the reference.
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_000.png", "nearest_epoch_000.png", "real.png"]
    # Each rank its own z (3 batches each), so the fakes of one step are not copies of one batch.
    assert len(draws[0]["z_sums"]) == len(draws[1]["z_sums"]) == 3
    assert all(a != b for a, b in zip(draws[0]["z_sums"], draws[1]["z_sums"], strict=True)), draws
    # DDP averages the gradients, so both ranks hold the same G (BatchNorm running stats stay per rank; rank 0's
    # are the ones checkpointed).
    assert g0.keys() == g1.keys() and all(torch.equal(g0[k], g1[k]) for k in g0)
    # FID once: rank 0 embeds the 108 training images and 16 fakes, rank 1 nothing; both log the same score.
    assert (draws[0]["embedded"], draws[1]["embedded"]) == (108 + 16, 0)
    assert draws[0]["val_fid"] == draws[1]["val_fid"] is not None
    # The same seed repeats exactly.
    assert [d["z_sums"] for d in draws_again] == [d["z_sums"] for d in draws]
    assert all(torch.equal(g0[k], h0[k]) for k in g0)


def test_ddp_with_the_device_cache_gives_each_rank_its_own_shard(tmp_path: Path) -> None:
    """2 gloo ranks, 108 training images, batch 16: a shard of 54 each is 3 full batches per epoch, not 6."""
    tiny = [o for o in TINY if not o.startswith(("trainer=", "trainer.max_epochs", "+trainer.limit_train_batches"))]
    proc = run_cli(
        *DDP_ON_TWO_CPUS,
        "data.gpu_cache=true",
        "data.num_images=120",
        *tiny,
        f"hydra.run.dir={tmp_path}",
        f"paths.data_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "throughput.json").read_text())
    assert summary["device_cache"] is True and summary["world_size"] == 2
    assert summary["batches"] == 3 and summary["images"] == 3 * 16 * 2


def test_multirun_with_script_launched_ddp_is_refused_with_what_to_use(tmp_path: Path) -> None:
    """As train() sees a `-m` run: Hydra's own config says MULTIRUN, with trainer=ddp on two devices."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from dcgan_lit.errors import ConfigError
    from dcgan_lit.train import train
    from tests.conftest import CONF_DIR

    overrides = [*DDP_ON_TWO_CPUS, "hydra.mode=MULTIRUN", f"paths.output_dir={tmp_path}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        message = r"multirun \(-m\) with trainer.strategy='ddp_find_unused_parameters_true'.*"
        with pytest.raises(ConfigError, match=message + r"use trainer.strategy=ddp_spawn_find_unused_parameters_true"):
            train(cfg)
    finally:
        HydraConfig.instance().cfg = None  # other tests' train() must not see this run's Hydra config


def test_a_user_error_in_a_spawned_rank_is_its_one_line_and_exit_code(tmp_path: Path) -> None:
    """A spawned rank's exception reaches the main process only as its traceback's text (torch's
    ProcessRaisedException): a diverged loss was 58 lines of traceback and exit code 1, not one line and 3."""
    from torch.multiprocessing.spawn import ProcessRaisedException

    from dcgan_lit.errors import TrainingDiverged, raised_in_a_spawned_rank

    tiny = [o for o in TINY if not o.startswith(("trainer=", "+trainer.limit_train_batches"))]
    proc = run_cli(
        *DDP_ON_TWO_CPUS, "trainer.strategy=ddp_spawn_find_unused_parameters_true", *tiny, "data.num_images=120",
        "+callbacks.poison._target_=tests.helpers.Poison", "+callbacks.poison.batch=2",
        f"hydra.run.dir={tmp_path}", f"paths.data_dir={tmp_path}",
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-3000:]
    # The last line, and no traceback above it (c10d may warn about the host name where there is no network).
    assert "Traceback" not in proc.stderr and proc.stderr.strip().splitlines()[-1] == (
        "error: train/d_loss=nan, train/g_loss=nan at batch 2: training stopped and no checkpoint of this state was "
        "written. Lower model.lr_g / model.lr_d, or check the data, and resume from the last checkpoint. No "
        "checkpoint had been written yet."
    )
    bug = ProcessRaisedException("Traceback (most recent call last):\nZeroDivisionError: division by zero", 0, 1)
    assert raised_in_a_spawned_rank(bug) is None  # a bug keeps its traceback
    rebuilt = raised_in_a_spawned_rank(ProcessRaisedException("...\ndcgan_lit.errors.TrainingDiverged: x nan", 1, 2))
    assert isinstance(rebuilt, TrainingDiverged) and str(rebuilt) == "x nan"


def sweep_args(tmp_path: Path) -> list[str]:
    tiny = [o for o in TINY if "max_epochs" not in o] + ["data.num_images=60", "trainer.max_epochs=1"]
    return [*tiny, f"hydra.sweep.dir={tmp_path / 'multirun'}", f"paths.data_dir={tmp_path}"]


def test_multirun_with_the_spawned_ddp_that_the_refusal_names_runs_every_job(tmp_path: Path) -> None:
    """What the message above says to use: ddp_spawn pickles the trainer with its callbacks into each rank, and
    the EMA's averaging function was a closure, which cannot be pickled (the run failed before its first batch).
    The spawned ranks, fresh interpreters, also started with no logging: their lines reached no file or console."""
    proc = run_cli(
        "-m", *DDP_ON_TWO_CPUS, "trainer.strategy=ddp_spawn_find_unused_parameters_true", *sweep_args(tmp_path),
        "model.lr_g=1e-4,2e-4", "callbacks.ema.warmup=true",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        ckpt = torch.load(tmp_path / "multirun" / job / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["epoch"] == 0 and any("EMA" in key for key in ckpt["callbacks"]), list(ckpt["callbacks"])
        # The spawned ranks log as the main process does: rank 0's lines in the job's train.log, said once.
        log = (tmp_path / "multirun" / job / "train.log").read_text()
        assert log.count("rendered 60 synthetic space images") == 1, log
    assert "LeafSpec" not in proc.stderr and "Initializing distributed" not in proc.stderr, proc.stderr[-3000:]


def test_a_failed_job_is_one_failed_job_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """Job #1 is refused at start-up; jobs #0 and #2 train, and the sweep ends listing #1 and exiting 1."""
    proc = run_cli("-m", "model.lr_g=1e-4,-1,2e-4", *sweep_args(tmp_path))
    sweep = tmp_path / "multirun"
    reason = "error: model.lr_g=-1: must be a finite number > 0, e.g. 2e-4."
    assert proc.returncode == 1, proc.stderr[-3000:]
    for job in ("0", "2"):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert not (sweep / job / "error.txt").exists()
    assert not (sweep / "1" / "checkpoints").exists()
    assert (sweep / "1" / "error.txt").read_text() == reason + "\n"  # the job's reason, in its own run folder
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert reason in proc.stderr.splitlines()  # said on the console when the job failed
    summary = ["1 of 3 jobs failed:", f"  #1 model.lr_g=-1 ({sweep / '1'}): {reason}"]
    assert proc.stderr.strip().splitlines()[-2:] == summary


def optuna_search(tmp_path: Path, lr_d: str, n_trials: int) -> subprocess.CompletedProcess:
    """hparams_search=optuna over model.lr_d alone, minimizing val/fid (tiny extractor); a trial with lr_d >= 1e-3
    is made to diverge: its D turns NaN at batch 1, as a GAN does at a bad learning rate."""
    return run_cli(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.params=null",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",
        f"model.lr_d=choice({lr_d})",
        "+callbacks.poison._target_=tests.helpers.Poison",
        "+callbacks.poison.batch=1",
        "+callbacks.poison.min_lr_d=1e-3",
        "metrics=fid",
        f"metrics.inception_weights={tmp_path / 'tiny_inception.pt'}",
        "metrics.num_fake=16",
        "metrics.num_fake_train=16",
        *sweep_args(tmp_path),
    )


def test_an_optuna_search_records_a_diverged_trial_as_failed_and_goes_on_to_n_trials(
    tmp_path: Path, tiny_weights: Path
) -> None:
    import optuna
    import yaml

    (tmp_path / "tiny_inception.pt").write_bytes(tiny_weights.read_bytes())
    proc = optuna_search(tmp_path, "1e-4,5e-3", n_trials=4)
    assert proc.returncode == 0, proc.stderr[-3000:]  # some failed trials are part of a search, not its failure
    study = optuna.load_study(study_name="dcgan", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == 4  # the search went on to n_trials
    states = {t.number: (t.params["model.lr_d"], t.state.name) for t in study.trials}
    assert {lr for lr, state in states.values() if state == "FAIL"} == {5e-3}, states
    assert {lr for lr, state in states.values() if state == "COMPLETE"} == {1e-4}, states
    sweep = tmp_path / "multirun"
    for number, (_, state) in states.items():
        error = sweep / str(number) / "error.txt"
        assert (state == "FAIL") == error.exists()
        assert state == "COMPLETE" or "train/d_loss=nan" in error.read_text()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    completed = [t.value for t in study.trials if t.state.name == "COMPLETE"]
    assert best["best_params"] == {"model.lr_d": 1e-4} and best["best_value"] == min(completed)
    failed = sum(state == "FAIL" for _, state in states.values())
    assert f"{failed} of 4 trials failed (state FAIL in the study):" in proc.stdout + proc.stderr


def test_an_optuna_search_whose_trials_all_fail_ends_in_one_summary(tmp_path: Path, tiny_weights: Path) -> None:
    (tmp_path / "tiny_inception.pt").write_bytes(tiny_weights.read_bytes())
    proc = optuna_search(tmp_path, "5e-3,6e-3", n_trials=2)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-3] == "all 2 trials failed, so the search has no best trial:"
    assert all(line.startswith("  #") and "train/d_loss=nan" in line and "at batch 1" in line for line in lines[-2:])


def test_a_search_for_a_score_with_metrics_off_is_refused_at_start(
    tiny_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture
) -> None:
    code, stderr = exits(run, tiny_cfg("optimized_metric=val/fid"), capsys)
    assert code == 2 and stderr.startswith(
        "error: optimized_metric=val/fid is a sample-quality score, and metrics are off (metrics=none)"
    )


def test_a_run_that_did_not_log_the_optimized_metric_fails_naming_it(
    tiny_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture
) -> None:
    code, stderr = exits(run, tiny_cfg("optimized_metric=train/nope", "trainer.max_epochs=1"), capsys)
    assert code == 2 and stderr.startswith("error: optimized_metric=train/nope was not logged by this run")
    assert "train/g_loss_epoch" in stderr  # what it did log
