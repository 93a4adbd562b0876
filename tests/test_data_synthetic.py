import time
from collections.abc import Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit.data.synthetic import KINDS, render_space_images


def test_deterministic_by_seed() -> None:
    a, ka = render_space_images(300, 32, seed=3)
    b, kb = render_space_images(300, 32, seed=3)
    c, _ = render_space_images(300, 32, seed=4)
    assert torch.equal(a, b) and torch.equal(ka, kb)
    assert not torch.equal(a, c)
    assert a.shape == (300, 3, 32, 32) and a.dtype == torch.uint8


def test_images_have_structure_not_noise() -> None:
    images, kinds = render_space_images(1000, 64, seed=0)
    assert set(kinds.tolist()) == set(range(len(KINDS)))
    brightness = images.float().mean(dim=(1, 2, 3))
    stars_only = brightness[kinds == KINDS.index("stars")].mean()
    for kind in ("planet", "ringed_planet", "elliptical", "spiral"):
        # every main object adds light on top of the star field
        assert brightness[kinds == KINDS.index(kind)].mean() > stars_only + 2, kind
    # Planets are big smooth discs: near the centre they cover a contiguous bright patch.
    planets = images[kinds == KINDS.index("planet")].float().mean(1)  # (n, 64, 64)
    centre = planets[:, 24:40, 24:40].mean()
    assert centre > 3 * planets[:, :4, :4].mean()
    # Neighbouring pixels are correlated (objects, not i.i.d. noise).
    x = images.float()
    corr = torch.corrcoef(torch.stack([x[..., :, :-1].flatten(), x[..., :, 1:].flatten()]))[0, 1]
    assert corr > 0.6
    assert images.max() == 255 and images.min() == 0


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    render_space_images(2000, 64, seed=0)
    assert time.perf_counter() - start < 15  # about 2 s on 2 CPU cores


def test_datamodule_splits_and_grayscale(tiny_cfg: Callable[..., DictConfig]) -> None:
    dm = instantiate(tiny_cfg("data.num_images=200", "data.val_fraction=0.1", "data.nc=1").data)
    dm.setup("fit")
    assert len(dm.data_train) == 180 and len(dm.data_val) == 20
    assert dm.data_train[0].shape == (1, 32, 32) and dm.data_train[0].dtype == torch.uint8
    train = torch.stack([dm.data_train[i] for i in range(len(dm.data_train))])
    val = torch.stack([dm.data_val[i] for i in range(len(dm.data_val))])
    # held-out images are not training images
    assert not any(torch.equal(v, t) for v in val for t in train)
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (16, 1, 32, 32)
