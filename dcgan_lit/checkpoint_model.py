"""Rebuild the trained generator (and its data settings) from a checkpoint alone, for generate and evaluate."""

import torch
from hydra.utils import instantiate
from torch import nn

from dcgan_lit.checkpoint_check import read_checkpoint
from dcgan_lit.errors import CheckpointError


def load_generator(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """(G in eval mode on `device`, the run's {"model": ..., "data": ...} config) from a dcgan_lit checkpoint."""
    ckpt = read_checkpoint(path)
    run_config = ckpt.get("run_config")
    if not run_config:
        raise CheckpointError(
            f"ckpt_path={path!r} holds no model settings (written before they were stored); retrain or resume it "
            "once with this version so that its checkpoints carry them."
        )
    generator = instantiate(run_config["model"]["generator"])
    prefix = "generator."
    generator.load_state_dict({k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    return generator.to(device).eval(), run_config
