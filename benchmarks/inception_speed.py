"""How fast does the FID Inception run here, NCHW against NHWC input and as `cpu_graph` rewrites it (fp32 and bf16
autocast), and do the features change?

    python benchmarks/inception_speed.py --weights data/fid/default_1.pt [--images 64] [--batch-size 32]

Prints img/s for each and the largest feature difference from plain NCHW fp32 (BENCHMARKS.md, "Scoring on a CPU"
and "Real space photos").
"""

import argparse
import time
import warnings

import torch

from dcgan_lit.metrics.features import cpu_graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="the TF-Inception TorchScript (make fid-weights)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation note
        net = torch.jit.load(args.weights, map_location="cpu").eval()
    x = (torch.rand(args.images, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 255).round()
    x = (x - 128) / 128
    rewritten = cpu_graph(net)
    outputs = {}
    variants = [
        ("NCHW", net, torch.contiguous_format, False),
        ("NHWC", net, torch.channels_last, False),
        ("NHWC, bf16 autocast", net, torch.channels_last, True),
        ("NHWC, cpu_graph", rewritten, torch.channels_last, False),
        ("NHWC, cpu_graph, bf16 autocast", rewritten, torch.channels_last, True),
    ]
    for name, model, layout, bf16 in variants:
        batches = [b.contiguous(memory_format=layout) for b in x.split(args.batch_size)]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(batches[0][:2])  # warm-up
            start = time.perf_counter()
            outputs[name] = torch.cat([model(b).reshape(len(b), -1).float() for b in batches])
            seconds = time.perf_counter() - start
        diff = (outputs[name] - outputs["NCHW"]).abs().max().item()
        relative = diff / outputs["NCHW"].abs().max().item()
        mean = ((outputs[name] - outputs["NCHW"]).norm() / outputs["NCHW"].norm()).item()
        print(
            f"{name}: {args.images / seconds:.1f} img/s; largest feature difference {diff:.3g} ({relative:.3g} of the "
            f"largest feature), {mean:.3g} of the features' norm"
        )


if __name__ == "__main__":
    main()
