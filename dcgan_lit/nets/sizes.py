"""Which image sizes the DCGAN stacks can produce, and how many stride-2 blocks each needs."""

from dcgan_lit.errors import ConfigError

# Every block doubles (G) or halves (D) the side, starting from / ending at 4x4.
SUPPORTED_SIZES: tuple[int, ...] = (16, 32, 64, 128, 256)


def num_stride2_blocks(image_size: int, key: str = "image_size") -> int:
    """Number of 2x up/down blocks between 4x4 and `image_size` (64 -> 4); refuses other sizes."""
    if image_size not in SUPPORTED_SIZES:
        allowed = ", ".join(map(str, SUPPORTED_SIZES))
        raise ConfigError(
            f"{key}={image_size!r} is not supported: the DCGAN doubles the resolution from 4x4, "
            f"so it must be one of {allowed}."
        )
    return image_size.bit_length() - 3  # log2(image_size / 4)
