"""Does the bf16 Inception reproduce fp32's FID-10k? Each checkpoint scored by `evaluate` in both precisions.

    python benchmarks/fid_bf16_check.py --weights data/fid/default_1.pt \
        good=<run>/checkpoints/last.ckpt middling=<...> poor=<...>

The issue's test for using a bf16 extractor in reported figures: it must reproduce the fp32 FID within 0.5% on
three generators whose FIDs are about 18, 50 and 150, 10k samples each. Each checkpoint runs through the real
`python -m dcgan_lit.evaluate` twice, `metrics.extractor_precision=fp32` and `=bf16`, with the same samples
(evaluate's seed 0) against the same real images, each precision's real features computed once and cached. The
wall time of every evaluate is recorded too: the first of each precision also computes the real features.
Run it alone on the machine: the seconds are the FID-10k time.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")
TOLERANCE = 0.005  # the issue's: within 0.5% of the fp32 FID


def evaluate(ckpt: Path, precision: str, weights: Path, num: int, out: Path) -> dict:
    """One `python -m dcgan_lit.evaluate` run; its JSON report, with the wall seconds added. A report already at
    `out` for the same checkpoint is reused, so an interrupted check goes on where it stopped."""
    if out.is_file() and (report := json.loads(out.read_text())).get("checkpoint") == str(ckpt):
        return {"seconds": float("nan"), **report}  # nan: timed by an earlier, interrupted check
    command = [
        sys.executable,
        "-m",
        "dcgan_lit.evaluate",
        f"ckpt_path={ckpt}",
        f"metrics.num_fake={num}",
        f"metrics.inception_weights={weights}",
        f"metrics.extractor_precision={precision}",
        f"out={out}",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    report = json.loads(out.read_text())
    report["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(report, indent=2))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="the TF-Inception TorchScript (make fid-weights)")
    parser.add_argument("--num", type=int, default=10_000, help="samples per score")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "fid_bf16_check")
    parser.add_argument("checkpoints", nargs="+", help="name=path of each generator's checkpoint")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in args.checkpoints:
        name, _, path = item.partition("=")
        scores = {
            p: evaluate(Path(path).resolve(), p, args.weights.resolve(), args.num, args.out / f"{name}.{p}.json")
            for p in PRECISIONS
        }
        fp32, bf16 = scores["fp32"]["fid"], scores["bf16"]["fid"]
        rows.append(
            {
                "name": name,
                "checkpoint": path,
                **{f"fid_{p}": scores[p]["fid"] for p in PRECISIONS},
                "relative_difference": (bf16 - fp32) / fp32,
                "within_tolerance": abs(bf16 - fp32) <= TOLERANCE * fp32,
                **{f"{k}_{p}": scores[p][k] for p in PRECISIONS for k in ("precision", "recall", "seconds")},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))
    print("| generator | FID-10k fp32 | FID-10k bf16 | bf16 - fp32 | within 0.5% | evaluate s, fp32 / bf16 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['fid_fp32']:.2f} | {r['fid_bf16']:.2f} | {100 * r['relative_difference']:+.2f}% | "
            f"{'yes' if r['within_tolerance'] else 'no'} | {r['seconds_fp32']:.0f} / {r['seconds_bf16']:.0f} |"
        )


if __name__ == "__main__":
    main()
