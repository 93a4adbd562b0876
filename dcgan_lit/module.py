"""The DCGAN LightningModule: Algorithm 1 of Goodfellow et al. (2014) with manual optimization."""

from collections.abc import Callable

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.optim import Optimizer

from dcgan_lit.errors import ConfigError
from dcgan_lit.losses import bce_fake, bce_real

OptimizerFactory = Callable[..., Optimizer]  # a `_partial_: true` optimizer from YAML, completed with params and lr


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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.automatic_optimization = False
        if getattr(generator, "nz", nz) != nz:
            raise ConfigError(f"model.nz={nz} but the generator was built with nz={generator.nz}; set them equal.")
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        # A buffer, so it is saved in checkpoints and a resumed run keeps drawing the same grid.
        self.register_buffer("fixed_noise", torch.randn(num_fixed_noise, nz))

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def configure_optimizers(self) -> list[Optimizer]:
        opt_g = self.optimizer_g(self.generator.parameters(), lr=self.hparams.lr_g)
        opt_d = self.optimizer_d(self.discriminator.parameters(), lr=self.hparams.lr_d)
        return [opt_g, opt_d]

    def training_step(self, real: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        b = real.size(0)

        # Sample z once and run G once: D sees fake.detach(), G's update reuses the same graph.
        z = torch.randn(b, self.hparams.nz, device=self.device)
        fake = self.generator(z)

        # (1) Update D: maximize log D(x) + log(1 - D(G(z)))
        self.toggle_optimizer(opt_d)
        d_real = self.discriminator(real)
        d_fake = self.discriminator(fake.detach())
        d_loss = bce_real(d_real) + bce_fake(d_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # (2) Update G: maximize log D(G(z)), i.e. the fakes are scored against the flipped label 1
        self.toggle_optimizer(opt_g)
        d_fake_for_g = self.discriminator(fake)
        g_loss = bce_real(d_fake_for_g)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        # Tensors, not floats: Lightning converts them only when it writes to the logger, so no per-step host sync.
        with torch.no_grad():
            stats = {
                "train/d_loss": d_loss,
                "train/g_loss": g_loss,
                "train/D_x": torch.sigmoid(d_real).mean(),
                "train/D_G_z1": torch.sigmoid(d_fake).mean(),
                "train/D_G_z2": torch.sigmoid(d_fake_for_g).mean(),
            }
        self.log_dict(stats, on_step=True, on_epoch=False, batch_size=b)

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """G(fixed_noise) in eval mode (BatchNorm running stats), without touching the training state."""
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(self.fixed_noise)
        self.generator.train(was_training)
        return images
