"""Where should the copy check warn? nn_ratio on real photos for new images of the same kind, and for copies.

    python benchmarks/copy_check_calibration.py --weights data/fid/default_1.pt --train DIR --others DIR

`--train` is a folder as `experiment=space` trains on it (its training split, 95%, is the reference, as in
val/nn_ratio); `--others` holds more photos of the same kind that the run never sees. Printed (and written to
result.json): nn_ratio of all the others, its spread over `--subsets` random subsets of the training split's size,
and the ratio of the training images themselves with Gaussian pixel noise of a few sigmas (copies). The warning
threshold of `dcgan_lit/metrics/copy_check.py` sits below the others' spread and above the noisy copies.

It also puts a scale on FID against the training split: the FID of the others as they are, and of the others
degraded (blurred to `--blur` px and back, gray), so a generator's fid5k-train can be read as "like photos with
this much detail".
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcgan_lit.metrics.copy_check import COPY_WARNING_RATIO, nearest_real  # noqa: E402
from dcgan_lit.metrics.features import load_extractor  # noqa: E402
from dcgan_lit.metrics.quality import features, fid_kid, real_split_features  # noqa: E402


def training_images(dm: object) -> torch.Tensor:
    """A set-up data module's training split as one uint8 (N, nc, S, S) tensor."""
    split = dm.split_dataset("train")
    return torch.stack([split[i] for i in range(len(split))])


def degraded(images: torch.Tensor, blur: int | None) -> torch.Tensor:
    """uint8 images area-downsampled to `blur` px and bilinearly back (blur=None: made gray instead)."""
    x = images.float()
    if blur is None:
        x = x.mean(1, keepdim=True).expand_as(x)
    else:
        x = F.interpolate(F.interpolate(x, size=blur, mode="area"), size=images.shape[-1], mode="bilinear")
    return x.round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="the TF-Inception TorchScript (make fid-weights)")
    parser.add_argument("--train", type=Path, required=True, help="the folder a run trains on")
    parser.add_argument("--others", type=Path, required=True, help="photos of the same kind the run never sees")
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--noise", type=float, nargs="*", default=[2, 4, 8, 16, 32], help="pixel sigmas of copies")
    parser.add_argument("--blur", type=int, nargs="*", default=[32, 16, 8], help="sides the others are blurred to")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "copy_check_calibration")
    args = parser.parse_args()
    out, weights = args.out.resolve(), str(args.weights.resolve())
    train_root, others_root = args.train.resolve(), args.others.resolve()
    os.chdir(REPO)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["experiment=space", f"data.root={train_root}"])
        others_cfg = compose("train", overrides=["experiment=space", f"data.root={others_root}", "data.val_fraction=0"])
    dm, others_dm = instantiate(cfg.data), instantiate(others_cfg.data)
    dm.setup("fit")
    others_dm.setup("fit")
    extractor = load_extractor(weights).to(device)
    start = time.perf_counter()
    cache = Path(cfg.metrics.cache_dir)
    real = real_split_features(extractor, dm, "train", device, cache)
    others = real_split_features(extractor, others_dm, "train", device, cache)
    train_images = training_images(dm)
    g = torch.Generator().manual_seed(0)
    noisy = {}
    for sigma in args.noise:
        copies = (train_images.float() + sigma * torch.randn(train_images.shape, generator=g)).round().clamp(0, 255)
        noisy[sigma] = nearest_real(real, features(extractor, copies.to(torch.uint8).split(100), device)).ratio
    subsets = torch.tensor(
        [
            nearest_real(real, others[torch.randperm(len(others), generator=g)[: len(real)]]).ratio
            for _ in range(args.subsets)
        ]
    )
    others_images = training_images(others_dm)
    fid = {"as they are": fid_kid(extractor, real, others, device)["fid"]}
    for blur in [*args.blur, None]:
        worse = features(extractor, degraded(others_images, blur).split(100), device)
        fid[f"blurred to {blur} px" if blur else "gray"] = fid_kid(extractor, real, worse, device)["fid"]
    report = {
        "extractor": extractor.name,
        "num_train": len(real),
        "num_others": len(others),
        "others_ratio": nearest_real(real, others).ratio,
        "others_subsets": {
            "size": len(real),
            "count": args.subsets,
            "min": float(subsets.min()),
            "p05": float(subsets.quantile(0.05)),
            "median": float(subsets.median()),
            "max": float(subsets.max()),
        },
        "noisy_copies": {str(k): v for k, v in noisy.items()},
        "warn_below": COPY_WARNING_RATIO,
        "others_fid_against_train": fid,
        "seconds": time.perf_counter() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
