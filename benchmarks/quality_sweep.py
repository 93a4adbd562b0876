"""Which preset gives the best FID? Trains presets x seeds (side by side on a GPU) and tabulates val/fid.

    python benchmarks/quality_sweep.py --weights data/fid/default_1.pt                   # every preset, seeds 1 999
    python benchmarks/quality_sweep.py --weights W --presets hinge_sn_ema_b64,ema_b64 --seeds 1 --parallel 4
    python benchmarks/quality_sweep.py --presets-file benchmarks/fmnist32_presets.yaml --weights W   # on a CPU

Each (preset, seed) is a real `python -m dcgan_lit.train` run with the presets file's protocol (by default
benchmarks/quality_presets.yaml: experiment=fashion_mnist trainer=gpu, 15 epochs, FID-10k at epochs 5, 10 and
15), the preset's overrides, `seed=S` and `metrics.inception_weights=W`, in OUT/<preset>/seed<S>/. Up to
--parallel runs share the GPU at once: one run of the 28 MB Fashion-MNIST model leaves most of an H100 idle.
Overrides after `--` go to every run. The data set is downloaded (or checked) once, before the runs start.
A run that fails is reported with its log's last line; the others go on. With `final_fid: N` in the presets
file (or --final-fid N), each run's last checkpoint is then scored by `python -m dcgan_lit.evaluate` with N
samples (OUT/<preset>/seed<S>/final_fid.json): the number the table ranks presets by.

The scores are read back from each run's TensorBoard events (val/fid, val/kid at the epoch they were logged)
and written to OUT/quality.json and OUT/quality.md: a row per run, then the mean over seeds of each preset.
Each row also has the run's steady img/s from its throughput.json (the FID passes fall inside that time).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from dcgan_lit.errors import UserError  # noqa: E402

PRESETS_FILE = Path(__file__).resolve().parent / "quality_presets.yaml"


@dataclass
class Run:
    preset: str
    seed: int
    overrides: list[str]
    dir: Path
    returncode: int | None = None
    seconds: float = 0.0
    error: str = ""
    scores: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch (1-based) -> {"fid", "kid"}
    images_per_sec: float | None = None  # steady-state training throughput, from the run's throughput.json
    train_minutes: float | None = None  # the epochs' own time, without the FID passes between them
    evaluation: dict | None = None  # evaluate's report on the last checkpoint, with --final-fid

    @property
    def final_fid(self) -> float | None:
        if self.evaluation is not None:
            return self.evaluation["fid"]
        return self.scores[max(self.scores)]["fid"] if self.scores else None

    @property
    def command(self) -> str:
        return "python -m dcgan_lit.train " + " ".join(self.overrides)


def expand(name: str, presets: dict[str, list[str]], trail: tuple[str, ...] = ()) -> list[str]:
    """A preset's overrides, with the names of other presets in it replaced by their overrides."""
    if name not in presets:
        raise SystemExit(f"error: no preset {name!r} in the presets file; known: {', '.join(presets)}")
    if name in trail:
        raise SystemExit(f"error: presets refer to each other in a loop: {' -> '.join([*trail, name])}")
    out: list[str] = []
    for item in presets[name] or []:
        out += expand(item, presets, (*trail, name)) if item in presets else [str(item)]
    return out


def plan(
    protocol: list[str], presets: dict[str, list[str]], names: list[str], seeds: list[int], extra: list[str], out: Path
) -> list[Run]:
    """One Run per (preset, seed), with every override it will get, in the order they are listed."""
    runs = []
    for name in names:
        overrides = [*protocol, *expand(name, presets)]
        for seed in seeds:
            runs.append(Run(name, seed, [*overrides, f"seed={seed}", *extra], out / name / f"seed{seed}"))
    return runs


def prepare_data(overrides: list[str]) -> bool:
    """Download (or check) the data once, before parallel runs would each download it into the same folder.

    Returns whether the protocol scores FID while training (a metrics group), which decides where --weights go.
    """
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=overrides)
    here = os.getcwd()
    os.chdir(REPO)  # where the runs start, so relative data paths mean the same folder
    try:
        instantiate(cfg.data).prepare_data()
    finally:
        os.chdir(here)
    return cfg.get("metrics") is not None


def launch(runs: list[Run], parallel: int, on_done: Callable[[Run], None] = lambda run: None) -> None:
    """Runs them, at most `parallel` at a time, each printing to <dir>/console.log; `on_done(run)` as each ends."""
    # Split the CPUs this process may use (taskset) between the runs, rather than have each spawn a thread per core.
    threads = str(max(1, len(os.sched_getaffinity(0)) // parallel))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(REPO)}
    pending, active = list(runs), []
    while pending or active:
        while pending and len(active) < parallel:
            run = pending.pop(0)
            run.dir.mkdir(parents=True, exist_ok=True)
            log = open(run.dir / "console.log", "w")  # not train.log: Hydra writes its own log there
            cmd = [sys.executable, "-m", "dcgan_lit.train", *run.overrides, f"hydra.run.dir={run.dir}"]
            print(f"start {run.preset} seed {run.seed}: {' '.join(cmd[2:])}", flush=True)
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            active.append((run, proc, log, time.perf_counter()))
        time.sleep(0.5)
        for item in [a for a in active if a[1].poll() is not None]:
            run, proc, log, start = item
            log.close()
            active.remove(item)
            run.returncode, run.seconds = proc.returncode, time.perf_counter() - start
            if run.returncode:
                lines = (run.dir / "console.log").read_text(errors="replace").strip().splitlines()
                run.error = lines[-1] if lines else f"exit code {run.returncode}"
            print(f"done  {run.preset} seed {run.seed}: exit {run.returncode} in {run.seconds:.0f} s", flush=True)
            on_done(run)


def evaluate(run: Run, num_fake: int, weights: list[str], extra: list[str]) -> None:
    """Score the run's last checkpoint with `num_fake` samples through evaluate, into run.evaluation."""
    report = run.dir / "final_fid.json"
    data_dir = [o for o in extra if o.startswith("paths.data_dir=")]  # the runs' feature cache
    cmd = [sys.executable, "-m", "dcgan_lit.evaluate", f"ckpt_path={run.dir / 'checkpoints' / 'last.ckpt'}",
           f"metrics.num_fake={num_fake}", f"metrics.num_fake_train={num_fake}", f"out={report}", *weights,
           *data_dir]  # fmt: skip
    print(f"score {run.preset} seed {run.seed}: FID of {num_fake} samples", flush=True)
    with open(run.dir / "evaluate.log", "w") as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        run.returncode = proc.returncode
        lines = (run.dir / "evaluate.log").read_text(errors="replace").strip().splitlines()
        run.error = "evaluate: " + (lines[-1] if lines else f"exit code {proc.returncode}")
    else:
        run.evaluation = json.loads(report.read_text())


def read_scores(run_dir: Path) -> dict[int, dict[str, float]]:
    """{epoch: {"fid": x, "kid": y}} from the run's TensorBoard events; Lightning logs `epoch` at the same step."""
    scores: dict[int, dict[str, float]] = {}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "val/fid" not in tags:
            continue
        epoch_tag = "train/epoch" if "train/epoch" in tags else "epoch"  # Lightning's own name, before issue 12
        epoch_at = {e.step: int(e.value) for e in acc.Scalars(epoch_tag)}
        for name in ("fid", "kid"):
            for e in acc.Scalars(f"val/{name}") if f"val/{name}" in tags else []:
                scores.setdefault(epoch_at[e.step] + 1, {})[name] = e.value
    return scores


def table(runs: list[Run]) -> str:
    """Markdown: FID per scored epoch for each run, then each preset's mean final FID over its seeds."""
    epochs = sorted({epoch for run in runs for epoch in run.scores})
    final = [run.evaluation["protocol"]["num_fake"] for run in runs if run.evaluation]
    head = ["preset", "seed", *(f"FID @{e} ep" for e in epochs)]
    head += [f"FID-{final[0] // 1000}k (last)" if final else "KID (last)", "train min", "img/s", "wall time", "command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        if run.returncode:
            cells = [f"failed: {run.error[:120]}", *[""] * (len(epochs) + 3)]
        else:
            cells = [f"{run.scores[e]['fid']:.1f}" if e in run.scores else "" for e in epochs]
            if final:
                cells.append(f"**{run.evaluation['fid']:.2f}**" if run.evaluation else "")
            else:
                cells.append(f"{run.scores[max(run.scores)].get('kid', float('nan')):.4f}" if run.scores else "")
            cells.append(f"{run.train_minutes:.1f}" if run.train_minutes is not None else "")
            cells.append(f"{run.images_per_sec:,.0f}" if run.images_per_sec else "")
        cells += [f"{run.seconds:.0f} s", f"`{run.command}`"]
        lines.append(f"| {run.preset} | {run.seed} | " + " | ".join(cells) + " |")
    lines += ["", "| preset | mean final FID | seeds |", "|---|---|---|"]
    for preset in dict.fromkeys(run.preset for run in runs):
        finals = [run.final_fid for run in runs if run.preset == preset and run.final_fid is not None]
        mean = f"{sum(finals) / len(finals):.1f}" if finals else "n/a"
        lines.append(f"| {preset} | {mean} | {len(finals)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="TF-Inception TorchScript (make fid-weights)")
    parser.add_argument("--presets", default="all", help="comma-separated preset names, or all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 999])
    parser.add_argument("--parallel", type=int, help="runs at once (default: the presets file's, else 4)")
    parser.add_argument("--presets-file", type=Path, default=PRESETS_FILE)
    parser.add_argument("--protocol", nargs="+", help="overrides that replace the presets file's protocol")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "quality_sweep")
    parser.add_argument("--final-fid", type=int, help="score each last checkpoint with this many samples")
    args = parser.parse_args(argv)

    spec = yaml.safe_load(args.presets_file.read_text())
    final_fid = args.final_fid or spec.get("final_fid")
    presets = spec["presets"]
    names = list(presets) if args.presets == "all" else [n for n in args.presets.split(",") if n]
    weights = [f"metrics.inception_weights={args.weights.resolve()}"] if args.weights else []
    protocol = args.protocol or spec["protocol"]
    try:
        scored_while_training = prepare_data([*protocol, *extra])
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    # The runs get the weights when they score FID themselves; evaluate always does.
    runs = plan(protocol, presets, names, args.seeds, [*(weights if scored_while_training else []), *extra], args.out)

    def finish(run: Run) -> None:
        if run.returncode == 0:
            run.scores = read_scores(run.dir)
            throughput = run.dir / "throughput.json"
            if throughput.is_file():
                summary = json.loads(throughput.read_text())
                run.images_per_sec = summary["steady_images_per_sec"]
                run.train_minutes = sum(summary["epoch_seconds"]) / 60
            if final_fid:
                evaluate(run, final_fid, weights, extra)
        write_report([r for r in runs if r.returncode is not None], args.out)  # so far: long sweeps show progress

    launch(runs, args.parallel or spec.get("parallel", 4), finish)
    report = write_report(runs, args.out)
    print(report + f"written: {args.out / 'quality.md'}, {args.out / 'quality.json'}")
    return 1 if any(run.returncode for run in runs) else 0


def write_report(runs: list[Run], out: Path) -> str:
    """OUT/quality.md (the table) and OUT/quality.json (every run's record); returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    report = table(runs)
    (out / "quality.md").write_text(report)
    fields = ("preset", "seed", "overrides", "returncode", "seconds", "error", "scores", "images_per_sec",
              "train_minutes", "evaluation")  # fmt: skip
    records = [{k: str(v) if isinstance(v, Path) else v for k, v in vars(run).items() if k in fields} for run in runs]
    (out / "quality.json").write_text(json.dumps(records, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(main())
