"""Where a py-spy profile's samples fall: the share inside each of some functions, and the hottest leaf frames.

    py-spy record -r 50 --nonblocking --format raw -o prof.txt -- python -m dcgan_lit.train ...
    python benchmarks/py_spy_summary.py prof.txt [--inside training_step gan_step manual_backward] [--top 25]

`--format raw` writes one line per distinct stack, "frame;frame;...;leaf COUNT". A function's share counts each
sample once however deep it recurs (a name matches whole, with or without its class). `--top` lists what the
samples were doing: with `py-spy record --native`, the ATen op (convolution_backward, mkldnn_convolution, ...),
else the innermost Python frame. Only samples under `--root` (the training loop by default) count, so imports and
start-up do not dilute the step.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ATEN_OP = re.compile(r"^at::_ops::(\w+?)::(call|redispatch)\b")


def frame_name(frame: str) -> str:
    """'DCGAN.gan_step (dcgan_lit/module.py:159)' -> 'DCGAN.gan_step'; a native frame keeps its symbol."""
    return frame.split(" (", 1)[0]


def matches(frame: str, name: str) -> bool:
    """Whether a frame is the function `name`: 'gan_step' and 'DCGAN.gan_step' both match 'DCGAN.gan_step'."""
    return frame == name or frame.endswith(f".{name}")


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """The (frames, samples) pairs of a py-spy raw profile."""
    stacks = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            raise SystemExit(
                f"{path}:{line_no}: not a py-spy raw line ('frame;...;leaf COUNT'); record with --format raw"
            )
        # A sample with no Python frame (a thread between calls) has an empty stack: it counts under no root.
        stacks.append(([f for f in stack.split(";") if f], int(count)))
    return stacks


def where(frames: list[str]) -> str:
    """What a sample was doing: the outermost ATen op it is in (`--native` profiles), else its innermost Python
    frame. Ops group oneDNN's anonymous JIT kernels under the op that called them."""
    for frame in frames:
        op = ATEN_OP.match(frame_name(frame))
        if op:
            return f"aten::{op.group(1)}"
    python = [f for f in frames if re.search(r"\((.*\.py|<frozen .*>):\d+\)$", f)]
    return frame_name(python[-1]) if python else frame_name(frames[-1])


def summarize(stacks: list[tuple[list[str], int]], root: str, inside: list[str], top: int) -> str:
    """The text report: samples under `root`, the share of them inside each of `inside`, the `top` places."""
    under = [(frames, n) for frames, n in stacks if any(matches(frame_name(f), root) for f in frames)]
    total = sum(n for _, n in under)
    if not total:
        raise SystemExit(f"no sample has a frame matching --root {root!r}; is it the right profile?")
    lines = [f"{total} samples under {root!r}"]
    for name in inside:
        hits = sum(n for frames, n in under if any(matches(frame_name(f), name) for f in frames))
        lines.append(f"  {100 * hits / total:5.1f}% inside {name}")
    doing = Counter()
    for frames, n in under:
        doing[where(frames)] += n
    lines.append(f"the {top} ATen ops (native profiles) or innermost Python frames with the most samples:")
    lines += [f"  {100 * n / total:5.1f}% {name[:150]}" for name, n in doing.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path, help="a py-spy record --format raw output")
    parser.add_argument("--root", default="_TrainingEpochLoop.run", help="count only samples under this frame")
    parser.add_argument(
        "--inside",
        nargs="*",
        default=["training_step", "gan_step", "manual_backward", "LightningOptimizer.step", "on_train_batch_end"],
    )
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if not args.profile.is_file():
        sys.exit(f"{args.profile}: no such file; pass the -o file of `py-spy record --format raw`")
    print(summarize(read_stacks(args.profile), args.root, args.inside, args.top))


if __name__ == "__main__":
    main()
