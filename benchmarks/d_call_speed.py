"""One D call on real and fake together against two calls, the module's own losses, interleaved in one process.

    python benchmarks/d_call_speed.py experiment=fashion_mnist_32_best [--precision bf16] [--rounds 12]

Builds the experiment's DCGAN from the composed config and times D's and G's updates (the module's
`discriminator_loss` and `generator_loss`, plain autograd and Adam around them), alternating `joint_d_call`
off and on every 25 steps, so the machine's drift hits both sides alike. Prints each side's median img/s.
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dcgan_lit.memory_format import memory_format_for
from dcgan_lit.module import DCGAN


def step(
    model: DCGAN, real: torch.Tensor, opt_d: torch.optim.Optimizer, opt_g: torch.optim.Optimizer, bf16: bool
) -> None:
    z = torch.randn(len(real), model.hparams.nz)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        fake = model.generator(z)
        model.generator.requires_grad_(False)
        d_loss, _, _ = model.discriminator_loss(real, fake.detach())
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    model.generator.requires_grad_(True)
    model.discriminator.requires_grad_(False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        g_loss, _ = model.generator_loss(fake)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    model.discriminator.requires_grad_(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", default=["experiment=fashion_mnist_32_best"])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base=None):
        cfg = compose("train", overrides=args.overrides)
    model: DCGAN = instantiate(cfg.model)
    bf16 = args.precision == "bf16"
    layout = memory_format_for(None, torch.device("cpu"), "bf16-mixed" if bf16 else "32-true")
    model.to(memory_format=layout)
    opt_g, opt_d = model.configure_optimizers()
    real = torch.rand(cfg.data.batch_size, model.hparams.nc, model.hparams.image_size, model.hparams.image_size) * 2 - 1
    real = real.contiguous(memory_format=layout)
    print(f"{cfg.data.batch_size} images per batch, {args.precision}, {torch.get_num_threads()} threads")
    if model.d_mixes_batch:
        raise SystemExit("this D has BatchNorm: it is always called on each batch apart")
    rates: dict[bool, list[float]] = {False: [], True: []}
    for warmup in range(20):
        model.joint_d_call = warmup % 2 == 0
        step(model, real, opt_d, opt_g, bf16)
    for r in range(args.rounds):
        for joint in (False, True) if r % 2 == 0 else (True, False):
            model.joint_d_call = joint
            start = time.perf_counter()
            for _ in range(args.steps):
                step(model, real, opt_d, opt_g, bf16)
            rates[joint].append(args.steps * len(real) / (time.perf_counter() - start))
    for joint, name in ((False, "two D calls"), (True, "one D call ")):
        rounds = ", ".join(f"{x:.0f}" for x in rates[joint])
        print(f"{name}: {statistics.median(rates[joint]):.1f} img/s (rounds: {rounds})")
    print(f"one / two: {statistics.median(rates[True]) / statistics.median(rates[False]):.3f}x")


if __name__ == "__main__":
    main()
