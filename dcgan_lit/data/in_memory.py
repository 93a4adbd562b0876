"""A data set over an image tensor already in memory (synthetic and MNIST-style data)."""

from torch import Tensor
from torch.utils.data import Dataset


class InMemoryImages(Dataset):
    """Serves rows of a uint8 tensor (N, nc, S, S)."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]
