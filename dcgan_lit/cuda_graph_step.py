"""The GAN step's forward and backward passes replayed as two CUDA graphs; the optimizer steps stay eager.

A DCGAN-64 step is hundreds of small kernels, so on a fast GPU an eager step waits on Python and kernel launches.
Capturing the D pass (G forward, D on real and fake, D backward) and the G pass (D on the fake, G backward) as
CUDA graphs removes that launch cost while everything Lightning tracks stays eager and visible: `opt.step()` runs
through Lightning's optimizers, so global_step, optimizer hooks, checkpoints and resume work unchanged.

The update is the eager one: same losses, same BatchNorm statistics updates, same z draw from the same generator,
and grads zeroed then accumulated instead of set to None (0 + g == g). `tests/test_cuda_graph.py` checks it
against the eager step on a GPU; BENCHMARKS.md records the result.
"""

from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from dcgan_lit.errors import ConfigError

# Precisions the graphs can replay: fp16 needs a GradScaler, whose inf checks read values back on the host.
GRAPH_PRECISIONS: tuple[str, ...] = ("32-true", "32", "bf16-mixed", "bf16-true")

# Eager steps before capture: cuDNN's autotuner and the optimizers' lazy state must settle first.
WARMUP_STEPS = 3


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


class CudaGraphStep:
    """Runs `module`'s GAN step for fixed-shape batches, capturing it after WARMUP_STEPS eager steps.

    The module provides the three pieces of Algorithm 1 it also runs eagerly:
    `generator(z)`, `discriminator_loss(real, fake) -> (loss, d_real, d_fake)` and
    `generator_loss(fake) -> (loss, d_fake)`, plus `step_stats(...)`, which packs the logged scalars.

    Args:
        module: the DCGAN LightningModule.
        eager_step: the module's eager step `(real, opt_d, opt_g) -> stats`, used for warm-up and odd batches.
    """

    def __init__(self, module: LightningModule, eager_step: Callable[..., Tensor]) -> None:
        self.module, self.eager_step = module, eager_step
        self.warmups_left = WARMUP_STEPS
        self.stream = torch.cuda.Stream(module.device)
        self.graph_d: torch.cuda.CUDAGraph | None = None
        self.graph_g: torch.cuda.CUDAGraph | None = None
        self.real: Tensor | None = None  # static input buffers the graphs read
        self.z: Tensor | None = None
        self.stats: Tensor | None = None  # static output the G graph writes
        self._static: tuple[Tensor, ...] = ()  # the graphs' intermediate outputs, kept alive with the graphs
        self._warned_shape = False

    def __call__(self, real: Tensor, opt_d: LightningOptimizer, opt_g: LightningOptimizer) -> Tensor:
        if self.graph_d is None:
            if self.warmups_left > 0:
                self.warmups_left -= 1
                return self._on_capture_stream(self.eager_step, real, opt_d, opt_g)
            self._capture(real, opt_d, opt_g)
        if real.shape != self.real.shape or real.stride() != self.real.stride():
            if not self._warned_shape:
                rank_zero_warn(
                    f"model.cuda_graph: a batch of shape {tuple(real.shape)} differs from the captured "
                    f"{tuple(self.real.shape)}; such batches run eagerly (keep drop_last=True for full speed)."
                )
                self._warned_shape = True
            return self.eager_step(real, opt_d, opt_g)
        return self._replay(real, opt_d, opt_g)

    def _replay(self, real: Tensor, opt_d: LightningOptimizer, opt_g: LightningOptimizer) -> Tensor:
        self.real.copy_(real)
        self.z.normal_()  # the same draw as the eager step's torch.randn(b, nz)
        self.graph_d.replay()
        opt_d.step()
        self.graph_g.replay()
        opt_g.step()
        return self.stats

    def _on_capture_stream(self, fn: Callable[..., Tensor], *args: object) -> Tensor:
        """Run fn on the side stream that capture uses, as PyTorch's CUDA-graph warm-up recipe asks."""
        current = torch.cuda.current_stream(self.module.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            out = fn(*args)
        current.wait_stream(self.stream)
        return out

    def _capture(self, real: Tensor, opt_d: LightningOptimizer, opt_g: LightningOptimizer) -> None:
        m = self.module
        d_params = [p for g in opt_d.param_groups for p in g["params"]]
        g_params = [p for g in opt_g.param_groups for p in g["params"]]
        for p in d_params + g_params:
            if p.grad is None:  # the graphs write into these very tensors; the eager optimizers read them
                p.grad = torch.zeros_like(p)
        d_grads, g_grads = [p.grad for p in d_params], [p.grad for p in g_params]
        self.real = torch.empty_like(real)
        self.z = torch.empty(real.size(0), m.hparams.nz, device=real.device)
        # The autocast cache would hand the graph weight casts made outside it; it must be off while capturing.
        autocast = torch.autocast(
            "cuda",
            dtype=torch.get_autocast_dtype("cuda"),
            enabled=torch.is_autocast_enabled("cuda"),
            cache_enabled=False,
        )
        self.graph_d, self.graph_g = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
        torch.cuda.synchronize(m.device)
        with autocast:
            # (1) D pass: the fake's autograd graph stays alive for the G pass, in the pool both graphs share.
            with torch.cuda.graph(self.graph_d, stream=self.stream):
                fake = m.generator(self.z)
                m.toggle_optimizer(opt_d)
                d_loss, d_real, d_fake = m.discriminator_loss(self.real, fake.detach())
                torch._foreach_zero_(d_grads)
                d_loss.backward()
                m.untoggle_optimizer(opt_d)
            # (2) G pass, with D's parameters frozen so no D weight gradients are computed.
            with torch.cuda.graph(self.graph_g, stream=self.stream, pool=self.graph_d.pool()):
                m.toggle_optimizer(opt_g)
                g_loss, d_fake_for_g = m.generator_loss(fake)
                torch._foreach_zero_(g_grads)
                g_loss.backward()
                m.untoggle_optimizer(opt_g)
                self.stats = m.step_stats(d_loss, g_loss, d_real, d_fake, d_fake_for_g)
        self._static = (fake, d_loss, d_real, d_fake, g_loss, d_fake_for_g)
        torch.cuda.synchronize(m.device)
        rank_zero_info(f"model.cuda_graph: captured the D and G passes for batches of {tuple(real.shape)}")
