"""Where a FID-10k's time goes on this machine, stage by stage, in fp32 and in bf16.

    python benchmarks/fid_speed.py --weights data/fid/default_1.pt [--images 256] [--batch-size 10]
    python benchmarks/fid_speed.py --weights data/fid/default_1.pt --ckpt <run>/checkpoints/last.ckpt \
        --num 5000 --real 190

For 10,000 (`--num`) generated images against cached real features (what `evaluate` and `val/fid` do once the real
features are cached; `--real` of them, 190 for a fid5k-train of 190 photos):
  1. sampling: the fashion_mnist_32 generator (nz 100, ngf 64, 32x32, nc 1), or the G of `--ckpt`, makes the
     uint8 images;
  2. resize: uint8 -> float, bilinear to 299x299, (x - 128) / 128, channels-last (FIDFeatures' own steps);
  3. Inception: the TF-Inception forward pass, timed on `--images` images and scaled to `--num`: the TorchScript
     file as loaded, as `cpu_graph` rewrites it, and in fp32 through ONNX Runtime (what `evaluate` and `val/fid`
     run on a CPU in fp32 where it is installed; bf16 runs `cpu_graph`);
  4. FID statistics (torchmetrics: means, covariances, the matrix square root), `--num` against `--real` features;
  5. KID (100 subsets of up to 1,000); 6. precision and recall (torch-fidelity's k-NN, k=3); 7. the copy check
     (each sample's nearest real image).
Stages 4 to 7 run on random features of the right shape: their cost does not depend on the values.
"""

import argparse
import time
import warnings

import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.metrics.copy_check import nearest_real
from dcgan_lit.metrics.features import FIDFeatures, cpu_graph
from dcgan_lit.metrics.onnx_inception import onnx_inception
from dcgan_lit.metrics.precision_recall import precision_recall
from dcgan_lit.metrics.quality import CPU_BATCH, KID_SUBSET, KID_SUBSETS, generated
from dcgan_lit.nets.generator import Generator


def seconds(fn: object) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def resize(x: torch.Tensor) -> torch.Tensor:
    x = F.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False, antialias=False)
    return ((x - 128) / 128).contiguous(memory_format=torch.channels_last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="the TF-Inception TorchScript (make fid-weights)")
    parser.add_argument("--images", type=int, default=256, help="images timed through Inception, scaled to --num")
    parser.add_argument("--batch-size", type=int, default=CPU_BATCH, help="images per Inception pass")
    parser.add_argument("--ckpt", help="sample this checkpoint's G instead of an untrained fashion_mnist_32 one")
    parser.add_argument("--num", type=int, default=10_000, help="generated images")
    parser.add_argument("--real", type=int, help="real features for the statistics (default: --num)")
    args = parser.parse_args()
    num, num_real = args.num, args.real or args.num
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation note
        net = torch.jit.load(args.weights, map_location="cpu").eval()

    if args.ckpt:
        g, run_config = load_generator(args.ckpt, torch.device("cpu"))
        nz = run_config["model"]["nz"]
    else:
        g, nz = Generator(nz=100, ngf=64, nc=1, image_size=32), 100
    images: list[torch.Tensor] = []
    rows = {f"sampling (G, {num})": seconds(lambda: images.extend(generated(g, num, nz, torch.device("cpu"))))}
    sample = torch.cat(images)[: args.images].expand(-1, 3, -1, -1)
    batches = sample.split(args.batch_size)
    with torch.no_grad():
        rows["resize to 299, normalize, NHWC"] = seconds(lambda: [resize(b) for b in batches]) * num / args.images
        inputs = [resize(b) for b in batches]
        nets = {"TorchScript as loaded": net, "cpu_graph": cpu_graph(net)}
        onnx, runtime = onnx_inception(net, torch.get_num_threads())
        if onnx is None:
            print(f"no ONNX Runtime row: {runtime}")
        else:
            nets["onnxruntime"] = onnx  # fp32 only: bf16 stays with torch's autocast
        for (kind, model), name in ((k, p) for k in nets.items() for p in ("fp32", "bf16")):
            if kind == "onnxruntime" and name == "bf16":
                continue
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                for _ in range(2):  # warm-up: oneDNN picks its kernels, TorchScript profiles its first runs
                    model(inputs[0][:2])
                run = seconds(lambda: [model(x) for x in inputs]) * num / args.images  # noqa: B023
                rows[f"Inception forward, {name}, {kind}"] = run

    real, fake = torch.randn(num_real, 2048).double().abs(), torch.randn(num, 2048).double().abs()
    subset = min(KID_SUBSET, num, num_real)
    passthrough = FIDFeatures(torch.nn.Identity(), tf_range=False, name="features")

    def fid() -> None:
        metric = FrechetInceptionDistance(feature=passthrough, normalize=False)
        metric.update(real.float(), real=True)
        metric.update(fake.float(), real=False)
        metric.compute()

    def kid() -> None:
        metric = KernelInceptionDistance(feature=passthrough, subsets=KID_SUBSETS, subset_size=subset)
        metric.update(real.float(), real=True)
        metric.update(fake.float(), real=False)
        metric.compute()

    rows[f"FID statistics ({num} vs {num_real})"] = seconds(fid)
    rows[f"KID, {KID_SUBSETS} subsets of {subset}"] = seconds(kid)
    rows["precision and recall, k=3"] = seconds(lambda: precision_recall(real.float(), fake.float()))
    rows["copy check (nearest real)"] = seconds(lambda: nearest_real(real.float(), fake.float()))

    print(f"| stage of a FID of {num} samples ({torch.get_num_threads()} threads) | seconds |")
    print("|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} |")
    rest = sum(v for k, v in rows.items() if "Inception" not in k)
    for name in (k for k in rows if "Inception" in k):
        total = rest + rows[name]
        print(f"| **total, {name.removeprefix('Inception forward, ')}** | **{total:.0f}** ({total / 60:.1f} min) |")


if __name__ == "__main__":
    main()
