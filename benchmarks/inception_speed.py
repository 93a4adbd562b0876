"""How fast does the FID Inception run here, NCHW against NHWC input, and do the features change?

    python benchmarks/inception_speed.py --weights data/fid/default_1.pt [--images 64] [--batch-size 32]

Prints img/s for each input layout and the largest feature difference (BENCHMARKS.md, "Scoring on a CPU").
"""

import argparse
import time
import warnings

import torch


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
    outputs = {}
    for name, layout in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
        batches = [b.contiguous(memory_format=layout) for b in x.split(args.batch_size)]
        with torch.no_grad():
            net(batches[0][:2])  # warm-up
            start = time.perf_counter()
            outputs[name] = torch.cat([net(b).reshape(len(b), -1) for b in batches])
            seconds = time.perf_counter() - start
        print(f"{name}: {args.images / seconds:.1f} img/s")
    diff = (outputs["NHWC"] - outputs["NCHW"]).abs().max().item()
    relative = diff / outputs["NCHW"].abs().max().item()
    print(f"largest feature difference: {diff:.3g} ({relative:.3g} of the largest feature)")


if __name__ == "__main__":
    main()
