"""Sample grids from the fixed noise every epoch (a PNG, and an image in each logger that takes pictures), and one
grid of real training images."""

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torchvision.utils import make_grid, save_image

from dcgan_lit.callbacks.cadence import ends_run
from dcgan_lit.callbacks.ema import sampling_generator
from dcgan_lit.logger_media import log_image
from dcgan_lit.output_files import skip_on_write_error


class SampleGrid(Callback):
    """Writes `dirpath/epoch_XXX.png` from the model's fixed noise and logs it as `samples/fixed_noise` at step N
    after epoch N, so the image sliders of TensorBoard and MLflow count epochs (W&B: captioned "epoch N").

    Args:
        dirpath: folder for the PNG files.
        every_n_epochs: how often to draw the grid; the run's last epoch always gets one, so every run ends with a
            grid of its final weights.
        nrow: images per grid row.
        num_real: how many real training images go into the one-off `samples/real` grid (0 to skip).
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1, nrow: int = 8, num_real: int = 64) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_epochs, self.nrow, self.num_real = every_n_epochs, nrow, num_real
        self._real: list[Tensor] = []  # gathered over the first batches: one batch may hold fewer than num_real
        self._real_logged = num_real == 0

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Tensor, batch_idx: int) -> None:
        if self._real_logged:
            return
        gathered = sum(len(b) for b in self._real)
        self._real.append(batch[: self.num_real - gathered].detach().cpu())
        if gathered + len(self._real[-1]) >= self.num_real:
            self._write_real(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._real_logged:  # an epoch of fewer than num_real images: the grid holds them all
            self._write_real(trainer)
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 or ends_run(trainer):
            images = pl_module.sample_fixed(sampling_generator(trainer, pl_module))
            epoch = trainer.current_epoch + 1  # TensorBoard's slider then reads "after epoch N"
            name = f"epoch_{trainer.current_epoch:03d}.png"
            self._write(trainer, "fixed_noise", images, filename=name, step=epoch, caption=f"epoch {epoch}")

    def _write_real(self, trainer: Trainer) -> None:
        self._real_logged = True
        self._write(trainer, "real", torch.cat(self._real), filename="real.png", step=0, caption="training images")
        self._real = []

    def _write(self, trainer: Trainer, tag: str, images: Tensor, filename: str, step: int, caption: str) -> None:
        if not trainer.is_global_zero:
            return
        grid = make_grid(images.detach().float().cpu(), nrow=self.nrow, padding=2, normalize=True, value_range=(-1, 1))
        with skip_on_write_error(self.dirpath / filename):
            self.dirpath.mkdir(parents=True, exist_ok=True)
            save_image(grid, self.dirpath / filename)
        log_image(trainer, f"samples/{tag}", grid, step=step, caption=caption)
