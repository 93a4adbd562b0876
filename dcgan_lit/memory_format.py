"""NHWC (channels_last) weights and inputs, which tensor-core convolutions prefer, and the optimizer states to match."""

from collections.abc import Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from dcgan_lit.precision import cpu_bf16


def memory_format_for(
    channels_last: bool | None, device: torch.device, precision: str = "32-true"
) -> torch.memory_format:
    """channels_last when asked to, or by default (None) on a GPU and on the CPU in bf16 (oneDNN's AMX kernels
    want NHWC); contiguous (NCHW) otherwise."""
    default = device.type == "cuda" or cpu_bf16(device, precision)
    wanted = channels_last if channels_last is not None else default
    return torch.channels_last if wanted else torch.contiguous_format


def relayout_optimizer_states(optimizers: Iterable[Optimizer]) -> None:
    """Give each optimizer state tensor its parameter's layout, e.g. after resuming a run saved in the other one."""
    for opt in optimizers:
        for param, state in opt.state.items():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param).copy_(value)
