import pytest
import torch
from torch import nn

from dcgan_lit.errors import ConfigError
from dcgan_lit.nets.discriminator import Discriminator
from dcgan_lit.nets.generator import Generator
from dcgan_lit.nets.sizes import SUPPORTED_SIZES
from dcgan_lit.nets.upsample import UpsampleConv2d, UpsampleGenerator


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


def test_the_fused_upsample_conv_is_nearest_upsampling_then_the_3x3_conv() -> None:
    torch.manual_seed(0)
    fused = UpsampleConv2d(5, 7)
    pair = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(5, 7, 3, 1, 1))
    pair[1].load_state_dict(fused.state_dict())  # the same parameters: weight (7, 5, 3, 3) and bias
    x = torch.randn(2, 5, 6, 9, requires_grad=True)
    x_pair = x.detach().clone().requires_grad_()
    out, ref = fused(x), pair(x_pair)
    assert out.shape == ref.shape == (2, 7, 12, 18)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    grad = torch.randn_like(ref)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(fused.weight.grad, pair[1].weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x.grad, x_pair.grad, rtol=1e-4, atol=1e-5)


def test_an_upsample_generator_from_before_the_fused_conv_loads_and_draws_the_same() -> None:
    """Its checkpoints kept an Upsample before each conv, so the layers had other indices in `main`."""
    torch.manual_seed(0)
    g = UpsampleGenerator(nz=8, nc=3, image_size=16, channels=16).eval()
    old = nn.Sequential(
        nn.BatchNorm2d(16), nn.Upsample(scale_factor=2), nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16),
        nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, 1, 1), nn.BatchNorm2d(8),
        nn.LeakyReLU(0.2), nn.Conv2d(8, 3, 3, 1, 1), nn.Tanh(),
    ).eval()  # fmt: skip
    for bn in (m for m in old if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    # as checkpoint_model.load_generator passes it: a plain dict, without the state_dict's version metadata
    state = {f"project.{k}": v for k, v in g.project.state_dict().items()}
    state |= {f"main.{k}": v for k, v in old.state_dict().items()}
    g.load_state_dict(state)
    z = torch.randn(4, 8)
    torch.testing.assert_close(g(z), old(g.project(z).view(-1, 16, 4, 4)), rtol=0, atol=1e-5)
    assert torch.equal(g.main[7].weight, old[9].weight)  # the last conv: index 9 then, 7 now
    g.load_state_dict(g.state_dict())  # today's layout loads unchanged
