"""Samples from a checkpoint: a grid, a latent walk (grid + GIF), or a standalone exported generator.

python -m dcgan_lit.generate ckpt_path=outputs/.../checkpoints/last.ckpt num=64 out=grid.png
python -m dcgan_lit.generate ckpt_path=... mode=interpolate            # interpolation.png and interpolation.gif
python -m dcgan_lit.generate ckpt_path=... mode=export out=g.pt2       # torch.export: loads without dcgan_lit
"""

import json
import math
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.config_check import check_rules, is_int, require
from dcgan_lit.errors import ConfigError, UserError, exit_with
from dcgan_lit.output_files import writable_file

MODES = ("grid", "interpolate", "export")
DEFAULT_OUT = {"grid": "grid.png", "interpolate": "interpolation.png", "export": "generator.pt2"}
PAD = 2  # pixels between grid cells, as torchvision's make_grid
RULES = [
    (("num", "nrow", "steps", "batch_size"), lambda v: is_int(v) and v >= 1, "a whole number >= 1"),
    (("points",), lambda v: is_int(v) and v >= 2, "a whole number >= 2 (a walk needs two latent points)"),
    (("mode",), lambda v: v in MODES, f"one of {', '.join(MODES)}"),
]


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
def render(generator: nn.Module, z: Tensor, device: torch.device, batch_size: int) -> Tensor:
    """G(z) on the CPU, computed `batch_size` latents at a time so memory does not grow with len(z)."""
    return torch.cat([generator(chunk.to(device)).float().cpu() for chunk in z.split(batch_size)])


@torch.no_grad()
def grid_image(generator: nn.Module, z: Tensor, nrow: int, device: torch.device, batch_size: int) -> Image.Image:
    """The sample grid that torchvision's save_image would write, built chunk by chunk in uint8.

    Only the finished uint8 canvas grows with len(z), not G's float activations for all samples at once.
    """
    num, cols = len(z), min(nrow, len(z))
    rows = math.ceil(num / cols)
    canvas: Tensor | None = None
    for start in range(0, num, batch_size):
        images = generator(z[start : start + batch_size].to(device)).float().cpu()  # (b, nc, S, S) in [-1, 1]
        # save_image's quantization of make_grid(normalize=True, value_range=(-1, 1)), grayscale as RGB.
        pixels = ((images.clamp(-1, 1) + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
        side = pixels.shape[-1] + PAD
        if canvas is None:  # (H, W, 3), as PIL wants it: no copy of the whole picture at the end
            canvas = torch.zeros(rows * side + PAD, cols * side + PAD, 3, dtype=torch.uint8)
        for i, image in enumerate(pixels, start):
            top, left = (i // cols) * side + PAD, (i % cols) * side + PAD
            canvas[top : top + side - PAD, left : left + side - PAD] = image.permute(1, 2, 0)
    return Image.fromarray(canvas.numpy())


class ExportableGenerator(nn.Module):
    """G as exported: z of shape (B, nz) or (B, nz, 1, 1), the tutorial's, -> images (B, nc, S, S) in [-1, 1]."""

    def __init__(self, generator: nn.Module, nz: int) -> None:
        super().__init__()
        self.generator, self.nz = generator, nz

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z.reshape(z.shape[0], self.nz))


def export_generator(generator: nn.Module, nz: int, out: Path) -> None:
    """Write G in eval mode as a torch.export program with a free batch size; torch.export.load needs no dcgan_lit."""
    model = ExportableGenerator(generator.cpu().eval(), nz).eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (torch.randn(2, nz),), dynamic_shapes={"z": {0: batch}})
    meta = {"nz": nz, "input": "z of shape (B, nz) or (B, nz, 1, 1), N(0, I)", "output": "(B, nc, S, S) in [-1, 1]"}
    torch.export.save(program, out, extra_files={"dcgan_lit.json": json.dumps(meta)})


def check_out(cfg: DictConfig) -> Path:
    """The output file, refused before any work when its folder is missing or read-only, or its kind is wrong."""
    out = writable_file(cfg.out or DEFAULT_OUT[cfg.mode], key="out")
    if cfg.mode == "export" and out.suffix != ".pt2":
        raise ConfigError(
            f"out={str(out)!r}: mode=export writes a torch.export program, loaded with torch.export.load; name it "
            f"{out.with_suffix('.pt2').name} (TorchScript .pt export was replaced: torch.jit is deprecated)."
        )
    return out


def run(cfg: DictConfig) -> list[Path]:
    require(cfg, "ckpt_path", "a checkpoint, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt")
    check_rules(cfg, RULES)
    out = check_out(cfg)
    device = torch.device(cfg.device)
    generator, run_config = load_generator(cfg.ckpt_path, device)
    nz = run_config["model"]["nz"]
    gen = torch.Generator().manual_seed(cfg.seed)

    try:
        return write(cfg, generator, nz, gen, device, out)
    except OSError as e:  # a full disk, say: one line, as for checkpoints
        raise UserError(
            f"out={str(out)!r}: writing failed ({e.strerror or e}); free space or choose another out=."
        ) from e


def write(
    cfg: DictConfig, generator: nn.Module, nz: int, gen: torch.Generator, device: torch.device, out: Path
) -> list[Path]:
    """Render and write what `cfg.mode` asks for; returns the files written."""
    if cfg.mode == "grid":
        grid_image(generator, torch.randn(cfg.num, nz, generator=gen), cfg.nrow, device, cfg.batch_size).save(out)
        return [out]

    if cfg.mode == "interpolate":
        walk = latent_walk(cfg.num, nz, cfg.points, cfg.steps, gen)  # (frames, num, nz)
        frames = [render(generator, z, device, cfg.batch_size) for z in walk]
        # The PNG: the first walk, one leg per row; the GIF: every walk side by side, one frame per step.
        first = torch.stack([f[0] for f in frames])
        save_image(first, out, nrow=cfg.steps, normalize=True, value_range=(-1, 1))
        grids = [make_grid(f, nrow=cfg.nrow, normalize=True, value_range=(-1, 1)) for f in frames]
        pictures = [Image.fromarray(g.mul(255).round().byte().permute(1, 2, 0).numpy()) for g in grids]
        gif = out.with_suffix(".gif")
        pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=80, loop=0)
        return [out, gif]

    export_generator(generator, nz, out)
    return [out]


def cli(cfg: DictConfig) -> list[Path]:
    """run(cfg) as the command line does it: the files written are printed; a user error is one line, exit 2."""
    try:
        written = run(cfg)
    except UserError as e:
        exit_with(e)
    for path in written:
        print(f"wrote {path}")
    return written


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    cli(cfg)


if __name__ == "__main__":
    main()
