"""The DCGAN LightningModule: Algorithm 1 of Goodfellow et al. (2014) with manual optimization."""

import math
from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor, nn
from torch.optim import Optimizer

from dcgan_lit import losses, rng_state
from dcgan_lit.callbacks.ema import GeneratorEMA
from dcgan_lit.callbacks.sample_grid import batches_seen
from dcgan_lit.cuda_graph_step import CudaGraphStep, use_cuda_graph
from dcgan_lit.diffaugment import diff_augment, parse_policy
from dcgan_lit.errors import ConfigError, TrainingDiverged

OptimizerFactory = Callable[..., Optimizer]  # a `_partial_: true` optimizer from YAML, completed with params and lr

# The scalars logged every step, in the order `step_stats` packs them.
STAT_NAMES: tuple[str, ...] = ("train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z1", "train/D_G_z2")


class DCGAN(LightningModule):
    """Trains `generator` against `discriminator`, one D update then one G update per batch.

    Args:
        generator: maps z (B, nz) to images (B, nc, image_size, image_size) in [-1, 1].
        discriminator: maps those images to logits (B,).
        optimizer_g, optimizer_d: optimizer factories called as `factory(params, lr=...)`.
        nz: latent size; must match the generator.
        lr_g, lr_d: learning rates of G and D, kept apart so TTUR-style sweeps need one override each.
        image_size, nc: the image shape the nets are built for, kept in the checkpoint's hparams.
        num_fixed_noise: size of the fixed latent batch whose samples are logged every epoch.
        channels_last: NHWC weights and inputs, which tensor-core convolutions prefer. None: on for GPUs only.
        cuda_graph: replay the step's forward/backward passes as CUDA graphs (see cuda_graph_step.py).
            None: on where it can work (one CUDA GPU, fp32 or bf16); true: refuse to run where it cannot.
        loss: bce (the tutorial's), hinge, lsgan or wgan-gp; see losses.py.
        real_label: D's target for real images; 0.9 is one-sided label smoothing (bce, hinge and lsgan).
        n_critic: D steps per G step (5 is usual with wgan-gp); each extra D step draws fresh fakes.
        gp_weight: the gradient penalty's weight, for wgan-gp.
        diffaugment: DiffAugment policy for every image D sees, e.g. "color,translation,cutout" ("" for none).
        d_loss_weight: scales D's loss; 0.5 makes it (real + fake) / 2, as the fully connected GAN writes it.
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
        image_size: int = 64,
        nc: int = 3,
        num_fixed_noise: int = 64,
        channels_last: bool | None = None,
        cuda_graph: bool | None = None,
        loss: str = "bce",
        real_label: float = 1.0,
        n_critic: int = 1,
        gp_weight: float = 10.0,
        diffaugment: str = "",
        d_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.automatic_optimization = False
        if loss not in losses.LOSSES:
            raise ConfigError(f"model.loss={loss!r}: must be one of {', '.join(losses.LOSSES)}.")
        try:
            self.augment_policy = parse_policy(diffaugment)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if n_critic < 1:
            raise ConfigError(f"model.n_critic={n_critic!r}: must be a whole number >= 1.")
        # Lightning counts each optimizer.step() as a global step: n_critic D steps and one G step per batch.
        self.optimizer_steps_per_batch = n_critic + 1
        if getattr(generator, "nz", nz) != nz:
            raise ConfigError(f"model.nz={nz} but the generator was built with nz={generator.nz}; set them equal.")
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        # A buffer, so it is saved in checkpoints and a resumed run keeps drawing the same grid.
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, nz))
        self.memory_format = torch.contiguous_format
        self.use_cuda_graph = False  # resolved from `cuda_graph` in setup(), once the device is known
        self.cuda_graph_step: CudaGraphStep | None = None
        self._rng_to_restore: dict | None = None
        # The first batch whose losses were not finite (-1: none) and its STAT_NAMES values, kept on the device
        # and read back only where the host syncs anyway: at log steps and before a checkpoint is written.
        self._first_bad_batch: Tensor | None = None
        self._first_bad_stats: Tensor | None = None
        self._history: list[tuple[int, Tensor]] = []  # (batch, STAT_NAMES values) at each logged batch

    def setup(self, stage: str) -> None:
        # Before configure_optimizers, so the optimizer states are created in the same layout as the weights.
        trainer = self.trainer
        device = trainer.strategy.root_device
        if self.hparams.channels_last if self.hparams.channels_last is not None else device.type == "cuda":
            self.memory_format = torch.channels_last
            self.to(memory_format=self.memory_format)
        eager_only = None
        if self.hparams.loss == "wgan-gp" or self.hparams.n_critic > 1:
            eager_only = "model.loss=wgan-gp and model.n_critic>1 run eagerly (double backward, several D steps)"
        self.use_cuda_graph = use_cuda_graph(
            self.hparams.cuda_graph, device, trainer.world_size, str(trainer.precision), eager_only
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["stat_history"] = self.stat_history()
        if getattr(self, "run_config", None):
            checkpoint["run_config"] = self.run_config  # plain dicts: still loads with weights_only=True
        self.raise_if_diverged()  # never overwrite the last good checkpoint with NaN weights
        # The last update can also overflow the weights while its losses were still finite.
        bad = [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingDiverged(
                f"weights became NaN or infinite ({bad[0]}{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}) "
                f"by batch {batches_seen(self.trainer)}: no checkpoint of this state was written. Lower "
                "model.lr_g / model.lr_d and resume from the last checkpoint."
            )
        checkpoint["rng_states"] = rng_state.capture()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_to_restore = checkpoint.get("rng_states")
        history = checkpoint.get("stat_history")
        if history is not None and len(history):
            self._history = [(int(row[0]), row[1:]) for row in history]

    def stat_history(self) -> Tensor:
        """(N, 1 + len(STAT_NAMES)) float64 on the CPU: the batch, then the logged values, for every logged batch."""
        if not self._history:
            return torch.zeros(0, 1 + len(STAT_NAMES), dtype=torch.float64)
        steps = torch.tensor([step for step, _ in self._history], dtype=torch.float64)
        values = torch.stack([v.double().cpu() for _, v in self._history])
        return torch.cat([steps[:, None], values], 1)

    def on_train_start(self) -> None:
        # Set as late as possible: nothing between here and the first batch draws random numbers. The nets were
        # built from the run's seed on every rank; from here each rank draws its own noise, flips and augmentation.
        if self._rng_to_restore is None:
            rng_state.seed_rank(self.global_rank)
        else:
            rng_state.restore(self._rng_to_restore)  # one device: the interrupted run's exact stream
            self._rng_to_restore = None
            if self.trainer.world_size > 1:  # the checkpoint holds rank 0's stream only; re-split it per rank
                rng_state.seed_rank(self.global_rank, offset=self.trainer.world_size * self.global_step)
        # After any checkpoint restore: optimizer states saved by a run with the other layout are re-laid out.
        for opt in self.trainer.optimizers:
            for param, state in opt.state.items():
                for key, value in state.items():
                    if isinstance(value, Tensor) and value.shape == param.shape and value.stride() != param.stride():
                        state[key] = torch.empty_like(param).copy_(value)
        if self.use_cuda_graph:
            self.cuda_graph_step = CudaGraphStep(self, self.gan_step)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def configure_optimizers(self) -> list[Optimizer]:
        opt_g = self.optimizer_g(self.generator.parameters(), lr=self.hparams.lr_g)
        opt_d = self.optimizer_d(self.discriminator.parameters(), lr=self.hparams.lr_d)
        return [opt_g, opt_d]

    def training_step(self, real: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real = real.contiguous(memory_format=self.memory_format)
        step = self.cuda_graph_step or self.gan_step
        stats = step(real, opt_d, opt_g)
        # Lightning writes step metrics every log_every_n_steps batches and drops the rest, and each self.log call
        # costs more host time than a whole captured GPU step, so log only the batches that will be written (and
        # each epoch's last, so callback_metrics end the epoch current).
        # Tensors, not floats: Lightning converts them only when it writes to the logger, so no per-step host sync.
        self._watch_for_divergence(stats)
        if self.trainer._logger_connector.should_update_logs or self.trainer.is_last_batch:
            self.raise_if_diverged()
            values = dict(zip(STAT_NAMES, stats.unbind(), strict=True))
            self.log_dict(values, on_step=True, on_epoch=False, batch_size=len(real))
            self._history.append((batches_seen(self.trainer), stats.detach().clone()))  # for the end-of-run plots

    @torch.no_grad()
    def _watch_for_divergence(self, stats: Tensor) -> None:
        if self._first_bad_batch is None:
            self._first_bad_batch = torch.full((), -1, dtype=torch.long, device=stats.device)
            self._first_bad_stats = torch.zeros_like(stats)
        first = (self._first_bad_batch < 0) & ~torch.isfinite(stats[:2]).all()
        self._first_bad_stats.copy_(torch.where(first, stats, self._first_bad_stats))
        self._first_bad_batch.copy_(torch.where(first, batches_seen(self.trainer), self._first_bad_batch))

    def raise_if_diverged(self) -> None:
        """Stop with TrainingDiverged if a loss has been NaN or infinite since training started (syncs once)."""
        if self._first_bad_batch is None or int(self._first_bad_batch) < 0:
            return
        values = dict(zip(STAT_NAMES[:2], self._first_bad_stats[:2].tolist(), strict=True))
        bad = ", ".join(f"{name}={value}" for name, value in values.items() if not math.isfinite(value))
        raise TrainingDiverged(
            f"{bad} at batch {int(self._first_bad_batch)}: training stopped and no checkpoint of this state was "
            "written. Lower model.lr_g / model.lr_d, or check the data, and resume from the last checkpoint."
        )

    def gan_step(self, real: Tensor, opt_d: Optimizer, opt_g: Optimizer) -> Tensor:
        """One batch of Algorithm 1: a D update on real and fake, then a G update; returns the `STAT_NAMES` values."""
        # Once graphs have been captured they write into the existing .grad tensors, so those must never be freed.
        set_to_none = self.cuda_graph_step is None

        # Sample z once and run G once: D sees fake.detach(), G's update reuses the same graph.
        z = torch.randn(real.size(0), self.hparams.nz, device=self.device)
        fake = self.generator(z)

        # (1) Update D: maximize log D(x) + log(1 - D(G(z))), n_critic times (once, as in the paper, by default)
        for critic_step in range(self.hparams.n_critic):
            if critic_step > 0:
                fake = self.generator(torch.randn(real.size(0), self.hparams.nz, device=self.device))
            self.toggle_optimizer(opt_d)
            d_loss, d_real, d_fake = self.discriminator_loss(real, fake.detach())
            opt_d.zero_grad(set_to_none=set_to_none)
            self.manual_backward(d_loss)
            opt_d.step()
            self.untoggle_optimizer(opt_d)

        # (2) Update G: maximize log D(G(z)), i.e. the fakes are scored against the flipped label 1
        self.toggle_optimizer(opt_g)
        g_loss, d_fake_for_g = self.generator_loss(fake)
        opt_g.zero_grad(set_to_none=set_to_none)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        return self.step_stats(d_loss, g_loss, d_real, d_fake, d_fake_for_g)

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """D's loss on a real and a fake batch, and its logits on each."""
        d_real, d_fake = self.discriminator(self.augment(real)), self.discriminator(self.augment(fake))
        loss = self.hparams.d_loss_weight * losses.d_loss(self.hparams.loss, d_real, d_fake, self.hparams.real_label)
        if self.hparams.loss == "wgan-gp":
            loss = loss + self.hparams.gp_weight * losses.gradient_penalty(self.discriminator, real, fake)
        return loss, d_real, d_fake

    def generator_loss(self, fake: Tensor) -> tuple[Tensor, Tensor]:
        """G's loss: its fakes scored against the real label (the non-saturating loss for bce), and D's logits."""
        d_fake = self.discriminator(self.augment(fake))
        return losses.g_loss(self.hparams.loss, d_fake), d_fake

    def augment(self, images: Tensor) -> Tensor:
        """DiffAugment, when on: the same kind of random transform for real and fake inputs of D."""
        return diff_augment(images, self.augment_policy) if self.augment_policy else images

    def sampling_generator(self) -> nn.Module:
        """G for sample grids and metrics: the EMA copy when an EMAWeightAveraging callback runs, else G itself."""
        trainer = self._trainer
        for callback in trainer.callbacks if trainer is not None else []:
            # Lightning keeps the averaged copy of the whole module here; it has no public accessor.
            average = getattr(callback, "_average_model", None)
            if isinstance(callback, GeneratorEMA) and average is not None:
                return callback.averaged_generator(trainer, self.hparams.nz)  # BatchNorm statistics up to date
            if isinstance(callback, WeightAveraging) and average is not None:
                return average.module.generator
        return self.generator

    @staticmethod
    @torch.no_grad()
    def step_stats(d_loss: Tensor, g_loss: Tensor, d_real: Tensor, d_fake: Tensor, d_fake_for_g: Tensor) -> Tensor:
        """The `STAT_NAMES` scalars in one float32 tensor: both losses, then the mean D(x), D(G(z)1), D(G(z)2)."""
        scores = [torch.sigmoid(d.float()).mean() for d in (d_real, d_fake, d_fake_for_g)]
        return torch.stack([d_loss.float(), g_loss.float(), *scores])

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """G(fixed_noise) in eval mode (BatchNorm running stats), without touching the training state."""
        generator = self.sampling_generator()
        was_training = generator.training
        generator.eval()
        images = generator(self.fixed_noise)
        generator.train(was_training)
        return images
