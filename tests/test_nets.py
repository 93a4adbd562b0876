import pytest
import torch
from torch import nn

from dcgan_lit.errors import ConfigError
from dcgan_lit.nets.discriminator import Discriminator
from dcgan_lit.nets.generator import Generator
from dcgan_lit.nets.sizes import SUPPORTED_SIZES


@pytest.mark.parametrize("image_size", SUPPORTED_SIZES)
@pytest.mark.parametrize("nc", [1, 3])
def test_shapes_for_every_supported_size(image_size: int, nc: int) -> None:
    g = Generator(nz=16, ngf=4, nc=nc, image_size=image_size)
    d = Discriminator(ndf=4, nc=nc, image_size=image_size)
    fake = g(torch.randn(3, 16))
    assert fake.shape == (3, nc, image_size, image_size)
    assert fake.min() >= -1 and fake.max() <= 1  # Tanh output
    assert g(torch.randn(3, 16, 1, 1)).shape == fake.shape
    assert d(fake).shape == (3,)


@pytest.mark.parametrize("bad", [8, 48, 100, 512, 0])
def test_unsupported_sizes_name_the_allowed_ones(bad: int) -> None:
    for build in (lambda: Generator(image_size=bad), lambda: Discriminator(image_size=bad)):
        with pytest.raises(ConfigError, match=r"image_size=\d+ is not supported.*16, 32, 64, 128, 256"):
            build()


def test_64px_nets_are_the_tutorials() -> None:
    """Same layer stack as the PyTorch DCGAN tutorial's netG/netD, so the same parameter counts."""
    g, d = Generator(nz=100, ngf=64, nc=3, image_size=64), Discriminator(ndf=64, nc=3, image_size=64)
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568
    # D's first conv has no BatchNorm after it, and D ends in a conv (logits), not a Sigmoid.
    assert isinstance(d.main[1], nn.LeakyReLU) and d.main[1].negative_slope == 0.2
    assert isinstance(d.main[-1], nn.Conv2d)
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    assert isinstance(g.main[-1], nn.Tanh)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 5


def test_dcgan_init() -> None:
    torch.manual_seed(0)
    g = Generator(nz=100, ngf=64, nc=3, image_size=64)
    convs = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    bn_w = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    bn_b = torch.cat([m.bias for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert convs.mean().abs() < 1e-3 and abs(convs.std().item() - 0.02) < 1e-3
    assert abs(bn_w.mean().item() - 1.0) < 5e-3 and abs(bn_w.std().item() - 0.02) < 5e-3
    assert torch.all(bn_b == 0)


def test_wrong_input_shapes_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"expects z of shape \(B, 16\)"):
        Generator(nz=16, ngf=4, image_size=32)(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, 32, 32\), got \(2, 1, 32, 32\)"):
        Discriminator(ndf=4, nc=3, image_size=32)(torch.randn(2, 1, 32, 32))
