"""The GAN step's forward and backward passes replayed as two CUDA graphs; the optimizer steps stay eager.

A DCGAN-64 step is hundreds of small kernels, so on a fast GPU an eager step waits on Python and kernel launches.
Capturing the module's own D pass (`d_backward`: G forward, D on real and fake, D backward) and G pass
(`g_backward`: D on the fake, G backward) as CUDA graphs removes that launch cost, while everything Lightning
tracks stays eager and visible: `opt.step()` runs through Lightning's optimizers, so global_step, optimizer hooks,
checkpoints and resume work unchanged.

Nothing of the algorithm is written here: the graphs hold exactly the module's passes, with grads zeroed rather
than set to None (0 + g == g) and z drawn by `normal_()` into a static buffer, the same draw as `torch.randn`.
The capture-and-replay plumbing runs on a `GraphBackend`; `tests/test_cuda_graph.py` swaps in one that replays
by calling the captured function again, so CI checks on the CPU that N steps here equal N eager steps.
"""

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from dcgan_lit.console import info
from dcgan_lit.errors import ConfigError

# Precisions the graphs can replay: fp16 needs a GradScaler, whose inf checks read values back on the host.
GRAPH_PRECISIONS: tuple[str, ...] = ("32-true", "32", "bf16-mixed", "bf16-true")

# Eager steps before capture: cuDNN's autotuner and the optimizers' lazy state must settle first.
WARMUP_STEPS = 3

log = logging.getLogger(__name__)


def cuda_graph_blocker(
    device: torch.device, world_size: int, precision: str, eager_only: str | None = None
) -> str | None:
    """Why a captured step cannot run here, or None when it can; `eager_only` is the model's own reason."""
    if eager_only:
        return eager_only
    if device.type != "cuda":
        return f"it needs a CUDA GPU and this run is on {device.type} (use trainer=gpu)"
    if world_size > 1:
        return f"it runs on one GPU and this run has {world_size} processes (DDP's gradient all-reduce is not captured)"
    if precision not in GRAPH_PRECISIONS:
        return f"trainer.precision={precision!r} is not one of {', '.join(GRAPH_PRECISIONS)}"
    return None


def use_cuda_graph(
    requested: bool | None, device: torch.device, world_size: int, precision: str, eager_only: str | None = None
) -> bool:
    """Resolve model.cuda_graph: None means 'where it can work'; true where it cannot is a config error."""
    blocker = cuda_graph_blocker(device, world_size, precision, eager_only)
    if requested and blocker:
        raise ConfigError(f"model.cuda_graph=true cannot be used: {blocker}; set model.cuda_graph=false.")
    return bool(requested is not False and blocker is None)


class GraphBackend:
    """CUDA graphs: captured on a side stream and replayed; the interface tests replace with a CPU stand-in."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.stream = device, torch.cuda.Stream(device)

    def new_graph(self) -> torch.cuda.CUDAGraph:
        return torch.cuda.CUDAGraph()

    def capture(self, graph: torch.cuda.CUDAGraph, fn: Callable[[], None], share_pool_with: object = None) -> None:
        """Record fn's kernels into graph (they do not run now); `graph.replay()` runs them."""
        pool = share_pool_with.pool() if share_pool_with is not None else None
        with torch.cuda.graph(graph, stream=self.stream, pool=pool):
            fn()

    def on_side_stream(self, fn: Callable[..., Tensor], *args: object) -> Tensor:
        """Run fn eagerly on the side stream that capture uses, as PyTorch's CUDA-graph warm-up recipe asks."""
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            out = fn(*args)
        current.wait_stream(self.stream)
        return out

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def capture_autocast(self) -> AbstractContextManager:
        # The autocast cache would hand the graph weight casts made outside it; it must be off while capturing.
        return torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        )


class CudaGraphStep:
    """Runs `module`'s GAN step for fixed-shape batches, capturing its D and G passes after WARMUP_STEPS eager steps.

    Args:
        module: the DCGAN LightningModule, whose `d_backward`, `g_backward` and `step_stats` are captured.
        eager_step: the module's eager step `(real, opt_d, opt_g, set_to_none) -> stats`, for warm-up and odd batches.
        backend: where graphs are captured and replayed; None: CUDA graphs on the module's device.
    """

    def __init__(
        self, module: LightningModule, eager_step: Callable[..., Tensor], backend: GraphBackend | None = None
    ) -> None:
        self.module, self.eager_step = module, eager_step
        self.backend = backend or GraphBackend(module.device)
        self.warmups_left = WARMUP_STEPS
        self.graph_d: object = None
        self.graph_g: object = None
        self.real: Tensor | None = None  # static input buffers the graphs read
        self.z: Tensor | None = None
        self.fake: Tensor | None = None  # static outputs the graphs write: G(z), D's pass, the step's stats
        self.d_out: tuple[Tensor, ...] = ()
        self.stats: Tensor | None = None
        self._warned_shape = False

    def __call__(self, real: Tensor, opt_d: LightningOptimizer, opt_g: LightningOptimizer) -> Tensor:
        if self.graph_d is None:
            if self.warmups_left > 0:
                self.warmups_left -= 1
                return self.backend.on_side_stream(self.eager_step, real, opt_d, opt_g)
            self._capture(real, opt_d, opt_g)
        if real.shape != self.real.shape or real.stride() != self.real.stride():
            if not self._warned_shape:
                rank_zero_warn(
                    f"model.cuda_graph: a batch of shape {tuple(real.shape)} differs from the captured "
                    f"{tuple(self.real.shape)}; such batches run eagerly (keep drop_last=True for full speed)."
                )
                self._warned_shape = True
            return self.eager_step(real, opt_d, opt_g, set_to_none=False)  # the graphs own the grad tensors
        self.real.copy_(real)
        self.z.normal_()  # the same draw as the eager step's torch.randn(b, nz)
        self.graph_d.replay()
        opt_d.step()
        self.graph_g.replay()
        opt_g.step()
        return self.stats

    def _capture(self, real: Tensor, opt_d: LightningOptimizer, opt_g: LightningOptimizer) -> None:
        for p in (p for opt in (opt_d, opt_g) for group in opt.param_groups for p in group["params"]):
            if p.grad is None:  # the graphs write into these very tensors; the eager optimizers read them
                p.grad = torch.zeros_like(p)
        self.real = torch.empty_like(real)
        self.z = torch.empty(real.size(0), self.module.hparams.nz, device=real.device)
        self.graph_d, self.graph_g = self.backend.new_graph(), self.backend.new_graph()
        self.backend.synchronize()
        with self.backend.capture_autocast():
            # The fake's autograd graph stays alive for the G pass, in the memory pool both graphs share.
            self.backend.capture(self.graph_d, lambda: self._d_pass(opt_d))
            self.backend.capture(self.graph_g, lambda: self._g_pass(opt_g), share_pool_with=self.graph_d)
        self.backend.synchronize()
        info(log, f"model.cuda_graph: captured the D and G passes for batches of {tuple(real.shape)}")

    def _d_pass(self, opt_d: LightningOptimizer) -> None:
        self.fake, self.d_out = self.module.d_backward(self.real, self.z, opt_d, set_to_none=False)

    def _g_pass(self, opt_g: LightningOptimizer) -> None:
        g_out = self.module.g_backward(self.fake, opt_g, set_to_none=False)
        self.stats = self.module.step_stats(*self.d_out, *g_out)
