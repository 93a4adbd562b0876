"""The on-device step shared by every data set: uint8 -> [-1, 1], plus random flips while training."""

from types import SimpleNamespace

import torch

from dcgan_lit.data.datamodule import ImageDataModule


def test_scales_uint8_to_minus_one_one() -> None:
    dm = ImageDataModule(image_size=4, nc=1, batch_size=2, hflip=False)
    batch = torch.tensor([0, 255, 128, 64], dtype=torch.uint8).view(1, 1, 2, 2)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), torch.tensor([-1.0, 1.0, 128 / 127.5 - 1, 64 / 127.5 - 1]))


def test_hflip_only_while_training_and_per_image() -> None:
    dm = ImageDataModule(image_size=8, nc=1, batch_size=2, hflip=True)
    batch = torch.zeros(256, 1, 8, 8, dtype=torch.uint8)
    batch[..., -1] = 255  # a bright right-hand column
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0), dm.on_after_batch_transfer(batch, 0))
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    flipped = out[:, 0, 0, 0] > 0  # flipped images have the bright column on the left
    assert 80 < flipped.sum() < 176  # about half, chosen per image
    plain = batch.float() / 127.5 - 1
    assert torch.equal(out[flipped], plain[flipped].flip(3)) and torch.equal(out[~flipped], plain[~flipped])
