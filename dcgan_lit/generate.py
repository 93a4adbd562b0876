"""Samples from a checkpoint: a grid, a latent walk (grid + GIF), samples for other FID tools, or a standalone
exported generator.

python -m dcgan_lit.generate ckpt_path=outputs/.../checkpoints/last.ckpt num=64 out=grid.png
python -m dcgan_lit.generate ckpt_path=... mode=interpolate            # interpolation.png and interpolation.gif
python -m dcgan_lit.generate ckpt_path=... mode=samples num=50000 out=samples.npz   # or out=samples/ (PNGs)
python -m dcgan_lit.generate ckpt_path=... mode=export out=g.pt2       # torch.export: loads without dcgan_lit
python -m dcgan_lit.generate ckpt_path=... mode=export out=g.onnx      # ONNX (pip install -e '.[onnx]')
"""

import contextlib
import importlib.util
import io
import json
import math
import os
import zipfile
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.config_check import check_rules, is_int, require
from dcgan_lit.errors import ConfigError, UserError, exit_on_ctrl_c, exit_with
from dcgan_lit.output_files import writable_file, writable_folder

MODES = ("grid", "interpolate", "samples", "export")
DEFAULT_OUT = {
    "grid": "grid.png",
    "interpolate": "interpolation.png",
    "samples": "samples.npz",
    "export": "generator.pt2",
}
EXPORT_FORMATS = (".pt2", ".onnx")
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


def to_uint8(images: Tensor) -> Tensor:
    """G's (B, nc, S, S) output in [-1, 1] -> (B, 3, S, S) uint8, quantized as torchvision's save_image does
    (make_grid(normalize=True, value_range=(-1, 1))); grayscale as RGB, which every Inception reader expects."""
    pixels = ((images.float().clamp(-1, 1) + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1)


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
        pixels = to_uint8(images)
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


def export_onnx(generator: nn.Module, nz: int, out: Path) -> None:
    """Write G in eval mode as ONNX, with a free batch size and a z of either shape, (B, nz) or (B, nz, 1, 1).

    ONNX has no "rank 2 or 4" input, so the graph's input `z` declares its element type but not its rank, and a
    first Reshape to (B, nz) feeds the exported G. onnxruntime runs it; onnx.checker, which asks every graph
    input for a rank, does not pass it.
    """
    for package in ("onnx", "onnxscript"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"out={str(out)!r}: ONNX export needs the {package} package: pip install -e '.[onnx]'")
    import onnx
    from onnx import TensorProto, helper

    model = ExportableGenerator(generator.cpu().eval(), nz).eval()
    batch = torch.export.Dim("batch", min=1)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
        program = torch.onnx.export(
            model, (torch.randn(2, nz),), dynamic_shapes={"z": {0: batch}}, dynamo=True,
            input_names=["z"], output_names=["images"],
        )  # fmt: skip
    proto = program.model_proto  # a new protobuf at each access: edit and save this one
    graph = proto.graph
    (z,) = graph.input
    for node in graph.node:  # G now reads the reshaped z
        node.input[:] = ["z_2d" if name == "z" else name for name in node.input]
    graph.initializer.append(helper.make_tensor("z_2d_shape", TensorProto.INT64, [2], [-1, nz]))
    graph.node.insert(0, helper.make_node("Reshape", ["z", "z_2d_shape"], ["z_2d"], name="z_to_2d"))
    graph.input.remove(z)
    graph.input.insert(0, helper.make_tensor_value_info("z", TensorProto.FLOAT, None))  # rank left open
    meta = {"nz": str(nz), "input": "z: (B, nz) or (B, nz, 1, 1), N(0, I)", "output": "(B, nc, S, S) in [-1, 1]"}
    helper.set_model_props(proto, meta)
    onnx.save(proto, out)


class NpzWriter:
    """(b, S, S, 3) uint8 chunks written as `arr_0` of a .npz, as np.savez writes it (uncompressed), one chunk at a
    time. The file appears under its name only once complete: until then it is `<name>.partial`."""

    def __init__(self, out: Path, shape: tuple[int, ...]) -> None:
        self.out, self.partial = out, out.with_name(out.name + ".partial")
        self.archive = zipfile.ZipFile(self.partial, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.member = self.archive.open("arr_0.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(self.member, {"descr": "|u1", "fortran_order": False, "shape": shape})

    def write(self, chunk: np.ndarray) -> None:
        self.member.write(np.ascontiguousarray(chunk).tobytes())

    def close(self, complete: bool) -> None:
        self.member.close()
        self.archive.close()
        if complete:
            os.replace(self.partial, self.out)
        else:
            self.partial.unlink(missing_ok=True)


@torch.no_grad()
def write_samples(
    generator: nn.Module, num: int, nz: int, gen: torch.Generator, device: torch.device, batch_size: int, out: Path
) -> None:
    """`num` samples as uint8 RGB: `arr_0` of shape (num, S, S, 3) in a .npz, or 000000.png, ... in a folder.

    Rendered and written `batch_size` at a time, so memory stays flat whatever `num` is.
    """
    npz: NpzWriter | None = None
    try:
        for start in range(0, num, batch_size):
            z = torch.randn(min(batch_size, num - start), nz, generator=gen)
            pixels = to_uint8(generator(z.to(device)).cpu()).permute(0, 2, 3, 1).numpy()  # (b, S, S, 3)
            if out.suffix == ".npz":
                npz = npz or NpzWriter(out, (num, *pixels.shape[1:]))
                npz.write(pixels)
            else:
                for i, image in enumerate(pixels, start):
                    Image.fromarray(image).save(out / f"{i:06d}.png")
    except BaseException:
        if npz is not None:
            npz.close(complete=False)
        raise
    if npz is not None:
        npz.close(complete=True)


def check_out(cfg: DictConfig) -> Path:
    """The output, refused before any work when its folder is missing or read-only, or its kind is wrong."""
    out = Path(cfg.out or DEFAULT_OUT[cfg.mode]).expanduser()
    if cfg.mode == "samples" and out.suffix == "":
        out = writable_folder(out, key="out")
        if any(out.glob("*.png")):
            raise ConfigError(
                f"out={str(cfg.out)!r} already holds PNG files; a FID of a mixed folder would be wrong, so choose "
                "a new or empty folder."
            )
        return out
    out = writable_file(out, key="out")
    if cfg.mode == "samples" and out.suffix != ".npz":
        raise ConfigError(
            f"out={str(out)!r}: mode=samples writes a .npz file (arr_0: uint8, N x S x S x 3), e.g. out=samples.npz, "
            "or a folder of PNGs, e.g. out=samples/."
        )
    if cfg.mode == "export" and out.suffix not in EXPORT_FORMATS:
        raise ConfigError(
            f"out={str(out)!r}: mode=export writes a torch.export program ({out.with_suffix('.pt2').name}, loaded "
            f"with torch.export.load) or an ONNX graph ({out.with_suffix('.onnx').name}); TorchScript .pt export "
            "was replaced: torch.jit is deprecated."
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

    if cfg.mode == "samples":
        write_samples(generator, cfg.num, nz, gen, device, cfg.batch_size, out)
        return [out]

    if out.suffix == ".onnx":
        export_onnx(generator, nz, out)
    else:
        export_generator(generator, nz, out)
    return [out]


def cli(cfg: DictConfig) -> list[Path]:
    """run(cfg) as the command line does it: the files written are printed; a user error is one line, exit 2."""
    try:
        written = run(cfg)
    except UserError as e:
        exit_with(e)
    except KeyboardInterrupt:
        exit_on_ctrl_c(f"mode={cfg.mode} stopped; what it had written may be incomplete")
    for path in written:
        print(f"wrote {path}")
    return written


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    cli(cfg)


if __name__ == "__main__":
    main()
