"""The Inception feature extractor behind FID and KID: torchmetrics' own, or a local TorchScript TF-Inception.

Images go in as uint8 (N, 1 or 3, H, W). Grayscale repeats to 3 channels. Both extractors resize to 299x299
with plain bilinear interpolation, no antialiasing, which is what the 2015 TF-Inception FID reference does to
its inputs; antialiasing would smooth GAN textures and lower FID against published numbers.
"""

import hashlib
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dcgan_lit.errors import ConfigError
from dcgan_lit.metrics.onnx_inception import RUNTIMES, onnx_inception
from dcgan_lit.precision import resolve_extractor_precision

FEATURES = 2048
CPU = torch.device("cpu")
PRECISIONS = ("fp32", "bf16", "auto")  # of the extractor (auto: bf16 where fast); every reported figure is fp32


class FIDFeatures(nn.Module):
    """uint8 images -> (N, 2048) pool features; (N, 2048) float rows pass through unchanged.

    The pass-through lets real-image features cached on disk feed a torchmetrics FID/KID metric through its
    normal `update()`, so the statistics are always computed by torchmetrics.

    Args:
        net: a TorchScript TF-Inception taking (N, 3, 299, 299) in (x - 128) / 128, or torchmetrics' extractor.
        tf_range: whether `net` wants the TF input range and our resize (True), or takes uint8 as it is (False).
        name: how the protocol names this extractor in JSON reports and logs.
        num_features: the width of the features the net returns (2048 for TF-Inception).
        identity: what the extractor is by content (a hash of its weights file), for cache keys; default `name`.
        bf16: run the net under bf16 autocast. Its features differ from fp32's by about 2% of their magnitude, so
            its scores are for monitoring only (logged as val/fid_bf16, ...), and they are cached apart.
        chosen_by: why it runs in this precision, for the log (see `resolve_extractor_precision`).
        device: where it will run. On a CPU an fp32 TorchScript net runs through ONNX Runtime when `cpu_runtime` is
            "auto" and ONNX Runtime reproduces its features (`onnx_inception`), else as `cpu_graph` rewrites it.
        cpu_runtime: "auto" or "torch" (metrics.cpu_runtime); `runtime` says which ran and why.
    """

    def __init__(
        self,
        net: nn.Module,
        tf_range: bool,
        name: str,
        identity: str | None = None,
        num_features: int = FEATURES,
        bf16: bool = False,
        chosen_by: str = "metrics.extractor_precision=fp32",
        device: torch.device = CPU,
        cpu_runtime: str = "auto",
    ) -> None:
        super().__init__()
        self.net, self.tf_range, self.bf16, self.chosen_by = net, tf_range, bf16, chosen_by
        self.name = f"{name} (bf16 autocast)" if bf16 else name
        self.identity = f"{identity or name}|bf16" if bf16 else identity or name
        self.num_features = num_features  # torchmetrics reads this instead of probing the net itself
        # The CPU twin of a TorchScript net; outside the module tree, so .to() leaves it alone.
        self._cpu_net: list[nn.Module] = []
        self.runtime = f"the net as loaded, on {device.type}"
        if tf_range and isinstance(net, torch.jit.ScriptModule):
            twin = None
            if device.type == "cpu" and cpu_runtime == "torch":
                self.runtime = "torch (metrics.cpu_runtime=torch)"
            elif device.type == "cpu" and bf16:
                self.runtime = "torch: bf16 autocast, which ONNX Runtime does not replace"
            elif device.type == "cpu":
                twin, self.runtime = onnx_inception(net, torch.get_num_threads())
                if twin is not None and not same_features(net, twin):  # a file of another shape never changes a score
                    twin, self.runtime = None, "torch: ONNX Runtime's features differ from the TorchScript net's"
            self._cpu_net = [twin or cpu_graph(net)]

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.tf_range:
            x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
            # NHWC: convolutions run 1.4x faster on a 2-core CPU (11.3 instead of 8.0 img/s), features equal within
            # 1e-6 relative (BENCHMARKS.md).
            x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
        net = self._cpu_net[0] if self._cpu_net and x.device.type == "cpu" else self.net
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return net(x).reshape(len(x), -1).float()


def cpu_graph(net: torch.jit.ScriptModule) -> nn.Module:
    """The TorchScript TF-Inception rewritten for a CPU: the same features, 1.4x faster in fp32, 2.3 to 4x in bf16.

    Three rewrites of the frozen graph, each exact up to float rounding (features within 2e-6 relative in fp32):
    - its inception blocks call `.contiguous()` before every concatenation, which turns channels-last activations
      back into NCHW; there pooling runs 6x slower and the next convolution converts back. They keep channels-last.
    - each weight is cast to the input's dtype at run time, which hides it from constant folding; the casts go
      (autocast casts a convolution's weight itself).
    - then BatchNorm folds into the convolution before it, which removes a memory pass per layer.
    A net without these patterns is frozen and otherwise left as it is. The result is checked against `net` on
    two inputs, and `net` is kept if they differ, so a TorchScript file of another shape can never change a score.
    Frozen constants live on the CPU, so this serves CPU inputs only; on a GPU `net` runs as it is.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.freeze` is deprecated", FutureWarning)
        frozen = torch.jit.freeze(net.eval())
    graph = frozen.graph
    for node in graph.findAllNodes("aten::contiguous"):
        layout = graph.insertConstant(2)  # the memory-format enum: 2 is torch.channels_last
        layout.node().moveBefore(node)
        node.replaceInput(1, layout)
    for node in graph.findAllNodes("aten::to"):
        if node.inputsAt(0).node().kind() == "prim::Constant":  # a weight cast to the input's dtype
            node.output().replaceAllUsesWith(node.inputsAt(0))
            node.destroy()
    torch._C._jit_pass_dce(graph)
    torch._C._jit_pass_fold_frozen_conv_bn(graph)
    return frozen if same_features(net, frozen, torch.channels_last) else net


def same_features(net: nn.Module, twin: nn.Module, layout: torch.memory_format = torch.contiguous_format) -> bool:
    """Whether a faster twin of `net` gives its features, within float rounding, on two seeded inputs (fed to the
    twin in `layout`): the check that keeps a rewrite or another runtime from ever changing a score."""
    probe = torch.randn(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = net(probe).reshape(2, -1), twin(probe.contiguous(memory_format=layout)).reshape(2, -1)
    return torch.allclose(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def file_sha256(path: str) -> str:
    """The file's content hash: the same weights under another name or path are the same extractor."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_precision(precision: str) -> None:
    """Refuse a `metrics.extractor_precision` that is not one of PRECISIONS, naming the key."""
    if precision not in PRECISIONS:
        raise ConfigError(f"metrics.extractor_precision={precision!r}: must be one of {', '.join(PRECISIONS)}.")


def check_runtime(runtime: str) -> None:
    """Refuse a `metrics.cpu_runtime` that is not one of RUNTIMES, naming the key."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"metrics.cpu_runtime={runtime!r}: must be one of {', '.join(RUNTIMES)}.")


def load_extractor(
    inception_weights: str | None, precision: str = "fp32", device: torch.device = CPU, cpu_runtime: str = "auto"
) -> FIDFeatures:
    """The TorchScript file at `inception_weights`, or torchmetrics' FID Inception (downloaded when online); with
    precision="bf16", run under bf16 autocast (monitoring only); "auto" is bf16 where `device` runs it fast.
    `cpu_runtime` is FIDFeatures'."""
    check_precision(precision)
    check_runtime(cpu_runtime)
    precision, chosen_by = resolve_extractor_precision(precision, device)
    bf16 = precision == "bf16"
    if inception_weights:
        try:
            with warnings.catch_warnings():  # the weights only exist as TorchScript: nothing for a user to change
                warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated", FutureWarning)
                net = torch.jit.load(inception_weights, map_location="cpu").eval()
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(
                f"metrics.inception_weights={inception_weights!r} cannot be loaded as TorchScript ({e}); "
                "`make fid-weights` fetches the TF-Inception that this option expects."
            ) from e
        with torch.no_grad():  # 2048 for TF-Inception; the width of whatever net the file holds
            width = net(torch.zeros(1, 3, 299, 299)).reshape(1, -1).shape[1]
        identity = f"sha256:{file_sha256(inception_weights)}"
        name = f"torchscript:{inception_weights}"
        return FIDFeatures(
            net, True, name, identity, width, bf16, chosen_by=chosen_by, device=device, cpu_runtime=cpu_runtime
        )
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3

        net = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(FEATURES)], antialias=False)
    except Exception as e:  # no torch-fidelity, or no network for the weights
        raise ConfigError(
            f"metrics: torchmetrics' FID Inception is unavailable ({type(e).__name__}: {e}). Offline, run "
            "`make fid-weights` and pass metrics.inception_weights=data/fid/default_1.pt, or set metrics=none."
        ) from e
    return FIDFeatures(net, tf_range=False, name="torchmetrics:inception-v3-compat", bf16=bf16, chosen_by=chosen_by)
