"""The precision a run trains in when `trainer.precision=auto` (the default).

On a CPU with AMX-BF16 tiles (Intel Xeon from Sapphire Rapids on) convolutions and matmuls run 3x to 7x faster
in bf16 than in fp32 (BENCHMARKS.md), so training there uses bf16 autocast (`bf16-mixed`: fp32 weights and
optimizer states, bf16 convolutions) with channels-last tensors, which oneDNN's bf16 kernels want. Elsewhere,
a GPU included, `auto` is fp32 (`32-true`), as before; `trainer=gpu` sets bf16-mixed itself.
`trainer.precision=32-true` turns bf16 off.
"""

from pathlib import Path

import torch

AUTO = "auto"
CPUINFO = Path("/proc/cpuinfo")


def cpu_bf16(device: torch.device, precision: str) -> bool:
    """Whether a run trains on the CPU in bf16 autocast, the path whose layout and D calls are chosen for AMX."""
    return device.type == "cpu" and "bf16" in precision


def cpu_has_amx_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU advertises AMX tiles with bf16 (Linux's `amx_bf16` and `amx_tile` flags)."""
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux: no way to tell, so fp32
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"amx_bf16", "amx_tile"} <= set(flags) and torch.backends.mkldnn.is_available()


def has_amx_bf16(amx_bf16: bool | None) -> bool:
    """`amx_bf16` when given (tests, callers that know), else what this CPU's flags say."""
    return cpu_has_amx_bf16() if amx_bf16 is None else amx_bf16


def trains_on_cpu(accelerator: str) -> bool:
    """Whether `trainer.accelerator` resolves to the CPU (`auto` does when there is no GPU)."""
    if accelerator == "auto":
        return not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return accelerator == "cpu"


def resolve_precision(precision: str, accelerator: str, amx_bf16: bool | None = None) -> tuple[str, str]:
    """(the precision to train in, why): `auto` picks bf16-mixed on an AMX-BF16 CPU and 32-true elsewhere."""
    if precision != AUTO:
        return precision, f"trainer.precision={precision}"
    if not trains_on_cpu(accelerator):
        return "32-true", "trainer.precision=auto on an accelerator; trainer=gpu for bf16"
    if has_amx_bf16(amx_bf16):
        return "bf16-mixed", "trainer.precision=auto: this CPU has AMX-BF16; trainer.precision=32-true for fp32"
    return "32-true", "trainer.precision=auto: this CPU has no AMX-BF16"


def emulated_bf16(key: str, precision: str, on_cpu: bool, amx_bf16: bool | None = None) -> str | None:
    """A warning when `key` asks for bf16 by name on a CPU without AMX-BF16, else None. Such a CPU has no bf16
    arithmetic and emulates it: on a 2-core AMD EPYC a GAN step ran 27x slower than in fp32 and the FID Inception
    7x slower (BENCHMARKS.md, "A CPU without AMX"). `auto` never picks bf16 there, so only a typed value, or a
    config written for another machine, gets here; the run goes on as asked."""
    if not on_cpu or "bf16" not in precision or has_amx_bf16(amx_bf16):
        return None
    return (
        f"{key}={precision} on a CPU without AMX-BF16, which emulates bf16: on a 2-core AMD EPYC a GAN step ran "
        f'27x and the FID Inception 7x slower in bf16 than in fp32 (BENCHMARKS.md, "A CPU without AMX"). '
        f"{key}=auto runs fp32 on this CPU."
    )


def resolve_extractor_precision(requested: str, device: torch.device, amx_bf16: bool | None = None) -> tuple[str, str]:
    """(the FID Inception's precision, why): `auto` picks bf16 where it is the fast path (a GPU, or a CPU with
    AMX-BF16) and fp32 elsewhere. Without AMX-BF16 a CPU emulates bf16 and the Inception runs about 7x slower than
    in fp32 (1.6 against 11.8 img/s on a 2-core AMD EPYC, BENCHMARKS.md), and fp32's scores are the exact ones."""
    if requested != AUTO:
        return requested, f"metrics.extractor_precision={requested}"
    if device.type == "cuda":
        return "bf16", "metrics.extractor_precision=auto on a GPU"
    if device.type == "cpu" and has_amx_bf16(amx_bf16):
        return "bf16", "metrics.extractor_precision=auto: this CPU has AMX-BF16"
    return "fp32", f"metrics.extractor_precision=auto: no AMX-BF16 on this {device.type}, where fp32 is the faster"
