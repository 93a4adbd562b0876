"""The shared LightningDataModule: loaders, the held-out split, and uint8 -> [-1, 1] plus random flips on the device."""

import hashlib
import logging
from collections.abc import Callable

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dcgan_lit.console import info
from dcgan_lit.data.device_cache import IndexDataset, gib, is_index_batch, keep_batch
from dcgan_lit.data.in_memory import InMemoryImages
from dcgan_lit.data.resumable_shuffle import EpochShuffle, ResumableDataLoader
from dcgan_lit.data.workers import worker_init
from dcgan_lit.errors import ConfigError
from dcgan_lit.lightning_internals import epoch_position

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "heldout")


class ImageDataModule(LightningDataModule):
    """Base class: subclasses implement `build_datasets` (and `prepare_data` when something must be downloaded).

    Args:
        image_size: side of the square images served.
        nc: channels, 1 (grayscale) or 3 (RGB).
        batch_size: images per training batch (per device under DDP).
        num_workers, pin_memory: passed to the DataLoaders.
        hflip: flip each training image left-right with probability 1/2.
        gpu_cache: keep the whole uint8 training set on the device and gather each batch there. None (default):
            on when training on a GPU and the set fits `gpu_cache_budget_gb`; true: also on the CPU; false: never.
        gpu_cache_budget_gb: the most device memory the cached set may take; a larger set is streamed instead.
    """

    def __init__(
        self,
        image_size: int = 64,
        nc: int = 3,
        batch_size: int = 128,
        num_workers: int = 0,
        pin_memory: bool = False,
        hflip: bool = False,
        gpu_cache: bool | None = None,
        gpu_cache_budget_gb: float = 16.0,
    ) -> None:
        super().__init__()
        self.image_size, self.nc = image_size, nc
        self.batch_size, self.num_workers, self.pin_memory, self.hflip = batch_size, num_workers, pin_memory, hflip
        self.gpu_cache, self.gpu_cache_budget_gb = gpu_cache, gpu_cache_budget_gb
        self.data_train: Dataset | None = None
        self.data_val: Dataset | None = None
        self.device_images: Tensor | None = None  # (N, nc, S, S) uint8 on the training device, when cached there
        self.preprocess_seconds: float = 0.0  # one-time decoding time, reported by the throughput callback
        self._device_cache_decision: bool | None = None
        self.shuffle_seed = 0

    def build_datasets(self) -> tuple[Dataset, Dataset]:
        """Return (train, held-out) data sets of uint8 images (nc, image_size, image_size)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        # Every process builds its own copy; nothing here is shared state, so this is DDP-safe.
        if self.data_train is None:
            # The run's seed (seed_everything has run): a resumed run shuffles every epoch as the original did.
            self.shuffle_seed = torch.initial_seed() % 2**62
            self.data_train, self.data_val = self.build_datasets()
            if len(self.data_train) < self.batch_size:
                raise ConfigError(
                    f"data.batch_size={self.batch_size} is larger than the {len(self.data_train)} training images; "
                    "lower data.batch_size or add images."
                )
        if self.device_images is None and self.use_device_cache(len(self.data_train)):
            self.device_images = self.train_images().to(self.training_device)
            info(
                log,
                f"data.gpu_cache: {len(self.data_train)} training images ({gib(self.device_images.nbytes)}) "
                f"held on {self.training_device}; batches are gathered there",
            )

    @property
    def training_device(self) -> torch.device:
        """The device training runs on (the CPU when no Trainer is attached)."""
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def use_device_cache(self, num_images: int) -> bool:
        """Whether `num_images` training images go on the device; says once why not when it was wanted."""
        if self._device_cache_decision is not None:
            return self._device_cache_decision
        on_gpu = self.training_device.type == "cuda"
        self._device_cache_decision = self.gpu_cache if self.gpu_cache is not None else on_gpu
        need = num_images * self.nc * self.image_size**2
        if self._device_cache_decision and need > self.gpu_cache_budget_gb * 2**30:
            self._device_cache_decision = False
            info(
                log,
                f"data.gpu_cache: the {num_images} training images need {gib(need)}, over "
                f"data.gpu_cache_budget_gb={self.gpu_cache_budget_gb}; streaming them with the DataLoader instead "
                "(raise the budget to keep them on the device)",
            )
        return self._device_cache_decision

    def train_images(self) -> Tensor:
        """The training set as one uint8 (N, nc, S, S) tensor, in training-set order, for the device cache."""
        if isinstance(self.data_train, InMemoryImages):
            return self.data_train.images
        raise NotImplementedError(f"{type(self).__name__} has no train_images(); set data.gpu_cache=false")

    def train_dataloader(self) -> DataLoader:
        if self.device_images is not None:
            # Only indices cross from the host; pinned, so the non-blocking copy never waits on the GPU.
            dataset = IndexDataset(len(self.device_images))
            return ResumableDataLoader(
                dataset,
                batch_size=self.batch_size,
                sampler=self._shuffle(len(dataset)),
                drop_last=True,
                collate_fn=keep_batch,
                pin_memory=self.training_device.type == "cuda",
                generator=torch.Generator().manual_seed(self.shuffle_seed),
            )
        return self._loader(self.data_train, shuffle=True)

    def _shuffle(self, n: int) -> EpochShuffle:
        return EpochShuffle(n, self.shuffle_seed, position=self._shuffle_position)

    def _shuffle_position(self) -> tuple[int, int]:
        """(epoch, training samples of it used before a mid-epoch checkpoint; 0 unless resuming from one).

        Read from Lightning's restored progress rather than from the loader, which runs batches ahead. Under DDP,
        Lightning shards this sampler's output, so a resumed epoch there starts its shard afresh.
        """
        if self.trainer is None:
            return 0, 0
        epoch, batches_done = epoch_position(self.trainer)
        return epoch, 0 if self.trainer.world_size > 1 else batches_done * self.batch_size

    def split_dataset(self, split: str) -> Dataset:
        """The "train" or "heldout" images (after setup)."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: must be one of {', '.join(SPLITS)}")
        return self.data_train if split == "train" else self.data_val

    def split_dataloader(self, split: str) -> DataLoader:
        """A split's real images in a fixed order and unflipped, for metrics such as FID (not a Lightning loop)."""
        if split == "train" and self.device_images is not None:
            # Training holds this split decoded already, in this order: no files to decode, no workers to start.
            return DataLoader(InMemoryImages(self.device_images), batch_size=self.batch_size)
        return self._loader(self.split_dataset(split), shuffle=False)

    def heldout_dataloader(self) -> DataLoader:
        return self.split_dataloader("heldout")

    def fingerprint(self, split: str) -> str:
        """Identifies a split's images by content, so caches of their features are never reused for other images.

        In-memory sets hash the served uint8 tensor itself, which covers the files, the seed, the resize and the
        split at once. Subclasses that read files lazily override this with the files' signatures.
        """
        dataset = self.split_dataset(split)
        if not isinstance(dataset, InMemoryImages):
            raise NotImplementedError(f"{type(self).__name__} cannot fingerprint {type(dataset).__name__}")
        images = dataset.images.contiguous()
        digest = hashlib.sha256(str(tuple(images.shape)).encode())
        digest.update(images.numpy().data)
        return digest.hexdigest()

    collate_fn: Callable[[list], Tensor] | None = None  # how a batch is stacked; None: torch's default_collate

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return (ResumableDataLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            collate_fn=self.collate_fn,
            worker_init_fn=worker_init,  # a signal to the whole process group is the main process's to handle
            sampler=self._shuffle(len(dataset)) if shuffle else None,
            drop_last=shuffle,  # BatchNorm needs full training batches; keep every held-out image
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),  # pinning only helps host-to-GPU copies
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.shuffle_seed),  # worker seeds; keeps the global RNG untouched
        )

    def on_after_batch_transfer(self, batch: Tensor, dataloader_idx: int) -> Tensor:
        if is_index_batch(batch):
            batch = self.device_images.index_select(0, batch)
        # uint8 crosses to the device (4x less traffic than float), then scales to [-1, 1] there.
        images = batch.float().div_(127.5).sub_(1.0)
        if self.hflip and self.trainer is not None and self.trainer.training:
            flip = torch.rand(images.size(0), 1, 1, 1, device=images.device) < 0.5
            images = torch.where(flip, images.flip(3), images)
        return images
