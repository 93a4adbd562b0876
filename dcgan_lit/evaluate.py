"""FID and KID of a checkpoint, printed and written to JSON with the exact protocol.

python -m dcgan_lit.evaluate ckpt_path=outputs/.../checkpoints/last.ckpt [metrics.num_fake=10000] [data=...]

Against the training images (a small folder: see `choose_reference`) the protocol is fid5k-train
(`metrics.num_fake_train`), and the copy check runs too: its ratio goes into the JSON, and the samples nearest the
training set, beside their nearest training images, into `<report>.nearest.png`.
"""

import json
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from dcgan_lit.checkpoint_model import load_generator
from dcgan_lit.config_check import check_config, require
from dcgan_lit.errors import CheckpointError, UserError, exit_on_ctrl_c, exit_with
from dcgan_lit.metrics.copy_check import nearest_grid, nearest_real
from dcgan_lit.metrics.features import load_extractor
from dcgan_lit.metrics.quality import (
    KID_SUBSETS,
    choose_reference,
    extractor_batch_size,
    features,
    fid_kid,
    generated,
    real_split_features,
)
from dcgan_lit.output_files import skip_on_write_error, writable_file
from dcgan_lit.precision import emulated_bf16


def run(cfg: DictConfig, grid_path: Path | None = None) -> dict:
    device = torch.device(
        "cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device.replace("auto", "cpu")
    )
    generator, run_config = load_generator(cfg.ckpt_path, device)
    data_cfg = cfg.data if cfg.get("data") else OmegaConf.create(run_config["data"])
    dm = instantiate(data_cfg)
    # Fakes and reals must share a resolution and channel count, or FID compares different things without a word.
    model_cfg = run_config["model"]
    differs = [
        f"{key}={model_cfg[key]!r} in the checkpoint but data.{key}={getattr(dm, key)!r}"
        for key in ("image_size", "nc")
        if model_cfg.get(key) is not None and model_cfg[key] != getattr(dm, key)
    ]
    if differs:
        raise CheckpointError(f"ckpt_path={cfg.ckpt_path!r} does not fit this data: {'; '.join(differs)}.")
    if hasattr(dm, "prepare_data"):
        dm.prepare_data()
    dm.setup("fit")
    m = cfg.metrics
    reference = choose_reference(dm, m.min_heldout)
    num_fake = m.num_fake_train if reference.split == "train" else m.num_fake
    print(f"reference: {reference.describe()}; protocol {reference.protocol(num_fake)}")
    extractor = load_extractor(m.inception_weights, m.extractor_precision, device, m.cpu_runtime).to(device)
    if slow := emulated_bf16("metrics.extractor_precision", m.extractor_precision, device.type == "cpu"):
        print(f"warning: {slow}")  # evaluate prints, as its other lines: Hydra's logging is off for it
    batch_size = extractor_batch_size(m.batch_size, device)
    real = real_split_features(extractor, dm, reference.split, device, Path(m.cache_dir), batch_size)
    nz = run_config["model"]["nz"]
    images = torch.cat([b.cpu() for b in generated(generator, num_fake, nz, device, seed=cfg.seed)])
    fake = features(extractor, [images], device, batch_size)
    scores = fid_kid(extractor, real, fake, device)
    copy_check = None
    if reference.split == "train":  # only against the training images can samples be copies of them
        check = nearest_real(real, fake)
        copy_check = {**check.as_dict(), "warning": check.warning()}
        if grid_path is not None:
            with skip_on_write_error(grid_path):
                save_image(nearest_grid(images, dm.split_dataset("train"), check), grid_path)
                copy_check["grid"] = str(grid_path)
    return {
        "checkpoint": str(cfg.ckpt_path),
        "fid": scores["fid"],
        "kid": {"mean": scores["kid"], "std": scores["kid_std"]},
        "precision": scores["precision"],  # k-NN manifold estimate, k=3 (Kynkäänniemi et al. 2019)
        "recall": scores["recall"],
        "copy_check": copy_check,  # null against held-out images: nothing there to copy
        "protocol": {
            "name": reference.protocol(num_fake),
            "num_real": scores["num_real"],
            "num_fake": scores["num_fake"],
            "reference": reference.as_dict(),
            "data": type(dm).__name__,
            "samples": f"G in eval mode, z ~ N(0, I) with seed {cfg.seed}, quantized to uint8",
            "resolution": dm.image_size,
            "extractor": extractor.name,
            "extractor_precision": extractor.chosen_by,
            "extractor_runtime": extractor.runtime,
            "resize": "bilinear to 299x299, align_corners=False, no antialias; grayscale repeated to 3 channels",
            "kid": {"subsets": KID_SUBSETS, "subset_size": scores["kid_subset_size"]},
            "statistics": "torchmetrics FrechetInceptionDistance / KernelInceptionDistance; torch-fidelity "
            "precision/recall, k=3",
        },
    }


def report(cfg: DictConfig) -> dict:
    """run(cfg) as the command line does it: arguments and the report path checked first, the scores printed,
    then written as JSON; an error the user can fix is one line and exit code 2."""
    try:
        require(cfg, "ckpt_path", "a checkpoint, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/last.ckpt")
        check_config(cfg)
        # Checked before a minute of sampling, not after: a score that cannot be saved is still printed below.
        out = writable_file(cfg.out or f"{cfg.ckpt_path}.eval.json", key="out")
        result = run(cfg, grid_path=out.with_name(out.name.removesuffix(".json") + ".nearest.png"))
    except UserError as e:
        exit_with(e)
    except KeyboardInterrupt:
        exit_on_ctrl_c("no report was written")
    kid = result["kid"]
    print(
        f"FID {result['fid']:.2f}  KID {kid['mean']:.4f} ± {kid['std']:.4f}  precision {result['precision']:.3f}  "
        f"recall {result['recall']:.3f}  ({result['protocol']['num_fake']} samples, {result['protocol']['name']})"
    )
    if result["copy_check"]:
        check = result["copy_check"]
        print(f"copy check: nn_ratio {check['nn_ratio']:.2f} (1: as close as the training images are to each other)")
        if check["warning"]:
            print(f"warning: {check['warning']}")
    try:
        out.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as e:
        exit_with(UserError(f"out={str(out)!r}: cannot write the report ({e.strerror or e}); the scores are above."))
    print(f"wrote {out}")
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    report(cfg)


if __name__ == "__main__":
    main()
