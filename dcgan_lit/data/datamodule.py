"""The shared LightningDataModule: loaders, the held-out split, and uint8 -> [-1, 1] plus random flips on the device."""

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dcgan_lit.errors import ConfigError


class ImageDataModule(LightningDataModule):
    """Base class: subclasses implement `build_datasets` (and `prepare_data` when something must be downloaded).

    Args:
        image_size: side of the square images served.
        nc: channels, 1 (grayscale) or 3 (RGB).
        batch_size: images per training batch (per device under DDP).
        num_workers, pin_memory: passed to the DataLoaders.
        hflip: flip each training image left-right with probability 1/2.
    """

    def __init__(
        self,
        image_size: int = 64,
        nc: int = 3,
        batch_size: int = 128,
        num_workers: int = 0,
        pin_memory: bool = False,
        hflip: bool = False,
    ) -> None:
        super().__init__()
        self.image_size, self.nc = image_size, nc
        self.batch_size, self.num_workers, self.pin_memory, self.hflip = batch_size, num_workers, pin_memory, hflip
        self.data_train: Dataset | None = None
        self.data_val: Dataset | None = None

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """Return (train, held-out) data sets of uint8 images (nc, image_size, image_size)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        # Every process builds its own copy; nothing here is shared state, so this is DDP-safe.
        if self.data_train is None:
            self.data_train, self.data_val = self.build_datasets()
            if len(self.data_train) < self.batch_size:
                raise ConfigError(
                    f"data.batch_size={self.batch_size} is larger than the {len(self.data_train)} training images; "
                    "lower data.batch_size or add images."
                )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.data_train, shuffle=True)

    def heldout_dataloader(self) -> DataLoader:
        """The held-out real images, in a fixed order, for metrics such as FID (not a Lightning val loop)."""
        return self._loader(self.data_val, shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,  # BatchNorm needs full training batches; keep every held-out image
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),  # pinning only helps host-to-GPU copies
            persistent_workers=self.num_workers > 0,
        )

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        # uint8 crosses to the device (4x less traffic than float), then scales to [-1, 1] there.
        images = batch.float().div_(127.5).sub_(1.0)
        if self.hflip and self.trainer is not None and self.trainer.training:
            flip = torch.rand(images.size(0), 1, 1, 1, device=images.device) < 0.5
            images = torch.where(flip, images.flip(3), images)
        return images
