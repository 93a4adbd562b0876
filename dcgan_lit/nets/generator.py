"""DCGAN generator: z -> image, ConvTranspose2d + BatchNorm + ReLU, ending in Tanh."""

from torch import Tensor, nn

from dcgan_lit.nets.init import init_dcgan_weights
from dcgan_lit.nets.sizes import num_stride2_blocks


class Generator(nn.Module):
    """Maps z of shape (B, nz) or (B, nz, 1, 1) to images (B, nc, image_size, image_size) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64, kernel_size: int = 4) -> None:
        """kernel_size: 4 as in the PyTorch tutorial, or 5 as in the DCGAN paper's code (same shapes either way)."""
        super().__init__()
        if kernel_size not in (4, 5):
            raise ValueError(f"kernel_size={kernel_size}: must be 4 or 5")
        k, pad, extra = (4, 1, 0) if kernel_size == 4 else (5, 2, 1)  # both exactly double the side
        self.nz, self.nc, self.image_size = nz, nc, image_size
        n = num_stride2_blocks(image_size)
        # Widest at 4x4 and halving per block, so image_size=64 gives the tutorial's 8-4-2-1 x ngf.
        ch = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [
            # nz x 1 x 1 -> (ngf * 2^(n-1)) x 4 x 4
            nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            # ch x s x s -> (ch / 2) x 2s x 2s
            up = nn.ConvTranspose2d(ch, ch // 2, k, 2, pad, output_padding=extra, bias=False)
            layers += [up, nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        # ngf x (image_size / 2)^2 -> nc x image_size x image_size
        layers += [nn.ConvTranspose2d(ch, nc, k, 2, pad, output_padding=extra, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or z.shape[1:] != (self.nz, 1, 1):
            raise ValueError(
                f"Generator expects z of shape (B, {self.nz}) or (B, {self.nz}, 1, 1), got {tuple(z.shape)}"
            )
        return self.main(z)
