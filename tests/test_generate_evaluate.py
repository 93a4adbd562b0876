"""generate and evaluate from a checkpoint alone: no model settings retyped, and bad arguments refused in one line."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from torchvision.utils import save_image

from dcgan_lit import evaluate, generate
from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.errors import ConfigError
from dcgan_lit.generate import grid_image, run, slerp
from dcgan_lit.metrics.copy_check import COPY_WARNING_RATIO
from dcgan_lit.metrics.features import load_extractor
from dcgan_lit.metrics.quality import CPU_BATCH, GPU_BATCH, extractor_batch_size
from dcgan_lit.train import train
from tests.conftest import CONF_DIR, cli, exits


def generate_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("generate", overrides=list(overrides))


def evaluate_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("evaluate", overrides=list(overrides))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import TINY, compose_train

    out = tmp_path_factory.mktemp("trained")
    # nz=16, ngf=8 at 32 px: nothing the CLI defaults would guess.
    train(compose_train([*TINY, "data.num_images=120", f"paths.output_dir={out}", f"paths.data_dir={out / 'data'}"]))
    return out / "checkpoints" / "last.ckpt"


def test_grid_interpolation_and_export(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    generate.cli(generate_cfg(f"ckpt_path={checkpoint}", "num=16", "nrow=4", "out=grid.png"))
    assert capsys.readouterr().out == "wrote grid.png\n"
    assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)  # 4x4 grid of 32 px, 2 px padding

    generate.cli(generate_cfg(f"ckpt_path={checkpoint}", "mode=interpolate", "num=4", "nrow=2", "points=3", "steps=5"))
    gif = Image.open(tmp_path / "interpolation.gif")
    assert gif.n_frames == 15  # 3 legs x 5 steps
    assert Image.open(tmp_path / "interpolation.png").size == (5 * 34 + 2, 3 * 34 + 2)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate.cli(generate_cfg(f"ckpt_path={checkpoint}", "mode=export", "out=g.pt2"))
    assert (tmp_path / "g.pt2").is_file()
    assert [str(w.message) for w in caught] == []  # no TracerWarning or deprecation notes: nothing to act on


def test_the_exported_generator_takes_both_z_shapes_any_batch_and_loads_without_dcgan_lit(
    checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "g.pt2"
    run(generate_cfg(f"ckpt_path={checkpoint}", "mode=export", f"out={out}"))
    standalone = (
        "import sys, json, torch; sys.modules['dcgan_lit'] = None; files = {'dcgan_lit.json': ''}; "
        "g = torch.export.load('g.pt2', extra_files=files).module(); nz = json.loads(files['dcgan_lit.json'])['nz']; "
        "shapes = [tuple(g(torch.randn(b, nz)).shape) for b in (1, 5, 300)]; "
        "shapes.append(tuple(g(torch.randn(3, nz, 1, 1)).shape)); "
        "print(shapes)"
    )
    proc = subprocess.run([sys.executable, "-c", standalone], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[(1, 3, 32, 32), (5, 3, 32, 32), (300, 3, 32, 32), (3, 3, 32, 32)]"

    exported = torch.export.load(str(out)).module()
    generator, _ = load_generator(str(checkpoint), torch.device("cpu"))  # eval mode: BatchNorm running statistics
    z = torch.randn(7, 16)
    with torch.no_grad():
        expected = generator(z)
        assert torch.equal(exported(z), expected)
        assert torch.equal(exported(z[:, :, None, None]), expected)  # the tutorial's (B, nz, 1, 1)


def test_samples_npz_is_uint8_nhwc_arr_0_and_the_folder_holds_the_same_pngs(checkpoint: Path, tmp_path: Path) -> None:
    run(generate_cfg(f"ckpt_path={checkpoint}", "mode=samples", "num=37", "batch_size=10", f"out={tmp_path / 's.npz'}"))
    with np.load(tmp_path / "s.npz") as archive:
        assert archive.files == ["arr_0"]  # what ADM's TensorFlow evaluator and np.savez(out, images) give
        samples = archive["arr_0"]
    assert samples.dtype == np.uint8 and samples.shape == (37, 32, 32, 3)
    assert not (tmp_path / "s.npz.partial").exists()

    run(generate_cfg(f"ckpt_path={checkpoint}", "mode=samples", "num=37", "batch_size=10", f"out={tmp_path / 'pngs'}"))
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files[:2]] == ["000000.png", "000001.png"] and len(files) == 37
    folder = np.stack([np.asarray(Image.open(f)) for f in files])
    assert np.array_equal(folder, samples)  # same seed: the same images, whichever the container
    # torch-fidelity's own reader of a samples folder (`input1=<folder>`): 37 RGB uint8 images, ours.
    from torch_fidelity.utils import prepare_input_from_id

    dataset = prepare_input_from_id(1, input1=str(tmp_path / "pngs"))
    assert len(dataset) == 37 and dataset[5].dtype == torch.uint8
    assert np.array_equal(dataset[5].permute(1, 2, 0).numpy(), samples[5])

    # The images are G's: the first 10 are G(z) of the first z batch, quantized as save_image does.
    generator, _ = load_generator(str(checkpoint), torch.device("cpu"))
    with torch.no_grad():
        first = generator(torch.randn(10, 16, generator=torch.Generator().manual_seed(0)))
    save_image(first, tmp_path / "ref.png", nrow=10, normalize=True, value_range=(-1, 1), padding=0)
    reference = np.asarray(Image.open(tmp_path / "ref.png").convert("RGB")).reshape(32, 10, 32, 3).swapaxes(0, 1)
    assert np.array_equal(samples[:10], reference)

    with pytest.raises(ConfigError, match=r"already holds PNG files; .* choose a new or empty folder"):
        run(generate_cfg(f"ckpt_path={checkpoint}", "mode=samples", "num=3", f"out={tmp_path / 'pngs'}"))


def peak_rss_mb(*args: str, cwd: Path) -> float:
    """The peak resident memory of `python -m dcgan_lit.generate args...`, in MB (this child alone)."""
    env = {**os.environ, "PYTHONPATH": str(CONF_DIR.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "dcgan_lit.generate", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()[-2000:]
    return usage.ru_maxrss / 1024


def test_samples_memory_stays_flat_however_many_are_asked_for(checkpoint: Path, tmp_path: Path) -> None:
    small = peak_rss_mb(f"ckpt_path={checkpoint}", "mode=samples", "num=256", "out=small.npz", cwd=tmp_path)
    # 60,000 images of 32x32x3: 184 MB as uint8, 737 MB as G's float output if rendered at once.
    large = peak_rss_mb(f"ckpt_path={checkpoint}", "mode=samples", "num=60000", "out=large.npz", cwd=tmp_path)
    assert (tmp_path / "large.npz").stat().st_size > 60000 * 32 * 32 * 3
    assert large - small < 80, (small, large)


def test_the_onnx_export_takes_both_z_shapes_any_batch_and_matches_g(checkpoint: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "g.onnx"
    run(generate_cfg(f"ckpt_path={checkpoint}", "mode=export", f"out={out}"))
    session = ort.InferenceSession(str(out))  # the README's three lines
    generator, _ = load_generator(str(checkpoint), torch.device("cpu"))
    for batch in (1, 7, 300):
        z = torch.randn(batch, 16)
        with torch.no_grad():
            expected = generator(z).numpy()
        for shaped in (z, z[:, :, None, None]):  # (B, nz) and the tutorial's (B, nz, 1, 1)
            (images,) = session.run(None, {"z": shaped.numpy()})
            assert images.shape == (batch, 3, 32, 32)
            np.testing.assert_allclose(images, expected, atol=1e-5)
    meta = {p.key: p.value for p in __import__("onnx").load(str(out)).metadata_props}
    assert meta["nz"] == "16"


def test_the_grid_is_rendered_in_chunks_and_equals_torchvisions(checkpoint: Path, tmp_path: Path) -> None:
    generator, _ = load_generator(str(checkpoint), torch.device("cpu"))
    seen: list[int] = []
    generator.register_forward_pre_hook(lambda m, args: seen.append(len(args[0])))
    z = torch.randn(37, 16)
    grid = grid_image(generator, z, nrow=8, device=torch.device("cpu"), batch_size=10)
    assert seen == [10, 10, 10, 7]  # memory does not grow with num: num=100000 is 10,000 small batches
    with torch.no_grad():
        save_image(generator(z), tmp_path / "reference.png", nrow=8, normalize=True, value_range=(-1, 1))
    assert grid.tobytes() == Image.open(tmp_path / "reference.png").convert("RGB").tobytes()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["num=0"], r"num=0: must be a whole number >= 1"),
        (["num=-1"], r"num=-1: must be a whole number >= 1"),
        (["mode=interpolate", "points=1"], r"points=1: must be a whole number >= 2"),
        (["mode=sketch"], r"mode='sketch': must be one of grid, interpolate, samples, export"),
        (["out=no/such/folder/grid.png"], r"out='no/such/folder/grid.png': the folder no/such/folder does not exist"),
        (["mode=export", "out=g.pt"], r"out='g.pt': mode=export writes a torch.export program \(g.pt2.*\(g.onnx\)"),
        (["mode=samples", "out=s.png"], r"out='s.png': mode=samples writes a .npz file .* or a folder of PNGs"),
    ],
)
def test_bad_generate_arguments_are_refused_naming_the_key(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        run(generate_cfg(f"ckpt_path={checkpoint}", *overrides))


@pytest.mark.parametrize("mode", ["grid", "interpolate", "export"])
def test_generate_into_a_read_only_folder_is_refused_before_rendering(
    checkpoint: Path, read_only_dir: Path, mode: str
) -> None:
    out = read_only_dir / ("x.pt2" if mode == "export" else "x.png")
    with pytest.raises(ConfigError, match=rf"out='{out}': cannot write into {read_only_dir} \(.*\); choose another"):
        run(generate_cfg(f"ckpt_path={checkpoint}", f"mode={mode}", f"out={out}"))


def test_generate_on_the_command_line_without_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    proc = cli("generate", cwd=tmp_path)  # the real entry point, as a user types it
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip() == (
        "error: ckpt_path is not set: pass a checkpoint, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt."
    )


def test_slerp_keeps_the_endpoints_and_the_norm() -> None:
    a, b = torch.randn(5, 16), torch.randn(5, 16)
    path = slerp(a, b, torch.tensor([0.0, 0.5]))
    assert torch.allclose(path[0], a, atol=1e-5)
    assert path.shape == (2, 5, 16)


def test_evaluate_writes_fid_kid_and_the_protocol(
    checkpoint: Path, tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "report.json"
    args = [f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=50",
            "metrics.num_fake_train=50",
            f"out={out}", f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    evaluate.report(evaluate_cfg(*args))
    report = json.loads(out.read_text())
    assert (
        report["fid"] > 0 and report["kid"]["std"] >= 0 and 0 <= report["precision"] <= 1 and 0 <= report["recall"] <= 1
    )
    protocol = report["protocol"]
    assert protocol["num_fake"] == 50 and protocol["resolution"] == 32
    # 12 held-out images are too few to score against (metrics.min_heldout): the 108 training images stand in.
    assert protocol["num_real"] == 108 and protocol["reference"]["split"] == "train"
    assert "fewer than metrics.min_heldout=1000" in protocol["reference"]["why"]
    assert "no antialias" in protocol["resize"] and protocol["extractor"].startswith("torchscript:")
    # The tiny stand-in pools to a size ONNX cannot export, so torch ran it, and the report says why.
    assert protocol["extractor_runtime"].startswith("torch: ONNX Runtime cannot run this net")
    # Against the training images: fid5k-train's protocol (here with 50 samples) and the copy check with its grid.
    assert protocol["name"] == "fid0.05k-train" and protocol["reference"]["is_training_set"] is True
    copy_check = report["copy_check"]
    assert copy_check["nn_ratio"] > 0 and copy_check["warn_below"] == COPY_WARNING_RATIO
    assert Image.open(copy_check["grid"]).size == (8 * 34 + 2, 4 * 34 + 2)  # 16 samples above their nearest images
    printed = capsys.readouterr().out
    assert f"FID {report['fid']:.2f}" in printed and f"recall {report['recall']:.3f}" in printed
    assert "reference: the 108 training images" in printed and "protocol fid0.05k-train" in printed
    assert f"copy check: nn_ratio {copy_check['nn_ratio']:.2f}" in printed


@pytest.mark.parametrize(("batch_size", "expected"), [("null", CPU_BATCH), ("7", 7)])
def test_evaluate_feeds_the_inception_metrics_batch_size_or_the_cpus_own(
    checkpoint: Path,
    tmp_path: Path,
    tiny_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_size: str,
    expected: int,
) -> None:
    passes: list[int] = []

    def record(_: torch.nn.Module, inputs: tuple[torch.Tensor]) -> None:
        if inputs[0].ndim == 4:  # images; torchmetrics hands it features too
            passes.append(len(inputs[0]))

    def recording_extractor(*args: object) -> torch.nn.Module:
        extractor = load_extractor(*args)
        extractor.register_forward_pre_hook(record)
        return extractor

    monkeypatch.setattr(evaluate, "load_extractor", recording_extractor)
    args = [f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake_train=50",
            f"metrics.batch_size={batch_size}", f"out={tmp_path / 'report.json'}",
            f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    evaluate.report(evaluate_cfg(*args))
    # The 108 real training images, then the 50 samples, never more than `expected` images per pass.
    assert sum(passes) == 108 + 50 and max(passes) == expected
    samples = [len(chunk) for chunk in torch.arange(50).split(expected)]
    assert passes[-len(samples) :] == samples


def test_the_inceptions_batch_is_the_configs_or_the_devices_own() -> None:
    assert extractor_batch_size(None, torch.device("cpu")) == CPU_BATCH == 10
    assert extractor_batch_size(None, torch.device("cuda")) == GPU_BATCH == 50  # the GPU path as it always was
    assert extractor_batch_size(25, torch.device("cpu")) == 25 and extractor_batch_size(25, torch.device("cuda")) == 25


def test_evaluate_on_the_command_line_refuses_an_unwritable_report_path_before_computing(
    checkpoint: Path, tmp_path: Path, read_only_dir: Path, tiny_weights: Path
) -> None:
    out = read_only_dir / "report.json"
    proc = cli("evaluate", f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", f"out={out}",
               f"paths.data_dir={tmp_path / 'data'}", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"error: out='{out}': cannot write into {read_only_dir}")
    assert "reference:" not in proc.stdout  # refused before the data was read or a sample drawn


def test_generate_refuses_a_file_that_is_not_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x.ckpt").write_text("nope")
    code, stderr = exits(generate.cli, generate_cfg(f"ckpt_path={tmp_path / 'x.ckpt'}", f"out={tmp_path / 'g.png'}"),
                         capsys)  # fmt: skip
    assert (
        code == 2
        and stderr.startswith("error: ckpt_path=")
        and "it is a text file (4 bytes, starting 'nope')" in (stderr)
    )


def test_evaluate_refuses_data_of_another_resolution(
    checkpoint: Path, tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = evaluate_cfg(f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", "data=synthetic",
                       "data.image_size=64", "data.num_images=50", f"paths.data_dir={tmp_path / 'data'}",
                       f"out={tmp_path / 'r.json'}")  # fmt: skip
    code, stderr = exits(evaluate.report, cfg, capsys)
    assert code == 2, stderr
    assert "does not fit this data: image_size=32 in the checkpoint but data.image_size=64" in stderr


def test_ctrl_c_in_evaluate_and_generate_is_one_line_and_code_130(
    checkpoint: Path, tmp_path: Path, tiny_weights: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Python's Ctrl-C handler raises KeyboardInterrupt in whatever op is running: a traceback into the Inception
    or G, before. Now one line, and the shell's code for Ctrl-C."""

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "features", ctrl_c)  # in the middle of the score
    out = tmp_path / "report.json"
    cfg = evaluate_cfg(f"ckpt_path={checkpoint}", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=20",
                       "metrics.num_fake_train=20", f"out={out}", f"paths.data_dir={tmp_path / 'data'}")  # fmt: skip
    code, stderr = exits(evaluate.report, cfg, capsys)
    assert (code, stderr) == (130, "interrupted by Ctrl-C: no report was written\n") and not out.exists()

    monkeypatch.setattr(generate, "grid_image", ctrl_c)  # while G renders the grid
    code, stderr = exits(generate.cli, generate_cfg(f"ckpt_path={checkpoint}", f"out={tmp_path / 'g.png'}"), capsys)
    assert (code, stderr) == (130, "interrupted by Ctrl-C: mode=grid stopped; what it had written may be incomplete\n")
