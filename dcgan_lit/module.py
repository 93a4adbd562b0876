"""The DCGAN LightningModule: Algorithm 1 of Goodfellow et al. (2014) with manual optimization."""

from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from dcgan_lit import losses, lr_schedule
from dcgan_lit.cuda_graph_step import CudaGraphStep, use_cuda_graph
from dcgan_lit.diffaugment import diff_augment, parse_policy
from dcgan_lit.errors import ConfigError
from dcgan_lit.memory_format import memory_format_for, relayout_optimizer_states
from dcgan_lit.precision import cpu_bf16

OptimizerFactory = Callable[..., Optimizer]  # a `_partial_: true` optimizer from YAML, completed with params and lr

# The scalars of every step, in the order `step_stats` packs them; training_step returns them as {"stats": ...}.
STAT_NAMES: tuple[str, ...] = ("train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z1", "train/D_G_z2")
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)


def joint_d_call_for(d_mixes_batch: bool, device: torch.device, precision: str, requested: bool | None = None) -> bool:
    """Whether D scores the real and the fake batch in one call: `requested` (model.joint_d_call) when set, else
    on a CPU in bf16, when D has no BatchNorm (the constructor refuses true for a D with BatchNorm).

    Without BatchNorm D scores each image on its own, so one call on both batches gives the logits of two. On AMX
    it makes the bf16 GAN step 1.47x faster at batch 32 (half the D calls, twice as wide convolutions, and
    spectral norm's power iteration once per D update, as in Miyato et al. (2018), Algorithm 1, instead of once
    per batch). In fp32 it is 0.92x at batch 32, so fp32 and the GPU path keep their two calls by default
    (BENCHMARKS.md, issue 22); at batch 16 in fp32 it is 1.06x, which `requested=True` is for (issue 23).
    With BatchNorm the batches stay apart, as the DCGAN tutorial keeps them: mixing them changes D's statistics.
    """
    if requested is not None:
        return requested
    return not d_mixes_batch and cpu_bf16(device, precision)


class DCGAN(LightningModule):
    """Trains `generator` against `discriminator`, one D update then one G update per batch.

    Args:
        generator, discriminator: z (B, nz) -> images (B, nc, S, S) in [-1, 1]; images -> logits (B,).
        optimizer_g, optimizer_d: optimizer factories called as `factory(params, lr=...)`.
        nz, image_size, nc: the latent size and image shape the nets are built for (kept in the checkpoint).
        lr_g, lr_d: learning rates of G and D, apart so TTUR-style sweeps need one override each.
        lr_decay_start: None keeps both rates constant; a fraction of training (0.5: half-way) after which both
            fall linearly to 0 at the last batch (lr_schedule.py).
        num_fixed_noise: size of the fixed latent batch whose samples are logged every epoch.
        channels_last: NHWC weights and inputs (None: on for GPUs, and for CPUs in bf16).
        cuda_graph: replay the step as CUDA graphs (cuda_graph_step.py); None: where it can work, true: insist.
        joint_d_call: D scores the real and the fake batch in one call (needs a D without BatchNorm); None: where
            it pays (`joint_d_call_for`), true or false: insist.
        loss: a `losses.LOSSES` name: bce (the tutorial's), hinge, lsgan or wgan-gp.
        real_label: D's target for real images; 0.9 is one-sided label smoothing.
        n_critic: D steps per G step; each extra D step draws fresh fakes.
        gp_weight: the weight of the loss's own penalty (wgan-gp's gradient penalty).
        diffaugment: DiffAugment policy for every image D sees, e.g. "color,translation,cutout".
        d_loss_weight: scales D's loss; 0.5 makes it (real + fake) / 2, as the fully connected GAN writes it.
        penalties: more D penalties, `{losses.PENALTIES name: weight}`.
        penalty_every: compute the penalties every n batches only, times n (lazy regularization, Karras et al.
            2020: R1 every 16 D steps costs a sixteenth of its double backward).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        nz: int = 100,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        lr_decay_start: float | None = None,
        image_size: int = 64,
        nc: int = 3,
        num_fixed_noise: int = 64,
        channels_last: bool | None = None,
        cuda_graph: bool | None = None,
        joint_d_call: bool | None = None,
        loss: str = "bce",
        real_label: float = 1.0,
        n_critic: int = 1,
        gp_weight: float = 10.0,
        diffaugment: str = "",
        d_loss_weight: float = 1.0,
        penalties: dict[str, float] | None = None,
        penalty_every: int = 1,
    ) -> None:
        super().__init__()
        penalties = {str(k): float(v) for k, v in (penalties or {}).items()}  # no DictConfig in checkpoints
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.automatic_optimization = False
        self.loss, self.penalties = losses.resolve(loss, gp_weight, penalties)  # {penalty name: weight}
        self.augment_policy = parse_policy(diffaugment)
        if n_critic < 1:
            raise ConfigError(f"model.n_critic={n_critic!r}: must be a whole number >= 1.")
        if penalty_every < 1:
            raise ConfigError(f"model.penalty_every={penalty_every!r}: must be a whole number >= 1.")
        lr_schedule.check_decay_start(lr_decay_start)
        if getattr(generator, "nz", nz) != nz:
            raise ConfigError(f"model.nz={nz} but the generator was built with nz={generator.nz}; set them equal.")
        self.d_mixes_batch = any(isinstance(m, BATCH_NORMS) for m in discriminator.modules())
        if self.penalties and self.d_mixes_batch:
            # A gradient penalty is a per-image gradient norm; BatchNorm makes each D(x) depend on the whole batch,
            # which is why WGAN-GP (Gulrajani et al. 2017, section 4) takes BatchNorm out of the critic.
            what = f"model.loss={loss}" if loss == "wgan-gp" else f"model.penalties.{next(iter(self.penalties))}"
            raise ConfigError(
                f"{what} penalizes each image's gradient, and the discriminator has BatchNorm, which mixes the images "
                "of a batch; set model.discriminator.batch_norm=false."
            )
        if joint_d_call and self.d_mixes_batch:
            raise ConfigError(
                "model.joint_d_call=true scores the real and the fake batch in one D call, and the discriminator has "
                "BatchNorm, which would mix their statistics; set model.discriminator.batch_norm=false, or "
                "model.joint_d_call=null."
            )
        self.generator, self.discriminator = generator, discriminator
        self.joint_d_call = False  # see joint_d_call_for(); resolved in setup(), once device and precision are known
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        # A buffer, so it is saved in checkpoints and a resumed run keeps drawing the same grid.
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, nz))
        self.memory_format = torch.contiguous_format
        self.use_cuda_graph = False  # model.cuda_graph resolved in setup(), once the device is known
        self.graph_step: CudaGraphStep | None = None

    @property
    def optimizer_steps_per_batch(self) -> int:
        """Lightning counts each optimizer.step() as a global step: n_critic D steps and one G step per batch."""
        return self.hparams.n_critic + 1

    @property
    def batches_done(self) -> int:
        """Batches trained so far: the step the logs use (global_step counts optimizer steps); 0 outside a fit."""
        return 0 if self._trainer is None else self.trainer.global_step // self.optimizer_steps_per_batch

    def setup(self, stage: str) -> None:
        # Before configure_optimizers, so the optimizer states are created in the same layout as the weights.
        device = self.trainer.strategy.root_device
        self.memory_format = memory_format_for(self.hparams.channels_last, device, str(self.trainer.precision))
        self.to(memory_format=self.memory_format)
        self.joint_d_call = joint_d_call_for(
            self.d_mixes_batch, device, str(self.trainer.precision), self.hparams.joint_d_call
        )
        eager_only = losses.eager_only(self.penalties, self.hparams.n_critic)
        self.use_cuda_graph = use_cuda_graph(
            self.hparams.cuda_graph, device, self.trainer.world_size, str(self.trainer.precision), eager_only
        )

    def on_train_start(self) -> None:
        relayout_optimizer_states(self.trainer.optimizers)  # after any checkpoint restore
        for scheduler in self.lr_schedulers() or []:
            lr_schedule.resume_at_own_rate(scheduler)
        if self.use_cuda_graph:
            self.graph_step = CudaGraphStep(self, self.gan_step)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def configure_optimizers(self) -> list[Optimizer] | tuple[list[Optimizer], list[LRScheduler]]:
        opt_g = self.optimizer_g(self.generator.parameters(), lr=self.hparams.lr_g)
        opt_d = self.optimizer_d(self.discriminator.parameters(), lr=self.hparams.lr_d)
        if self.hparams.lr_decay_start is None:
            return [opt_g, opt_d]
        total = lr_schedule.total_batches(self.trainer, self.optimizer_steps_per_batch)
        return [opt_g, opt_d], [
            lr_schedule.linear_decay(opt, self.hparams.lr_decay_start, total) for opt in (opt_g, opt_d)
        ]

    def training_step(self, real: Tensor, batch_idx: int) -> dict[str, Tensor | bool]:
        opt_g, opt_d = self.optimizers()
        # Each self.log costs more host time than a captured GPU step, so log only the batches Lightning writes
        # (every log_every_n_steps) and each epoch's last; tensors, so nothing syncs with the host until then.
        logged = (self.batches_done + 1) % self.trainer.log_every_n_steps == 0 or self.trainer.is_last_batch
        stats = (self.graph_step or self.gan_step)(real.contiguous(memory_format=self.memory_format), opt_d, opt_g)
        schedulers = self.lr_schedulers() or []  # one per optimizer when model.lr_decay_start is set, else None
        if logged:
            values = dict(zip(STAT_NAMES, stats.unbind(), strict=True))
            if schedulers:  # the rates this batch's steps used
                values |= {"train/lr_g": opt_g.param_groups[0]["lr"], "train/lr_d": opt_d.param_groups[0]["lr"]}
            self.log_dict(values, on_step=True, on_epoch=False, batch_size=len(real))
        for scheduler in schedulers:
            scheduler.step()
        # For callbacks' on_train_batch_end (the divergence guard, the loss plots): the stats, and whether this
        # is a batch the logger writes, the one place that question is answered.
        return {"stats": stats, "logged": logged}

    def gan_step(self, real: Tensor, opt_d: Optimizer, opt_g: Optimizer, set_to_none: bool = True) -> Tensor:
        """One batch of Algorithm 1: D's update(s), then G's; returns the `STAT_NAMES` values."""
        z = torch.randn(real.size(0), self.hparams.nz, device=self.device)
        for critic_step in range(self.hparams.n_critic):  # once, as in the paper, by default
            if critic_step > 0:
                z = torch.randn(real.size(0), self.hparams.nz, device=self.device)
            fake, d_out = self.d_backward(real, z, opt_d, set_to_none)
            opt_d.step()
        g_out = self.g_backward(fake, opt_g, set_to_none)
        opt_g.step()
        return self.step_stats(*d_out, *g_out)

    def d_backward(
        self, real: Tensor, z: Tensor, opt_d: Optimizer, set_to_none: bool = True
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """(1) D's gradients to maximize log D(x) + log(1 - D(G(z))); returns G(z) and (loss, D(x), D(G(z)))."""
        fake = self.generator(z)  # run once: D sees it detached, and G's update reuses its graph
        self.toggle_optimizer(opt_d)
        d_loss, d_real, d_fake = self.discriminator_loss(real, fake.detach())
        opt_d.zero_grad(set_to_none=set_to_none)  # a captured graph writes into the existing grads: keep them
        self.manual_backward(d_loss)
        self.untoggle_optimizer(opt_d)
        return fake, (d_loss, d_real, d_fake)

    def g_backward(self, fake: Tensor, opt_g: Optimizer, set_to_none: bool = True) -> tuple[Tensor, Tensor]:
        """(2) G's gradients to maximize log D(G(z)), i.e. the fakes scored as real; returns (loss, D(G(z)))."""
        self.toggle_optimizer(opt_g)  # D's parameters frozen: no D weight gradients are computed
        g_loss, d_fake = self.generator_loss(fake)
        opt_g.zero_grad(set_to_none=set_to_none)
        self.manual_backward(g_loss)
        self.untoggle_optimizer(opt_g)
        return g_loss, d_fake

    def score(self, images: Tensor) -> Tensor:
        """D's logits for images, after DiffAugment when it is on: every D call, penalties included, goes here."""
        return self.discriminator(diff_augment(images, self.augment_policy) if self.augment_policy else images)

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """D's loss (times d_loss_weight, plus the weighted penalties) on a real and a fake batch, and its logits."""
        if self.joint_d_call:
            d_real, d_fake = self.score(torch.cat([real, fake])).split([len(real), len(fake)])
        else:
            d_real, d_fake = self.score(real), self.score(fake)
        loss = self.hparams.d_loss_weight * self.loss.d(d_real, d_fake, self.hparams.real_label)
        every = self.hparams.penalty_every
        if self.penalties and (every == 1 or self.batches_done % every == 0):
            for name, weight in self.penalties.items():
                loss = loss + every * weight * losses.PENALTIES[name].fn(self.score, real, fake)
        return loss, d_real, d_fake

    def generator_loss(self, fake: Tensor) -> tuple[Tensor, Tensor]:
        """G's loss on its fakes, and D's logits for them."""
        d_fake = self.score(fake)
        return self.loss.g(d_fake), d_fake

    @staticmethod
    @torch.no_grad()
    def step_stats(d_loss: Tensor, d_real: Tensor, d_fake: Tensor, g_loss: Tensor, d_fake_for_g: Tensor) -> Tensor:
        """The `STAT_NAMES` scalars in one float32 tensor: both losses, then the mean D(x), D(G(z)1), D(G(z)2)."""
        scores = [torch.sigmoid(d.float()).mean() for d in (d_real, d_fake, d_fake_for_g)]
        return torch.stack([d_loss.float(), g_loss.float(), *scores])

    @torch.no_grad()
    def sample_fixed(self, generator: nn.Module | None = None) -> Tensor:
        """G(fixed_noise) in eval mode (BatchNorm running stats), from `generator` (e.g. an EMA copy) or G."""
        generator = generator or self.generator
        was_training = generator.training
        generator.eval()
        images = generator(self.fixed_noise)
        generator.train(was_training)
        return images
