"""benchmarks/quality_sweep.py: presets x seeds as real training runs, scores read back into one table."""

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import REPO, TINY, compose_train


def load_sweep():
    spec = importlib.util.spec_from_file_location("quality_sweep", REPO / "benchmarks" / "quality_sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_sweep"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_best_fmnist32_experiment_is_the_measured_preset() -> None:
    """experiment=fashion_mnist_32_best composes exactly as the preset that BENCHMARKS.md measured."""
    sweep = load_sweep()
    spec = yaml.safe_load((REPO / "benchmarks" / "fmnist32_presets.yaml").read_text())
    preset = compose_train(["experiment=fashion_mnist_32", *sweep.expand("b16_g80_joint_r1", spec["presets"])])
    best = compose_train(["experiment=fashion_mnist_32_best"])
    assert OmegaConf.to_container(best) == OmegaConf.to_container(preset)
    assert best.model.loss == "hinge" and best.callbacks.ema.bn_stats == "recomputed"
    assert best.data.batch_size == 16 and best.callbacks.ema.half_life_images == 44350
    assert best.model.lr_g == best.model.lr_d == 8e-4
    assert list(best.model.optimizer_g.betas) == list(best.model.optimizer_d.betas) == [0.0, 0.99]
    assert best.model.generator.ngf == 80 and best.model.discriminator.ndf == 48
    assert best.model.joint_d_call is True
    assert best.model.penalties == {"r1": 0.1} and best.model.penalty_every == 16


@pytest.mark.parametrize(
    "presets_file, epochs, num_fake",
    [("quality_presets.yaml", 15, 10_000), ("speed_presets.yaml", 5, 10_000), ("fmnist32_presets.yaml", 15, 2000)],
)
def test_every_shipped_preset_composes_with_the_protocol(presets_file: str, epochs: int, num_fake: int) -> None:
    sweep = load_sweep()
    spec = yaml.safe_load((REPO / "benchmarks" / presets_file).read_text())
    for name in spec["presets"]:
        cfg = compose_train([*spec["protocol"], *sweep.expand(name, spec["presets"])])
        assert cfg.trainer.max_epochs == epochs and cfg.metrics.num_fake == num_fake, name
    if presets_file == "fmnist32_presets.yaml":  # the CPU protocol: one run at a time, scored at 10k
        for name in spec["presets"]:  # and each preset's nets build: an override that breaks them fails here
            model = instantiate(compose_train([*spec["protocol"], *sweep.expand(name, spec["presets"])]).model)
            assert model.generator(torch.randn(2, 100)).shape == (2, 1, 32, 32), name
        protocol = (cfg.trainer.accelerator, cfg.data.image_size, spec["parallel"], spec["final_fid"])
        assert protocol == ("cpu", 32, 1, 10_000)
        return
    if presets_file == "speed_presets.yaml":
        return
    b64 = sweep.expand("hinge_sn_ema_b64", spec["presets"])
    assert "model.loss=hinge" in b64 and b64[-1] == "data.batch_size=64"  # a named preset expands in place


def test_preset_names_that_are_unknown_or_loop_are_refused() -> None:
    sweep = load_sweep()
    with pytest.raises(SystemExit, match=r"no preset 'c' in the presets file; known: a, b"):
        sweep.expand("c", {"a": [], "b": []})
    with pytest.raises(SystemExit, match=r"refer to each other in a loop: a -> b -> a"):
        sweep.expand("a", {"a": ["b"], "b": ["a", "x=1"]})


def test_a_sweep_tabulates_each_runs_fid_and_reports_a_failed_run(tmp_path: Path, tiny_weights: Path) -> None:
    sweep = load_sweep()
    presets = tmp_path / "presets.yaml"
    presets.write_text(yaml.safe_dump({
        "protocol": ["data=synthetic", "metrics=fid", "trainer=cpu"],
        "presets": {"hinge": ["model.loss=hinge"], "chained": ["hinge", "model.real_label=0.9"], "bad": ["hinge",
                    "model.loss=nope"]},
    }))  # fmt: skip
    tiny = [o for o in TINY if not o.startswith("trainer=")]
    extra = [*tiny, "data.num_images=120", "metrics.num_fake=40",
    "metrics.num_fake_train=40", "metrics.every_n_epochs=1",
             "callbacks.throughput.warmup_batches=1", f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    out = tmp_path / "sweep"
    args = ["--presets-file", str(presets), "--weights", str(tiny_weights), "--seeds", "1", "--parallel", "2",
            "--final-fid", "30"]  # fmt: skip
    code = sweep.main([*args, "--presets", "chained,bad", "--out", str(out), "--", *extra])

    assert code == 1  # one run failed
    records = {r["preset"]: r for r in json.loads((out / "quality.json").read_text())}
    # The FIDs the run itself logged, at epochs 1 and 2, are the ones in the table.
    log = (out / "chained" / "seed1" / "train.log").read_text()
    logged = [float(x) for x in re.findall(r"epoch \d+: FID ([\d.]+)", log)]
    scores = records["chained"]["scores"]
    assert [round(scores[e]["fid"], 2) for e in ("1", "2")] == logged and len(logged) == 2
    overrides = records["chained"]["overrides"]  # the named preset expanded in place, then the seed
    assert overrides.index("model.loss=hinge") < overrides.index("model.real_label=0.9") < overrides.index("seed=1")
    assert "model.loss='nope': must be one of" in records["bad"]["error"] and records["bad"]["scores"] == {}

    report = (out / "quality.md").read_text()
    head = "| preset | seed | FID @1 ep | FID @2 ep | FID-0k (last) | train min | img/s | wall time | command |"
    assert head in report
    assert records["chained"]["images_per_sec"] > 0 and 0 < records["chained"]["train_minutes"] < 5
    # --final-fid: the last checkpoint scored by evaluate, whose report is what the table and the mean show.
    evaluation = json.loads((out / "chained" / "seed1" / "final_fid.json").read_text())
    assert records["chained"]["evaluation"] == evaluation and evaluation["protocol"]["num_fake"] == 30
    assert f"**{evaluation['fid']:.2f}**" in report
    assert f"| chained | {evaluation['fid']:.1f} | 1 |" in report and "| bad | n/a | 0 |" in report
    assert "`python -m dcgan_lit.train data=synthetic metrics=fid trainer=cpu model.loss=hinge " in report


def test_the_data_is_checked_once_before_any_run_starts(tmp_path: Path) -> None:
    sweep = load_sweep()
    presets = tmp_path / "presets.yaml"
    presets.write_text(yaml.safe_dump({"protocol": ["data=mnist", "trainer=cpu"], "presets": {"plain": []}}))
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--presets-file", str(presets), "--seeds", "1", "--out", str(tmp_path / "sweep")]
    with pytest.raises(SystemExit, match=rf"error: data.root='{empty}': no mnist IDX files in .*data.download=false"):
        sweep.main([*args, "--", f"data.root={empty}", "data.download=false"])
    assert not (tmp_path / "sweep" / "plain").exists()  # no run was started


def test_make_quality_gpu_runs_every_64px_preset_on_two_seeds(tmp_path: Path) -> None:
    """The GPU search is one command: `make quality-gpu` runs the sweep over every preset of quality_presets.yaml."""
    import subprocess

    weights = tmp_path / "w.pt"
    weights.touch()  # present, so make plans no download
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}  # not a sub-make of `make test`
    dry = subprocess.run(
        ["make", "-n", "quality-gpu", f"FID_WEIGHTS={weights}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    command = next(line for line in dry.stdout.splitlines() if "quality_sweep.py" in line).split()
    assert command[1:] == [
        "benchmarks/quality_sweep.py",
        "--weights",
        str(weights),
        "--presets",
        "all",
        "--seeds",
        "1",
        "999",
    ]
    spec = yaml.safe_load((REPO / "benchmarks" / "quality_presets.yaml").read_text())
    assert spec["protocol"][0] == "experiment=fashion_mnist"  # 64x64
    winners = {  # what won on the CPU at 32px
        "hinge_sn_ema_b32_standing",
        "hinge_sn_ema_b16_standing",
        "hinge_sn_ema_b16_lr4e4",
        "hinge_sn_ema_b16_lr8e4",
        "hinge_sn_ema_b16_lr8e4_beta2_099",
        "hinge_sn_ema_b16_lr8e4_beta2_099_g96_d48",
        "hinge_sn_ema_b16_lr8e4_beta2_099_g80_d48",
        "hinge_sn_ema_b16_lr8e4_beta2_099_g80_d48_r1",
    }
    assert winners <= set(spec["presets"])
