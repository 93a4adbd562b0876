"""benchmarks/py_spy_summary.py: the shares it reports from a py-spy raw profile."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO


def load_summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("py_spy_summary", REPO / "benchmarks" / "py_spy_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOOP = "_TrainingEpochLoop.run (lightning/pytorch/loops/training_epoch_loop.py:153)"
STEP = "DCGAN.gan_step (dcgan_lit/module.py:159)"
BACKWARD = "LightningModule.manual_backward (lightning/pytorch/core/module.py:1118)"
# What `py-spy record --native --format raw` writes: Python frames, then C++ frames, then anonymous JIT code.
PROFILE = "\n".join(
    [
        "<module> (dcgan_lit/train.py:16);CDLL.__init__ (ctypes/__init__.py:376) 40",  # start-up: not in the loop
        f"main (dcgan_lit/train.py:233);{LOOP};{STEP};{BACKWARD};_engine_run_backward (torch/autograd/graph.py:1072);"
        "torch::autograd::Engine::thread_main (libtorch_cpu.so);at::_ops::convolution_backward::call (libtorch_cpu.so);"
        "at::_ops::convolution_backward::redispatch (libtorch_cpu.so);dnnl::impl::parallel (libtorch_cpu.so);"
        "0x7f96be21de62 (libgomp.so.1) 6",
        f"main (dcgan_lit/train.py:233);{LOOP};{STEP};Conv2d._conv_forward (torch/nn/modules/conv.py:560);"
        "at::_ops::conv2d::call (libtorch_cpu.so);at::_ops::convolution::call (libtorch_cpu.so) 3",
        f"main (dcgan_lit/train.py:233);{LOOP};_ResultCollection.log (lightning/pytorch/trainer/result.py:400) 1",
        " 7",  # a thread with no Python frame
    ]
)


def test_shares_count_only_the_loop_and_group_native_frames_by_their_aten_op(tmp_path: Path) -> None:
    summary = load_summary()
    path = tmp_path / "profile.txt"
    path.write_text(PROFILE + "\n")
    report = summary.summarize(summary.read_stacks(path), "_TrainingEpochLoop.run", ["gan_step", "manual_backward"], 5)
    lines = report.splitlines()
    assert lines[0] == "10 samples under '_TrainingEpochLoop.run'"  # start-up and the frameless thread left out
    assert lines[1:3] == ["   90.0% inside gan_step", "   60.0% inside manual_backward"]
    # The outermost op names a sample, so conv2d's inner convolution call does not split it; without an op, the
    # innermost Python frame does.
    assert lines[4:] == [
        "   60.0% aten::convolution_backward",
        "   30.0% aten::conv2d",
        "   10.0% _ResultCollection.log",
    ]


def test_a_profile_in_another_format_is_refused_with_the_line_and_the_fix(tmp_path: Path) -> None:
    summary = load_summary()
    path = tmp_path / "profile.svg"
    path.write_text("<svg>\n")
    with pytest.raises(SystemExit, match=r"profile.svg:1: not a py-spy raw line .* record with --format raw"):
        summary.read_stacks(path)
