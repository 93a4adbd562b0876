"""The DCGAN weight init of Radford et al. (2015), section 4."""

from torch import nn


def init_dcgan_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); BatchNorm weight ~ N(1, 0.02) and bias 0. Use with `net.apply`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
