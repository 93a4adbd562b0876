"""Training throughput on one GPU: the PyTorch DCGAN tutorial as written against dcgan_lit, in the same run.

    python benchmarks/throughput.py                      # 202,599 CelebA-shaped JPEGs, 5 epochs (make bench)
    python benchmarks/throughput.py --num-images 20000 --epochs 1   # a quick look

It measures, on the same folder of 178x218 JPEGs (real CelebA under --root if it is there, else generated):
  1. the tutorial's loop exactly as written: ImageFolder, DataLoader(workers=2), Sigmoid + BCELoss, .item() per step;
  2. a raw whole-step CUDA-graph loop (data on the GPU, bf16, channels_last, capturable Adam): the ceiling;
  3. `python -m dcgan_lit.train experiment=celeba trainer=gpu` with everything on (device cache, bf16,
     channels_last, CUDA graphs), the real Trainer with logging, checkpoints and sample grids;
  4. the same with model.cuda_graph=false, and in fp32, for one epoch each, to show what each part buys;
  5. dcgan_lit on the CPU, a small config, for scale.
Steady-state img/s leaves out the first batches (cuDNN autotuning, capture). Results go to --out as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcgan_lit.nets.discriminator import Discriminator  # noqa: E402
from dcgan_lit.nets.generator import Generator  # noqa: E402

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba


def _write_jpeg(args: tuple[Path, int]) -> None:
    path, seed = args
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)  # smooth blobs, a face photo's JPEG size and cost
    img = Image.fromarray(low, "RGB").resize(CELEBA_SIZE, Image.BICUBIC)
    img.save(path, quality=90)


def celeba_folder(real_root: Path, generated_root: Path, n: int) -> Path:
    """A folder holding img_align_celeba/: real CelebA when real_root has it, else n generated 178x218 JPEGs.

    Generated files go to their own folder, never into the real data folder.
    """
    if any((real_root / "img_align_celeba").glob("*.jpg")):
        return real_root
    folder = generated_root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    have = sum(1 for _ in folder.glob("*.jpg"))
    if have < n:
        start = time.perf_counter()
        todo = [(folder / f"{i + 1:06d}.jpg", i) for i in range(have, n)]
        with Pool(os.cpu_count()) as pool:
            pool.map(_write_jpeg, todo, chunksize=256)
        print(f"generated {len(todo)} CelebA-shaped JPEGs in {time.perf_counter() - start:.0f}s", flush=True)
    return generated_root


# ---------------------------------------------------------------- 1. the tutorial, as written
class TutorialG(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class TutorialD(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def tutorial(root: Path, batches: int, warmup: int = 20) -> dict:
    import torchvision.datasets as dset
    import torchvision.transforms as transforms

    dataset = dset.ImageFolder(
        root=str(root),
        transform=transforms.Compose(
            [
                transforms.Resize(64),
                transforms.CenterCrop(64),
                transforms.ToTensor(),
                transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            ]
        ),
    )
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=2)
    device = torch.device("cuda:0")
    netG, netD = TutorialG().to(device), TutorialD().to(device)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    real_label, fake_label = 1.0, 0.0
    G_losses, D_losses = [], []
    start = 0.0
    for i, data in enumerate(dataloader):
        if i == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        if i == warmup + batches:
            break
        netD.zero_grad()
        real_cpu = data[0].to(device)
        b_size = real_cpu.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
        output = netD(real_cpu).view(-1)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(b_size, 100, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach()).view(-1)
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake).view(-1)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        if i % 50 == 0:
            print(f"[tutorial {i}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} D(x): {D_x:.4f} "
                  f"D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}", flush=True)  # fmt: skip
        G_losses.append(errG.item())
        D_losses.append(errD.item())
    torch.cuda.synchronize()
    return {"images_per_sec": batches * 128 / (time.perf_counter() - start), "batches": batches}


# ---------------------------------------------------------------- 2. the whole-step CUDA-graph ceiling
def ceiling(steps: int = 300) -> dict:
    """The whole D+G update as one CUDA graph with capturable Adam, data already on the GPU: no framework at all."""
    device, b, nz = torch.device("cuda:0"), 128, 100
    G = Generator(nz, 64, 3, 64).to(device, memory_format=torch.channels_last)
    D = Discriminator(64, 3, 64).to(device, memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=True, foreach=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=True, foreach=True)
    data = torch.randint(0, 256, (50_000, 3, 64, 64), dtype=torch.uint8, device=device)
    real = torch.empty(b, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    bce = nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            fake = G(torch.randn(b, nz, device=device))
            d_loss = bce(D(real).float(), ones) + bce(D(fake.detach()).float(), zeros)
        opt_d.zero_grad(set_to_none=False)
        d_loss.backward()
        opt_d.step()
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            g_loss = bce(D(fake).float(), ones)
        opt_g.zero_grad(set_to_none=False)
        g_loss.backward()
        opt_g.step()

    torch.backends.cudnn.benchmark = True
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(5):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    def run(n: int) -> None:
        for _ in range(n):
            idx = torch.randint(0, data.size(0), (b,), device=device)
            real.copy_(data.index_select(0, idx).float().div_(127.5).sub_(1))
            graph.replay()

    run(20)
    torch.cuda.synchronize()
    start = time.perf_counter()
    run(steps)
    torch.cuda.synchronize()
    return {"images_per_sec": steps * b / (time.perf_counter() - start), "batches": steps}


# ---------------------------------------------------------------- 3-5. dcgan_lit through its CLI
def dcgan_lit(name: str, out: Path, overrides: list[str]) -> dict:
    run_dir = out / name
    cmd = [sys.executable, "-m", "dcgan_lit.train", *overrides, f"hydra.run.dir={run_dir}"]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
        raise SystemExit(f"{name} failed")
    summary = json.loads((run_dir / "throughput.json").read_text())
    summary["wall_seconds"] = wall
    summary["command"] = "python -m dcgan_lit.train " + " ".join(overrides)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "celeba", help="real CelebA, if there")
    parser.add_argument("--num-images", type=int, default=202_599, help="generated JPEGs when there is no CelebA")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tutorial-batches", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench")
    parser.add_argument("--skip-variants", action="store_true", help="only the full dcgan_lit run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/throughput.py measures GPU training; no CUDA GPU is visible.")

    args.out.mkdir(parents=True, exist_ok=True)
    root = celeba_folder(args.root, args.out / "celeba_like", args.num_images)
    num_images = sum(1 for _ in (root / "img_align_celeba").glob("*.jpg"))
    results: dict = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "images": num_images,
        "root": str(root),
    }
    results["tutorial"] = tutorial(root, args.tutorial_batches)
    print(f"tutorial as written: {results['tutorial']['images_per_sec']:.0f} img/s", flush=True)
    results["ceiling"] = ceiling()
    print(f"whole-step CUDA graph ceiling: {results['ceiling']['images_per_sec']:.0f} img/s", flush=True)

    common = [
        "experiment=celeba",
        "trainer=gpu",
        f"data.root={root}",
        f"paths.data_dir={args.out / 'data'}",
    ]
    results["dcgan_lit"] = dcgan_lit("full", args.out, [*common, f"trainer.max_epochs={args.epochs}"])
    if not args.skip_variants:
        one = [*common, "trainer.max_epochs=1"]
        results["eager_bf16"] = dcgan_lit("eager_bf16", args.out, [*one, "model.cuda_graph=false"])
        results["eager_fp32"] = dcgan_lit(
            "eager_fp32", args.out, [*one, "model.cuda_graph=false", "trainer.precision=32-true"]
        )
        results["cpu_small"] = dcgan_lit(
            "cpu_small", args.out, ["trainer=cpu", "+trainer.limit_train_batches=60", "trainer.max_epochs=1"]
        )

    ours, theirs = results["dcgan_lit"], results["tutorial"]["images_per_sec"]
    print("\n| run | img/s |\n|---|---|")
    print(f"| tutorial as written (ImageFolder, workers=2) | {theirs:,.0f} |")
    print(f"| whole-step CUDA graph ceiling (no framework) | {results['ceiling']['images_per_sec']:,.0f} |")
    for key in ("dcgan_lit", "eager_bf16", "eager_fp32", "cpu_small"):
        if key in results:
            print(f"| {results[key]['command']} | {results[key]['steady_images_per_sec']:,.0f} |")
    print(f"\ndcgan_lit / tutorial: {ours['steady_images_per_sec'] / theirs:.1f}x")
    print(f"dcgan_lit / ceiling: {ours['steady_images_per_sec'] / results['ceiling']['images_per_sec']:.1%}")
    print(f"training time, {args.epochs} epochs: {ours['train_seconds']:.1f}s (epochs: "
          f"{', '.join(f'{s:.1f}' for s in ours['epoch_seconds'])}s)")  # fmt: skip
    print(f"one-time preprocessing: {ours['preprocess_seconds']:.1f}s; peak GPU memory "
          f"{ours['peak_gpu_memory_gib']:.2f} GiB")  # fmt: skip
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
