"""The TorchScript TF-Inception run by ONNX Runtime on a CPU: the same fp32 features, faster than torch's.

On a 2-core AMD EPYC (AVX2) ONNX Runtime's own convolution kernels ran the Inception at 13.0 img/s against 10.5
for torch's fastest CPU graph (`cpu_graph`) in a loop, in batches of 10, with features equal within 1.2e-6
relative; a whole fid5k-train evaluate took 432 instead of 484 s (1.12x) with the same FID to the last bit
(BENCHMARKS.md, "The Inception through ONNX Runtime"). bf16 stays with torch's autocast, which AMX runs faster.
"""

import io
import warnings

import torch
from torch import Tensor, nn

RUNTIMES = ("auto", "torch")  # of the fp32 TorchScript Inception on a CPU (auto: ONNX Runtime where installed)


class OnnxInception(nn.Module):
    """(N, 3, 299, 299) float in (x - 128) / 128 -> the net's output, through an ONNX Runtime session."""

    def __init__(self, session: object) -> None:
        super().__init__()
        self.session = session

    def forward(self, x: Tensor) -> Tensor:
        # ONNX Runtime reads dense NCHW memory; the copy from channels-last is 1% of a pass.
        out = self.session.run(None, {"x": x.float().contiguous().numpy()})[0]
        # A copy: the array ONNX Runtime returns held on to far more than itself. Kept for 5,000 samples it grew a
        # score's memory by 1.4 MB an image, against 0.2 MB in all with the copy (BENCHMARKS.md).
        return torch.from_numpy(out.copy())


def onnx_inception(net: torch.jit.ScriptModule, threads: int) -> tuple[OnnxInception | None, str]:
    """(the net in ONNX Runtime, or None; a line saying which runs and why). About 1.5 s, once per process. The
    caller checks the twin's features against `net` (`features.same_features`) before it scores with it."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime as ort
    except ImportError as e:
        return None, f"torch: {e.name} is not installed (pip install onnx onnxruntime: scores about 1.1x faster)"
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes: nothing for a user to do
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (torch.zeros(1, 3, 299, 299),),
                buffer,
                dynamo=False,  # the TorchScript exporter: the file is TorchScript, which dynamo cannot trace
                input_names=["x"],
                output_names=["features"],
                dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Idle threads would otherwise spin on the cores that training needs between two scores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: no notes on the console
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # an exporter or a runtime that cannot take this net: torch still can
        return None, f"torch: ONNX Runtime cannot run this net ({type(e).__name__}: {str(e)[:200]})"
    return OnnxInception(session), f"onnxruntime {ort.__version__}, {threads} threads"
