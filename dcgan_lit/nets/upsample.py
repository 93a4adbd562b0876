"""The Upsample + Conv3x3 DCGAN variant: G projects z to 128 x (S/4)^2 and doubles twice; D is 3x3 stride-2 convs."""

from torch import Tensor, nn

from dcgan_lit.errors import ConfigError
from dcgan_lit.nets.init import init_dcgan_weights


class UpsampleGenerator(nn.Module):
    """z (B, nz) -> Linear -> 128 x S/4 x S/4 -> (Upsample x2, Conv3x3) twice -> nc x S x S, Tanh.

    Nearest-neighbour upsampling followed by a 3x3 convolution avoids the checkerboard artefacts that strided
    transposed convolutions can leave (Odena et al., 2016).
    """

    def __init__(self, nz: int = 100, nc: int = 1, image_size: int = 32, channels: int = 128) -> None:
        super().__init__()
        if image_size % 4:
            raise ConfigError(f"data.image_size={image_size}: model=dcgan_upsample needs a multiple of 4.")
        self.nz, self.channels, self.init = nz, channels, image_size // 4
        self.project = nn.Linear(nz, channels * self.init**2)  # (B, nz) -> (B, 128 * (S/4)^2)
        self.main = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.Upsample(scale_factor=2),  # 128 x S/4 -> 128 x S/2
            nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),  # 128 x S/2 -> 128 x S
            nn.Conv2d(channels, channels // 2, 3, 1, 1), nn.BatchNorm2d(channels // 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels // 2, nc, 3, 1, 1), nn.Tanh(),  # 64 x S -> nc x S
        )  # fmt: skip
        self.apply(init_dcgan_weights)

    def forward(self, z: Tensor) -> Tensor:
        x = self.project(z.flatten(1)).view(-1, self.channels, self.init, self.init)
        return self.main(x)


class Conv3x3Discriminator(nn.Module):
    """Images -> four 3x3 stride-2 conv blocks (16, 32, 64, 128 channels) -> Linear -> one logit each."""

    def __init__(self, nc: int = 1, image_size: int = 32) -> None:
        super().__init__()
        if image_size % 16:
            raise ConfigError(f"data.image_size={image_size}: model=dcgan_upsample needs a multiple of 16.")
        layers: list[nn.Module] = []
        c_in = nc
        for i, c_out in enumerate((16, 32, 64, 128)):
            # c_in x s x s -> c_out x s/2 x s/2
            layers += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            layers += [nn.BatchNorm2d(c_out)] if i > 0 else []  # none on the first block, as in DCGAN
            c_in = c_out
        self.main = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(128 * (image_size // 16) ** 2, 1)  # 128 x S/16 x S/16 -> 1
        self.apply(init_dcgan_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.main(x)).view(-1)
