"""DCGAN discriminator: strided Conv2d + BatchNorm + LeakyReLU(0.2); returns logits, not probabilities."""

from torch import Tensor, nn

from dcgan_lit.nets.init import init_dcgan_weights
from dcgan_lit.nets.sizes import num_stride2_blocks


class Discriminator(nn.Module):
    """Maps images (B, nc, image_size, image_size) to one real/fake logit each, shape (B,)."""

    def __init__(self, ndf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        self.nc, self.image_size = nc, image_size
        n = num_stride2_blocks(image_size)
        layers: list[nn.Module] = [
            # nc x image_size^2 -> ndf x (image_size / 2)^2; no BatchNorm on the input layer (paper, section 3)
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = ndf
        for _ in range(n - 1):
            # ch x s x s -> 2ch x s/2 x s/2
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch *= 2
        # (ndf * 2^(n-1)) x 4 x 4 -> 1 x 1 x 1; no Sigmoid: the loss takes logits, which is stable under autocast
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: Tensor) -> Tensor:
        expected = (self.nc, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Discriminator expects images of shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
            )
        return self.main(x).view(-1)
