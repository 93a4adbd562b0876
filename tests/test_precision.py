"""trainer.precision=auto: bf16 autocast with channels-last where the CPU has AMX-BF16, fp32 elsewhere."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from dcgan_lit import evaluate
from dcgan_lit.precision import cpu_has_amx_bf16, emulated_bf16, resolve_extractor_precision, resolve_precision
from dcgan_lit.train import train
from tests.conftest import CONF_DIR

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n"


@pytest.mark.parametrize("cpuinfo, amx", [(SAPPHIRE_RAPIDS, True), (ICE_LAKE, False), (None, False)])
def test_amx_bf16_is_read_from_the_cpus_flags(tmp_path: Path, cpuinfo: str | None, amx: bool) -> None:
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:  # None: no /proc/cpuinfo (not Linux)
        path.write_text(cpuinfo)
    assert cpu_has_amx_bf16(path) is amx


@pytest.mark.parametrize(
    "precision, accelerator, amx, chosen",
    [
        ("auto", "cpu", True, "bf16-mixed"),
        ("auto", "cpu", False, "32-true"),
        ("32-true", "cpu", True, "32-true"),  # the one setting that turns bf16 off
        ("bf16-mixed", "cpu", False, "bf16-mixed"),  # asked for: given, AMX or not
        ("auto", "gpu", True, "32-true"),  # the GPU path as it was; trainer=gpu sets bf16-mixed itself
    ],
)
def test_auto_picks_bf16_on_an_amx_cpu_only(precision: str, accelerator: str, amx: bool, chosen: str) -> None:
    assert resolve_precision(precision, accelerator, amx_bf16=amx)[0] == chosen


@pytest.mark.parametrize(
    "requested, device, amx, chosen",
    [
        ("auto", "cpu", True, "bf16"),
        ("auto", "cpu", False, "fp32"),  # emulated bf16: 7x slower than fp32 on an AMD EPYC
        ("auto", "cuda", False, "bf16"),
        ("bf16", "cpu", False, "bf16"),  # asked for: given
        ("fp32", "cpu", True, "fp32"),
    ],
)
def test_the_fid_inception_runs_in_bf16_only_where_that_is_fast(
    requested: str, device: str, amx: bool, chosen: str
) -> None:
    precision, why = resolve_extractor_precision(requested, torch.device(device), amx_bf16=amx)
    assert precision == chosen and why.startswith(f"metrics.extractor_precision={requested}")


@pytest.mark.parametrize("override", [[], ["trainer.precision=32-true"]], ids=["auto", "fp32"])
def test_a_cpu_run_records_the_precision_and_layout_it_chose(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture, override: list[str]
) -> None:
    """On this machine: what the run's log and throughput.json say matches the choice for this CPU."""
    amx = cpu_has_amx_bf16()
    expected = "32-true" if override or not amx else "bf16-mixed"
    with caplog.at_level("INFO"):
        train(tiny_cfg("trainer.max_epochs=1", *override))
    summary = json.loads((tmp_path / "run" / "throughput.json").read_text())
    assert summary["precision"] == expected and summary["cpu_amx_bf16"] is amx
    assert summary["channels_last"] is (expected == "bf16-mixed")  # NHWC for oneDNN's bf16 kernels
    assert any(r.getMessage().startswith(f"precision: {expected} (") for r in caplog.records)
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float32 for k, v in weights.items() if v.is_floating_point())  # fp32 master weights


@pytest.mark.parametrize(
    "precision, on_cpu, amx, warned",
    [
        ("bf16-mixed", True, False, True),  # typed on a laptop: emulated, 27x slower
        ("bf16-true", True, False, True),
        ("bf16", True, False, True),  # the extractor's name for it
        ("bf16-mixed", True, True, False),  # AMX: the fast path
        ("32-true", True, False, False),
        ("bf16-mixed", False, False, False),  # a GPU has bf16
    ],
)
def test_bf16_asked_for_on_a_cpu_without_amx_is_warned_about(
    precision: str, on_cpu: bool, amx: bool, warned: bool
) -> None:
    message = emulated_bf16("trainer.precision", precision, on_cpu, amx_bf16=amx)
    assert (message is not None) is warned
    if warned:
        assert message.startswith(f"trainer.precision={precision} on a CPU without AMX-BF16")
        assert "27x" in message and message.endswith("trainer.precision=auto runs fp32 on this CPU.")


def test_a_run_and_evaluate_in_bf16_on_a_cpu_without_amx_say_it_is_slow(
    tiny_cfg: Callable[..., DictConfig],
    tiny_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
) -> None:
    """What a user who types bf16 on a laptop sees: a warning for each key, in the run's log and in evaluate's
    output (whose logging Hydra turns off); the run goes on as asked."""
    monkeypatch.setattr("dcgan_lit.precision.cpu_has_amx_bf16", lambda: False)
    scored = ["metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.extractor_precision=bf16",
              "metrics.num_fake=16", "metrics.num_fake_train=16"]  # fmt: skip
    with caplog.at_level("INFO"):
        result = train(tiny_cfg("trainer.max_epochs=1", "trainer.precision=bf16-mixed", *scored))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w.split(" on a CPU")[0] for w in warnings if "without AMX-BF16" in w] == [
        "trainer.precision=bf16-mixed",
        "metrics.extractor_precision=bf16",
    ]
    assert any(r.getMessage().startswith("precision: bf16-mixed (") for r in caplog.records)
    assert "val/fid_bf16" in result  # warned, not overruled

    capsys.readouterr()
    evaluate.report(
        compose_evaluate(
            f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
            *scored,
            f"out={tmp_path / 'report.json'}",
            f"paths.data_dir={tmp_path / 'data'}",
        )  # fmt: skip
    )
    printed = capsys.readouterr().out
    assert "warning: metrics.extractor_precision=bf16 on a CPU without AMX-BF16" in printed
    assert json.loads((tmp_path / "report.json").read_text())["protocol"]["extractor"].endswith("(bf16 autocast)")


def compose_evaluate(*overrides: str) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("evaluate", overrides=list(overrides))
