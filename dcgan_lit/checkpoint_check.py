"""Refuse a ckpt_path that is not a checkpoint, or one trained with another model, before training starts."""

from pathlib import Path

import torch
from torch import nn

from dcgan_lit.errors import CheckpointError

# Model settings stored in every checkpoint's hyper_parameters, and the config keys that set them.
HPARAM_KEYS: dict[str, str] = {"image_size": "data.image_size", "nc": "data.nc", "nz": "model.nz"}
_SHOWN = 4  # mismatched tensors listed in the message


def read_checkpoint(path: str) -> dict:
    """The checkpoint at `path`, loaded with weights_only=True: a file that needs arbitrary unpickling is refused."""
    try:
        ckpt = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and EOF errors all mean the same thing here
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"ckpt_path={path!r} cannot be read as a checkpoint ({reason[:200]}); pass a .ckpt file written by "
            "dcgan_lit, such as outputs/<date>/<time>/checkpoints/last.ckpt."
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path={path!r} is a PyTorch file but not a Lightning checkpoint (no state_dict).")
    return ckpt


def check_checkpoint(path: str, model: nn.Module, hparams: dict) -> None:
    """Raise CheckpointError saying what differs when `path` cannot resume `model`."""
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
