"""The captured step (model.cuda_graph): refused where it cannot work; on a GPU, the same update as the eager step.

The GPU tests are skipped in CI (no GPU there); their results on an H100 are recorded in BENCHMARKS.md.
"""

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit.cuda_graph_step import cuda_graph_blocker, use_cuda_graph
from dcgan_lit.errors import ConfigError
from dcgan_lit.train import train
from tests.conftest import load_checkpoint as load

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


def test_auto_is_off_and_true_is_refused_where_graphs_cannot_run() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert not use_cuda_graph(None, cpu, 1, "32-true")
    assert not use_cuda_graph(None, cuda, 2, "bf16-mixed")
    assert not use_cuda_graph(False, cuda, 1, "bf16-mixed")
    assert use_cuda_graph(None, cuda, 1, "bf16-mixed") and use_cuda_graph(True, cuda, 1, "32-true")
    assert "trainer.precision='16-mixed'" in cuda_graph_blocker(cuda, 1, "16-mixed")
    with pytest.raises(ConfigError, match=r"model.cuda_graph=true cannot be used: it needs a CUDA GPU.*on cpu"):
        use_cuda_graph(True, cpu, 1, "32-true")
    with pytest.raises(ConfigError, match=r"2 processes"):
        use_cuda_graph(True, cuda, 2, "32-true")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when there is no GPU")
def test_cuda_graph_true_without_a_gpu_is_a_config_error(tiny_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match="model.cuda_graph=true needs a CUDA GPU"):
        train(tiny_cfg("model.cuda_graph=true"))


def gpu_run(tiny_cfg: Callable[..., DictConfig], out: Path, *overrides: str) -> dict:
    train(
        tiny_cfg(
            "trainer=gpu",
            "trainer.deterministic=true",
            "trainer.benchmark=false",  # the same cuDNN algorithms in both runs
            "trainer.log_every_n_steps=1",
            "trainer.limit_train_batches=6",
            "trainer.max_epochs=2",
            "data.gpu_cache=true",
            "seed=5",
            *overrides,
            output_dir=out,
        )
    )
    return load(out / "checkpoints" / "last.ckpt")


def max_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over the weights, BatchNorm buffers and Adam states of two checkpoints."""
    diffs = [(a["state_dict"][k].double() - b["state_dict"][k].double()).abs().max() for k in a["state_dict"]]
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for i, state in oa["state"].items():
            for key, value in state.items():
                diffs.append((value.double() - ob["state"][i][key].double()).abs().max())
    return max(float(d) for d in diffs)


@gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_captured_step_matches_the_eager_step(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, precision: str
) -> None:
    """12 steps (3 eager warm-up + 9 replayed) against 12 eager steps, from the same seed, compared state by state."""
    runs = {}
    for graph in ("true", "false"):
        out = tmp_path / f"graph_{graph}"
        runs[graph] = gpu_run(tiny_cfg, out, f"model.cuda_graph={graph}", f"trainer.precision={precision}")
        assert json.loads((out / "throughput.json").read_text())["cuda_graph"] is (graph == "true")
    graphed, eager = runs["true"], runs["false"]
    assert graphed["global_step"] == eager["global_step"] == 24  # Lightning still counts every optimizer step
    diff = max_diff(graphed, eager)
    print(f"\n{precision}: max |graphed - eager| over weights, BN buffers and Adam states after 12 steps: {diff:.3g}")
    assert diff <= 1e-6, diff
    bn = "generator.main.1.num_batches_tracked"  # one G forward per step, replayed or not
    assert graphed["state_dict"][bn] == eager["state_dict"][bn] == 12


@gpu
def test_captured_step_resumes_like_an_uninterrupted_run(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    whole = gpu_run(tiny_cfg, tmp_path / "whole", "model.cuda_graph=true")
    gpu_run(tiny_cfg, tmp_path / "first", "model.cuda_graph=true", "trainer.max_epochs=1")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = gpu_run(tiny_cfg, tmp_path / "second", "model.cuda_graph=true", f"ckpt_path={ckpt}")
    assert resumed["global_step"] == whole["global_step"] == 24
    assert set(resumed["state_dict"]) == set(whole["state_dict"])
    # Not bitwise: the resumed run re-seeds its RNG at start, so its second epoch draws other z and flips.
    assert torch.equal(resumed["state_dict"]["fixed_noise"], whole["state_dict"]["fixed_noise"])


class SyncProbe(L.Callback):
    """Records every host-device sync PyTorch reports between the end of batch `first` and the end of `last`.

    The window covers the whole hot path of the batches in it: fetching and moving the index batch, the gather,
    the captured step, both optimizer steps, and Lightning's hooks and logging calls.
    """

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.syncs: list[str] = []
        self._catcher: warnings.catch_warnings | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        batch_idx = args[-1]
        if self._catcher is not None:
            torch.cuda.set_sync_debug_mode("default")
            self.syncs += [str(w.message) for w in self._records if "called a synchronizing" in str(w.message)]
            self._catcher.__exit__(None, None, None)
            self._catcher = None
        if self.first <= batch_idx < self.last:
            self._catcher = warnings.catch_warnings(record=True)
            self._records = self._catcher.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")


@gpu
def test_no_host_sync_between_log_steps(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = tiny_cfg(
        "trainer=gpu",
        "trainer.log_every_n_steps=1000",
        "trainer.limit_train_batches=14",
        "trainer.max_epochs=1",
        "data.num_images=400",
        "data.gpu_cache=true",
        "data.hflip=true",
        output_dir=tmp_path / "run",
    )
    probe = SyncProbe(first=5, last=12)  # after the capture (batch 3), before the epoch's last batch
    model, dm = instantiate(cfg.model), instantiate(cfg.data)
    trainer = instantiate(cfg.trainer, callbacks=[probe], logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    assert model.graph_step is not None and model.graph_step.graph_d is not None
    assert probe.syncs == [], probe.syncs


def test_the_capture_and_replay_logic_gives_the_eager_steps_on_the_cpu(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """CudaGraphStep with graphs that replay by calling the captured passes: after 3 eager warm-up steps, a
    capture and 3 replays, the weights, BatchNorm buffers and Adam states are torch.equal to 6 eager steps.
    That covers the static buffers, z.normal_(), the grads zeroed rather than set to None, and the warm-up."""
    run = ["trainer.max_epochs=2", "seed=3", "trainer.log_every_n_steps=2"]  # 2 epochs x 3 batches
    train(tiny_cfg(*run, output_dir=tmp_path / "eager"))
    replays = tmp_path / "replays.json"
    capture = ["+callbacks.capture._target_=tests.helpers.CaptureOnCPU", f"+callbacks.capture.path={replays}"]
    train(tiny_cfg(*run, *capture, output_dir=tmp_path / "captured"))
    assert json.loads(replays.read_text()) == {"d": 3, "g": 3}  # batches 4 to 6 ran through the graphs
    eager, captured = (load(tmp_path / name / "checkpoints" / "last.ckpt") for name in ("eager", "captured"))
    assert eager["global_step"] == captured["global_step"] == 12
    for key, value in eager["state_dict"].items():
        assert torch.equal(value, captured["state_dict"][key]), key
    for opt_a, opt_b in zip(eager["optimizer_states"], captured["optimizer_states"], strict=True):
        for i, state in opt_a["state"].items():
            for name, value in state.items():
                assert torch.equal(value, opt_b["state"][i][name]), (i, name)


def test_what_cannot_be_captured_comes_from_the_registry() -> None:
    from dcgan_lit import losses

    assert losses.eager_only({}, 1) is None
    assert losses.eager_only({"gp": 10.0}, 5) == "the gp penalty and model.n_critic>1 run eagerly (cannot be captured)"
    with pytest.raises(ConfigError, match=r"cannot be used: the gp penalty run eagerly"):
        use_cuda_graph(True, torch.device("cuda", 0), 1, "bf16-mixed", losses.eager_only({"gp": 10.0}, 1))
