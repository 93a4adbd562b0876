"""Refuse a ckpt_path that is not a checkpoint, or one trained with another model, before training starts."""

from pathlib import Path

import torch
from torch import nn

from dcgan_lit.errors import CheckpointError

# Model settings stored in every checkpoint's hyper_parameters, and the config keys that set them.
HPARAM_KEYS: dict[str, str] = {"image_size": "data.image_size", "nc": "data.nc", "nz": "model.nz"}
_SHOWN = 4  # mismatched tensors listed in the message


def describe_file(path: Path) -> str:
    """What a file that failed to load as a checkpoint is, from its first bytes: text, an image, a truncated zip..."""
    if not path.exists():
        return "there is no such file"
    if path.is_dir():
        return "it is a folder, not a file"
    size = path.stat().st_size
    if size == 0:
        return "it is an empty file"
    with open(path, "rb") as f:
        head = f.read(512)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"it is {kind}, not a checkpoint"
    if head.startswith(b"PK\x03\x04"):
        return f"it is a zip archive of {size} bytes but not a complete PyTorch checkpoint (truncated or another zip)"
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the file itself (run `git lfs pull`)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"it holds {size} bytes of binary data that PyTorch cannot read"
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"it is a text file ({size} bytes, starting {first!r})"


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x80", "a pickle that cannot be loaded safely (weights_only=True refused it)"),
)


def read_checkpoint(path: str) -> dict:
    """The checkpoint at `path`, loaded with weights_only=True: a file that needs arbitrary unpickling is refused."""
    where = Path(path).expanduser()
    try:
        ckpt = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors: the file's first bytes say more than their messages
        what = describe_file(where)
        unsupported = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line]
        if unsupported:  # a complete file holding objects that need arbitrary code to load
            what = f"it holds Python objects that loading with weights_only=True refuses ({unsupported[0][:160]})"
        raise CheckpointError(
            f"ckpt_path={path!r} cannot be read as a checkpoint: {what}. Pass a .ckpt file written "
            "by dcgan_lit, such as outputs/<date>/<time>/checkpoints/last.ckpt."
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path={path!r} is a PyTorch file but not a Lightning checkpoint (no state_dict).")
    return ckpt


def check_checkpoint(path: str, model: nn.Module, hparams: dict) -> dict:
    """The checkpoint at `path`; CheckpointError saying what differs when it cannot resume `model`."""
    ckpt = read_checkpoint(path)
    saved_hp = ckpt.get("hyper_parameters", {})
    differences = [
        f"{key}={saved_hp[key]!r} in the checkpoint but {hparams[key]!r} here (set {HPARAM_KEYS[key]})"
        for key in HPARAM_KEYS
        if key in saved_hp and key in hparams and saved_hp[key] != hparams[key]
    ]
    ours, theirs = model.state_dict(), ckpt["state_dict"]
    shapes = [
        f"{name}: {tuple(theirs[name].shape)} in the checkpoint, {tuple(ours[name].shape)} here"
        for name in ours
        if name in theirs and theirs[name].shape != ours[name].shape
    ]
    missing = sorted(set(ours) - set(theirs))
    if missing:
        shapes.append(f"{len(missing)} tensors missing from the checkpoint, e.g. {missing[0]}")
    if differences or shapes:
        listed = differences + shapes[:_SHOWN] + ([f"{len(shapes) - _SHOWN} more"] if len(shapes) > _SHOWN else [])
        raise CheckpointError(
            f"ckpt_path={path!r} was trained with another model: {'; '.join(listed)}. Resume with the original "
            "run's settings (its .hydra/overrides.yaml lists them)."
        )
    return ckpt
