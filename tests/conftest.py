"""Compose the real Hydra config and shrink it to something that trains in seconds on a CPU."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs a worker per core: one thread each, no oversubscription
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and for the processes the tests start

# 32 px, ngf=ndf=8, a few batches: the whole training loop, just small.
TINY: list[str] = [
    "data.image_size=32",
    "data.batch_size=16",
    "model.nz=16",
    "model.generator.ngf=8",
    "model.discriminator.ndf=8",
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "+trainer.limit_train_batches=3",
    "+trainer.enable_progress_bar=false",
    "~callbacks.progress_bar",
]

# trainer=ddp as two gloo processes on the CPU.
DDP_ON_TWO_CPUS: list[str] = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "trainer.benchmark=null",
]


# The width keys that an experiment's nets do not have (no ngf in an upsampling G, none at all in the MLP GAN).
NO_WIDTH_KEYS = {
    "experiment=mlp_gan": ("model.generator.ngf", "model.discriminator.ndf"),
    "experiment=dcgan_upsample": ("model.generator.ngf", "model.discriminator.ndf"),
    "experiment=fewshot": ("model.generator.ngf",),
}


def cli(module: str, *args: str, cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m dcgan_lit.<module> args...` as a user runs it (from `cwd`), with its output captured."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", f"dcgan_lit.{module}", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def exits(entry: Callable[[DictConfig], object], cfg: DictConfig, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run an entry point's command-line function (train.run, generate.cli, evaluate.report) in this process,
    expecting it to exit; returns (exit code, what it printed on stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        entry(cfg)
    return info.value.code, capsys.readouterr().err


def events(run: Path) -> EventAccumulator:
    """The run's one TensorBoard event file, every scalar and image loaded."""
    files = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    acc = EventAccumulator(str(files[0]), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def load_checkpoint(path: Path) -> dict:
    """A checkpoint as generate and evaluate read it: plain tensors and numbers only (weights_only)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def compose_train(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """conf/train.yaml with overrides, as `python -m dcgan_lit.train` would compose it."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=list(overrides))


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Factory: the tiny config writing into tmp_path (or a given folder), plus any extra overrides."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        out = output_dir or tmp_path / "run"
        groups = [o for o in overrides if o.startswith(("data=", "experiment=", "trainer=", "model="))]
        # Group choices go first so that the shrinking overrides apply to the chosen data set.
        data = [] if any(g.startswith(("data=", "experiment=")) for g in groups) else ["data.num_images=120"]
        tiny = [o for o in TINY if not (o.startswith("trainer=") and any(g.startswith("trainer=") for g in groups))]
        absent = {k for o in overrides for k in NO_WIDTH_KEYS.get(o, ())}
        if any(o.startswith("model=") for o in overrides):  # another model's nets: no ngf/ndf to count on
            absent |= {"model.generator.ngf", "model.discriminator.ndf"}
        tiny = [o for o in tiny if not o.startswith(tuple(absent))]
        rest = [o for o in overrides if o not in groups]
        paths = [f"paths.output_dir={out}", f"paths.data_dir={tmp_path / 'data'}"]
        return compose_train([*groups, *tiny, *data, *paths, *rest])

    return make


class TinyInception(nn.Module):
    """(N, 3, 299, 299) in (x - 128) / 128 -> (N, 64), like default_1.pt's interface, from fixed random filters.

    64 features rather than TF-Inception's 2048: FID's matrix square root then costs milliseconds, not seconds.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, kernel_size=9, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(4)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(torch.relu(self.conv(x))).flatten(1)  # 4 x 4 x 4 = 64


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fid") / "tiny_inception.pt"
    torch.jit.script(TinyInception().eval()).save(str(path))
    return path


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Path:
    """A folder that refuses new files, also to root (which ignores permission bits): chmod 555, else /sys."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / ".probe").write_bytes(b"")
        except OSError:
            return candidate
        (candidate / ".probe").unlink()
    pytest.skip("no folder on this machine refuses writes")
