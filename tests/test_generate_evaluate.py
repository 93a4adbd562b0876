"""generate and evaluate from a checkpoint alone: no model settings retyped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from dcgan_lit.generate import slerp
from dcgan_lit.train import train
from tests.test_metrics import tiny_weights  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[1]


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"dcgan_lit.{module}", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # run from another folder, as a user would
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import TINY, compose_train

    out = tmp_path_factory.mktemp("trained")
    # nz=16, ngf=8 at 32 px: nothing the CLI defaults would guess.
    train(compose_train([*TINY, "data.num_images=120", f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}"]))
    return out / "checkpoints" / "last.ckpt"


def test_grid_interpolation_and_export(checkpoint: Path, tmp_path: Path) -> None:
    proc = cli("generate", f"ckpt_path={checkpoint}", "num=16", "nrow=4", "out=grid.png", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 grid of 32 px, 2 px padding

    proc = cli("generate", f"ckpt_path={checkpoint}", "mode=interpolate", "num=4", "nrow=2", "points=3", "steps=5",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.n_frames == 15  # 3 legs x 5 steps
    assert Image.open(tmp_path / "interpolation.png").size == (5 * 34 + 2, 3 * 34 + 2)

    proc = cli("generate", f"ckpt_path={checkpoint}", "mode=export", "out=g.pt", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    standalone = (
        "import sys, json, torch; files = {'dcgan_lit.json': ''}; "
        "g = torch.jit.load('g.pt', _extra_files=files); nz = json.loads(files['dcgan_lit.json'])['nz']; "
        "x = g(torch.randn(3, nz)); assert not any(m.startswith('dcgan_lit') for m in sys.modules); "
        "print(tuple(x.shape))"
    )
    proc = subprocess.run([sys.executable, "-c", standalone], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "(3, 3, 32, 32)", proc.stderr[-2000:]


def test_slerp_keeps_the_endpoints_and_the_norm() -> None:
    a, b = torch.randn(5, 16), torch.randn(5, 16)
    path = slerp(a, b, torch.tensor([0.0, 0.5]))
    assert torch.allclose(path[0], a, atol=1e-5)
    assert path.shape == (2, 5, 16)


def test_evaluate_writes_fid_kid_and_the_protocol(checkpoint: Path, tmp_path: Path, tiny_weights: Path) -> None:  # noqa: F811
    out = tmp_path / "report.json"
    proc = cli("evaluate", f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}",
               "metrics.num_fake=50", f"out={out}", f"paths.data_dir={tmp_path / 'data'}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["fid"] > 0 and report["kid"]["std"] >= 0
    protocol = report["protocol"]
    assert protocol["num_fake"] == 50 and protocol["num_real"] == 12 and protocol["resolution"] == 32
    assert "no antialias" in protocol["resize"] and protocol["extractor"].startswith("torchscript:")
    assert "FID " in proc.stdout


def test_generate_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "x.ckpt").write_text("nope")
    proc = cli("generate", f"ckpt_path={tmp_path / 'x.ckpt'}", cwd=tmp_path)
    assert (
        proc.returncode == 2 and proc.stderr.strip().startswith("error: ckpt_path=") and "Traceback" not in proc.stderr
    )


def test_evaluate_refuses_data_of_another_resolution(checkpoint: Path, tmp_path: Path, tiny_weights: Path) -> None:  # noqa: F811
    args = [f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", "data=synthetic",
            "data.image_size=64", "data.num_images=50", f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    proc = cli("evaluate", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "does not fit this data: image_size=32 in the checkpoint but data.image_size=64" in last
