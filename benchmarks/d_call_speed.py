"""The raw GAN step two ways, interleaved in one process: one D call on real and fake against two, or autocast
per forward phase against Lightning's one autocast around the whole step.

    python benchmarks/d_call_speed.py experiment=fashion_mnist_32_best [--precision bf16] [--rounds 12]
    python benchmarks/d_call_speed.py experiment=fashion_mnist_32_best --compare autocast

Builds the experiment's DCGAN from the composed config and times D's and G's updates (the module's
`discriminator_loss` and `generator_loss`, plain autograd and Adam around them), switching between the two sides
every 25 steps, so the machine's drift hits both alike. Prints each side's median img/s.
- `--compare d_calls` (default): `joint_d_call` off and on.
- `--compare autocast`: with the D calls the trainer makes in this precision, autocast entered around each forward
  phase with the backward and the optimizer steps outside (PyTorch's AMP recipe), against one
  `torch.autocast(cache_enabled=False)` around everything, backward and steps included, which is what Lightning's
  bf16-mixed does around a manual-optimization `training_step`. bf16 only: in fp32 autocast is off.
"""

import argparse
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dcgan_lit.memory_format import memory_format_for
from dcgan_lit.module import DCGAN, joint_d_call_for


def step(
    model: DCGAN,
    real: torch.Tensor,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    bf16: bool,
    lightning_autocast: bool = False,
) -> None:
    # An inner autocast(enabled=False) would switch the outer one off, so with one outer context the phases get none.
    outer = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False) if lightning_autocast else nullcontext()

    def phase() -> AbstractContextManager:
        return nullcontext() if lightning_autocast else torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    with outer:
        z = torch.randn(len(real), model.hparams.nz)
        with phase():
            fake = model.generator(z)
            model.generator.requires_grad_(False)
            d_loss, _, _ = model.discriminator_loss(real, fake.detach())
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        model.generator.requires_grad_(True)
        model.discriminator.requires_grad_(False)
        with phase():
            g_loss, _ = model.generator_loss(fake)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        model.discriminator.requires_grad_(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", default=["experiment=fashion_mnist_32_best"])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument(
        "--compare", choices=("d_calls", "autocast"), default="d_calls", help="what the sides differ in"
    )
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    if args.compare == "autocast" and args.precision != "bf16":
        parser.error("--compare autocast needs --precision bf16: in fp32 autocast is off on both sides")
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
    if args.compare == "d_calls":
        if model.d_mixes_batch:
            raise SystemExit("this D has BatchNorm: it is always called on each batch apart")
        names = {False: "two D calls", True: "one D call"}
        # side -> (joint_d_call, lightning_autocast)
        sides = {False: (False, False), True: (True, False)}
    else:
        joint = joint_d_call_for(model.d_mixes_batch, torch.device("cpu"), "bf16-mixed")
        names = {False: "autocast per phase", True: "one autocast (Lightning)"}
        sides = {False: (joint, False), True: (joint, True)}
        print(f"{'one D call' if joint else 'two D calls'} on both sides, as the trainer makes them in bf16")
    rates: dict[bool, list[float]] = {False: [], True: []}

    def run(side: bool, steps: int) -> None:
        model.joint_d_call, lightning_autocast = sides[side]
        for _ in range(steps):
            step(model, real, opt_d, opt_g, bf16, lightning_autocast)

    for warmup in range(10):
        run(warmup % 2 == 0, 2)
    for r in range(args.rounds):
        for side in (False, True) if r % 2 == 0 else (True, False):
            start = time.perf_counter()
            run(side, args.steps)
            rates[side].append(args.steps * len(real) / (time.perf_counter() - start))
    width = max(map(len, names.values()))
    for side in (False, True):
        rounds = ", ".join(f"{x:.0f}" for x in rates[side])
        print(f"{names[side]:<{width}}: {statistics.median(rates[side]):.1f} img/s (rounds: {rounds})")
    print(f"{names[True]} / {names[False]}: {statistics.median(rates[True]) / statistics.median(rates[False]):.3f}x")


if __name__ == "__main__":
    main()
