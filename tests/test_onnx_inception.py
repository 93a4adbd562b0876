"""The fp32 TorchScript Inception on a CPU through ONNX Runtime: the same features as torch, or torch with a reason."""

import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from dcgan_lit.callbacks.sample_quality import SampleQuality
from dcgan_lit.errors import ConfigError
from dcgan_lit.metrics.features import FIDFeatures, load_extractor
from dcgan_lit.metrics.onnx_inception import OnnxInception


class ExportableInception(nn.Module):
    """(N, 3, 299, 299) -> (N, 32): convolutions, BatchNorm and a global pool, which ONNX takes as they are (the
    tests' TinyInception pools to a size that does not divide its map, which the ONNX exporter refuses)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn = nn.Conv2d(3, 16, 3, stride=2), nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2)
        self.bn.running_mean.uniform_(-0.1, 0.1)
        self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.conv1(x)))
        return torch.relu(self.conv2(x)).mean(dim=(2, 3), keepdim=True)  # (N, 32, 1, 1), like TF-Inception's pool


@pytest.fixture(scope="module")
def exportable_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fid") / "exportable_inception.pt"
    torch.jit.script(ExportableInception().eval()).save(str(path))
    return path


def images(n: int = 6) -> Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_onnx_runtime_runs_the_cpu_fp32_inception_with_torchs_features(exportable_weights: Path) -> None:
    pytest.importorskip("onnxruntime")
    fast = load_extractor(str(exportable_weights))
    plain = load_extractor(str(exportable_weights), cpu_runtime="torch")
    assert isinstance(fast._cpu_net[0], OnnxInception) and fast.runtime.startswith("onnxruntime ")
    assert not isinstance(plain._cpu_net[0], OnnxInception) and plain.runtime == "torch (metrics.cpu_runtime=torch)"
    want, got = plain(images()), fast(images())
    assert got.shape == want.shape == (6, 32)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5 * want.abs().max().item())


def test_without_onnxruntime_torch_runs_and_says_how_to_get_it(
    exportable_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    extractor = load_extractor(str(exportable_weights))
    assert not isinstance(extractor._cpu_net[0], OnnxInception)
    assert extractor.runtime.startswith("torch: onnxruntime is not installed (pip install onnx onnxruntime")


def test_onnx_runtime_features_that_differ_from_torchs_are_never_used(
    exportable_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    run = OnnxInception.forward
    monkeypatch.setattr(OnnxInception, "forward", lambda self, x: run(self, x) * 1.01)
    extractor = load_extractor(str(exportable_weights))
    assert not isinstance(extractor._cpu_net[0], OnnxInception)
    assert extractor.runtime == "torch: ONNX Runtime's features differ from the TorchScript net's"


def test_bf16_and_a_net_the_exporter_refuses_stay_with_torch(exportable_weights: Path, tiny_weights: Path) -> None:
    bf16 = load_extractor(str(exportable_weights), precision="bf16")
    assert bf16.runtime == "torch: bf16 autocast, which ONNX Runtime does not replace"
    refused = load_extractor(str(tiny_weights))  # adaptive pooling to 4 of a 73 px map: not exportable
    assert not isinstance(refused._cpu_net[0], OnnxInception) and refused.runtime.startswith("torch: ")
    gpu = FIDFeatures(torch.jit.load(str(exportable_weights)), True, "x", device=torch.device("meta"))
    assert gpu.runtime == "the net as loaded, on meta"  # not a CPU: nothing is exported


def test_a_bad_cpu_runtime_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"metrics.cpu_runtime='onnx': must be one of auto, torch"):
        load_extractor(None, cpu_runtime="onnx")
    with pytest.raises(ConfigError, match=r"metrics.cpu_runtime='onnx'"):
        SampleQuality(cpu_runtime="onnx")  # at start-up, before any training
