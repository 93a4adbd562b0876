"""The fully connected "standard GAN" of the teaching material: G 256-512-1024, BatchNorm1d, LeakyReLU(0.2), Tanh."""

from torch import Tensor, nn

from dcgan_lit.nets.init import init_dcgan_weights


class MLPGenerator(nn.Module):
    """z (B, nz) -> images (B, nc, image_size, image_size) through 256, 512 and 1024 hidden units."""

    def __init__(self, nz: int = 100, nc: int = 1, image_size: int = 32) -> None:
        super().__init__()
        self.nz, self.nc, self.image_size = nz, nc, image_size
        self.main = nn.Sequential(
            nn.Linear(nz, 256), nn.LeakyReLU(0.2, inplace=True),  # no BatchNorm on the first layer, as usual
            nn.Linear(256, 512), nn.BatchNorm1d(512), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, nc * image_size * image_size), nn.Tanh(),
        )  # fmt: skip
        self.apply(init_dcgan_weights)

    def forward(self, z: Tensor) -> Tensor:
        # (B, nz) -> (B, nc * S * S) -> (B, nc, S, S)
        return self.main(z.flatten(1)).view(-1, self.nc, self.image_size, self.image_size)


class MLPDiscriminator(nn.Module):
    """Images -> one logit each, through 512 and 256 hidden units with LeakyReLU(0.2)."""

    def __init__(self, nc: int = 1, image_size: int = 32) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Flatten(),  # (B, nc, S, S) -> (B, nc * S * S)
            nn.Linear(nc * image_size * image_size, 512), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 256), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(256, 1),
        )  # fmt: skip
        self.apply(init_dcgan_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x).view(-1)
