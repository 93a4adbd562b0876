"""DCGAN discriminator: strided Conv2d + BatchNorm + LeakyReLU(0.2); returns logits, not probabilities."""

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as with_spectral_norm

from dcgan_lit.nets.init import init_dcgan_weights
from dcgan_lit.nets.sizes import num_stride2_blocks


class Discriminator(nn.Module):
    """Maps images (B, nc, image_size, image_size) to one real/fake logit each, shape (B,).

    Args:
        ndf: width of the first block; each later block doubles it.
        nc, image_size: the images' channels and side.
        kernel_size: 4 as in the PyTorch tutorial, or 5 as in the DCGAN paper's code (same shapes either way).
        batch_norm: BatchNorm after every inner convolution (the paper); off is usual with spectral norm.
        first_batch_norm: BatchNorm on the first layer too, which the paper leaves out (some small-data reports
            found it helps).
        dropout: dropout probability after each LeakyReLU (0: none).
        spectral_norm: spectral normalization of every convolution (Miyato et al. 2018).
    """

    def __init__(
        self,
        ndf: int = 64,
        nc: int = 3,
        image_size: int = 64,
        kernel_size: int = 4,
        batch_norm: bool = True,
        first_batch_norm: bool = False,
        dropout: float = 0.0,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size not in (4, 5):
            raise ValueError(f"kernel_size={kernel_size}: must be 4 or 5")
        self.nc, self.image_size = nc, image_size
        n = num_stride2_blocks(image_size)
        k, pad = kernel_size, kernel_size // 2 - (kernel_size % 2 == 0)  # k=4, p=1 or k=5, p=2: both halve

        def block(c_in: int, c_out: int, norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, k, 2, pad, bias=False)]
            layers += [nn.BatchNorm2d(c_out)] if norm else []
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            return layers + ([nn.Dropout(dropout)] if dropout > 0 else [])

        # nc x image_size^2 -> ndf x (image_size / 2)^2; no BatchNorm on the input layer (paper, section 3)
        layers = block(nc, ndf, batch_norm and first_batch_norm)
        ch = ndf
        for _ in range(n - 1):
            # ch x s x s -> 2ch x s/2 x s/2
            layers += block(ch, ch * 2, batch_norm)
            ch *= 2
        # (ndf * 2^(n-1)) x 4 x 4 -> 1 x 1 x 1; no Sigmoid: the loss takes logits, which is stable under autocast
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if spectral_norm:  # after the init, which must reach the raw weights
            for layer in self.main:
                if isinstance(layer, nn.Conv2d):
                    with_spectral_norm(layer)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.nc, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Discriminator expects images of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        return self.main(x).view(-1)
