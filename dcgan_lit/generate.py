"""Samples from a checkpoint: a grid, a latent walk (grid + GIF), or a standalone TorchScript generator.

python -m dcgan_lit.generate ckpt_path=outputs/.../checkpoints/last.ckpt num=64 out=grid.png
python -m dcgan_lit.generate ckpt_path=... mode=interpolate            # interpolation.png and interpolation.gif
python -m dcgan_lit.generate ckpt_path=... mode=export out=g.pt        # loads with torch.jit.load, no dcgan_lit
"""

import json
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.errors import ConfigError, UserError, exit_with

MODES = ("grid", "interpolate", "export")


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of a and b at fractions t (steps,); Gaussian latents keep their norm."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))  # (B, 1)
    t = t.view(-1, 1, 1)  # (steps, 1, 1) against (B, nz)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def latent_walk(num: int, nz: int, points: int, steps: int, gen: torch.Generator) -> Tensor:
    """(frames, num, nz): `num` walks through `points` random latents, `steps` frames per leg, looping back."""
    anchors = torch.randn(points, num, nz, generator=gen)
    t = torch.arange(steps) / steps
    legs = [slerp(anchors[i], anchors[(i + 1) % points], t) for i in range(points)]
    return torch.cat(legs)


@torch.no_grad()
def render(generator: nn.Module, z: Tensor, device: torch.device) -> Tensor:
    return generator(z.to(device)).float().cpu()


def run(cfg: DictConfig) -> list[Path]:
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode!r}: must be one of {', '.join(MODES)}.")
    device = torch.device(cfg.device)
    generator, run_config = load_generator(cfg.ckpt_path, device)
    nz = run_config["model"]["nz"]
    gen = torch.Generator().manual_seed(cfg.seed)

    if cfg.mode == "grid":
        out = Path(cfg.out or "grid.png")
        images = render(generator, torch.randn(cfg.num, nz, generator=gen), device)
        save_image(images, out, nrow=cfg.nrow, normalize=True, value_range=(-1, 1))
        return [out]

    if cfg.mode == "interpolate":
        out = Path(cfg.out or "interpolation.png")
        walk = latent_walk(cfg.num, nz, cfg.points, cfg.steps, gen)  # (frames, num, nz)
        frames = [render(generator, z, device) for z in walk]
        # The PNG: the first walk, one leg per row; the GIF: every walk side by side, one frame per step.
        first = torch.stack([f[0] for f in frames])
        save_image(first, out, nrow=cfg.steps, normalize=True, value_range=(-1, 1))
        grids = [make_grid(f, nrow=cfg.nrow, normalize=True, value_range=(-1, 1)) for f in frames]
        pictures = [Image.fromarray(g.mul(255).round().byte().permute(1, 2, 0).numpy()) for g in grids]
        gif = out.with_suffix(".gif")
        pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=80, loop=0)
        return [out, gif]

    out = Path(cfg.out or "generator.pt")
    example = torch.randn(2, nz, generator=gen)
    scripted = torch.jit.trace(generator.cpu().eval(), example)
    meta = {"nz": nz, "input": "z of shape (B, nz), N(0, I)", "output": "images (B, nc, S, S) in [-1, 1]"}
    torch.jit.save(scripted, str(out), _extra_files={"dcgan_lit.json": json.dumps(meta)})
    return [out]


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        written = run(cfg)
    except UserError as e:
        exit_with(e)
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
