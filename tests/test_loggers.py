"""W&B and MLflow get what TensorBoard gets: read back from what each logger wrote, offline."""

import glob
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from PIL import Image

from dcgan_lit import loggers
from dcgan_lit.precision import resolve_precision
from dcgan_lit.train import run, train
from tests.conftest import TINY, compose_train, events
from tests.test_tensorboard import SETTINGS

pytest.importorskip("wandb")
pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from wandb.proto import wandb_internal_pb2  # noqa: E402

QUALITY = ["val/fid", "val/kid", "val/precision", "val/recall"]


@pytest.fixture(scope="module")
def many_run(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Path:
    """A 2-epoch tiny run with FID and every logger at once, every batch logged."""
    out = tmp_path_factory.mktemp("many")
    overrides = [*TINY, "data.num_images=120", "metrics=fid", f"metrics.inception_weights={tiny_weights}",
                 "metrics.num_fake=16",
                 "metrics.num_fake_train=16", "metrics.every_n_epochs=1", f"paths.output_dir={out}",
                 f"paths.data_dir={out / 'data'}", "logger=many_loggers", "logger.wandb.offline=true",
                 f"logger.mlflow.store_dir={out / 'mlflow'}"]  # fmt: skip
    train(compose_train(overrides))
    return out


def wandb_records(run_dir: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of a W&B run file (`run-<id>.wandb`): LevelDB's log format, 32 KiB blocks of chunks, each
    with a 7-byte header (CRC, length, type: full, first, middle or last), after the file's 7-byte header."""
    (path,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))
    data, block = Path(path).read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # zero padding up to the block's end
            pos += block - pos % block
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def finished_records(run_dir: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The run file's records once it ends with the exit record: wandb's service writes the file from its own
    process, and once, under a loaded test run, the second job's history was not all in it yet as the job ended."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            records = list(wandb_records(run_dir))
            if any(record.WhichOneof("record_type") == "exit" for record in records):
                return records
        except (ValueError, AssertionError, DecodeError):  # no file yet, an empty one, a record half written
            pass
        assert time.monotonic() < deadline, f"no W&B run file with an exit record under {run_dir} after {timeout} s"
        time.sleep(0.2)


def wandb_history(run_dir: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    """(the run's config, its history rows), decoded from JSON, from the finished run file."""
    config, rows = {}, []
    for record in finished_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item})
    return config, rows


def mlflow_run(out: Path) -> tuple[MlflowClient, object]:
    client = MlflowClient(f"sqlite:///{out / 'mlflow' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "dcgan_lit"]
    (found,) = client.search_runs([experiment.experiment_id])
    return client, found


def test_wandb_gets_the_curves_grids_figures_and_settings_tensorboard_gets(many_run: Path) -> None:
    config, rows = wandb_history(many_run)
    assert SETTINGS <= set(config)
    assert config["batch_size"] == 16 and config["precision"] == resolve_precision("auto", "cpu")[0]
    tb = events(many_run)
    d_loss = [row["train/d_loss"] for row in rows if "train/d_loss" in row]
    assert d_loss == pytest.approx([e.value for e in tb.Scalars("train/d_loss")], rel=1e-6)
    for name in QUALITY:
        assert [row[name] for row in rows if name in row] == pytest.approx([e.value for e in tb.Scalars(name)])
    images = {key.removesuffix("/captions"): row[key] for row in rows for key in row if key.endswith("/captions")}
    grids = [row for row in rows if "samples/fixed_noise/captions" in row]
    assert [row["samples/fixed_noise/captions"] for row in grids] == [["epoch 1"], ["epoch 2"]]
    assert {"samples/real", "samples/real_vs_fake"} <= set(images)
    assert {key.split("/filenames")[0] for row in rows for key in row if key.endswith("/filenames")} >= {
        "plots/losses", "plots/scores"
    }  # fmt: skip
    # The picture W&B stores is the grid's PNG, pixel for pixel.
    (media,) = grids[-1]["samples/fixed_noise/filenames"]
    stored = np.asarray(Image.open(next((many_run / "wandb").glob("offline-run-*")) / "files" / media).convert("RGB"))
    assert np.array_equal(stored, np.asarray(Image.open(many_run / "samples" / "epoch_001.png").convert("RGB")))


def test_mlflow_gets_the_curves_grids_figures_and_settings_tensorboard_gets(many_run: Path) -> None:
    client, found = mlflow_run(many_run)
    assert found.info.status == "FINISHED" and found.data.tags["run_folder"] == str(many_run)
    assert SETTINGS <= set(found.data.params)
    assert found.data.params["batch_size"] == "16" and found.data.params["betas_g"] == "0.5, 0.999"
    tb = events(many_run)
    for name in ["train/d_loss", *QUALITY]:
        history = client.get_metric_history(found.info.run_id, name)
        assert [m.value for m in history] == pytest.approx([e.value for e in tb.Scalars(name)], rel=1e-6), name

    def files(path: str | None = None) -> list[str]:
        found_files = []
        for a in client.list_artifacts(found.info.run_id, path):
            found_files += files(a.path) if a.is_dir else [a.path]
        return found_files

    stored = files()
    # Time-stepped images: MLflow's slider counts epochs, as TensorBoard's does.
    grids = [p for p in stored if p.startswith("images/samples~fixed_noise+") and not p.endswith("compressed.webp")]
    assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in grids) == [1, 2]
    assert any("samples~real+step+0" in p for p in stored) and any("samples~real_vs_fake+step+2" in p for p in stored)
    assert {"plots/losses.png", "plots/scores.png"} <= set(stored)


def test_the_csv_logger_still_gets_the_scalars(many_run: Path) -> None:
    header = (many_run / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/d_loss", *QUALITY} <= set(header)


def test_jobs_sharing_a_process_get_a_wandb_run_each(tmp_path: Path) -> None:
    # A multirun's jobs run in one process; wandb keeps one run per process and Lightning reuses it.
    for job in ("a", "b"):
        cfg = compose_train([*TINY, "trainer.max_epochs=1", "logger=wandb", "logger.wandb.offline=true",
                             f"paths.output_dir={tmp_path / job}", f"paths.data_dir={tmp_path / 'data'}"])  # fmt: skip
        train(cfg)
    counts = [sum(1 for row in wandb_history(tmp_path / job)[1] if "train/d_loss" in row) for job in ("a", "b")]
    assert counts == [3, 3]


def test_a_logger_that_is_not_installed_is_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    real = loggers.importlib.util.find_spec
    monkeypatch.setattr(loggers.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    cfg = compose_train([*TINY, "logger=mlflow", f"paths.output_dir={tmp_path}", f"paths.data_dir={tmp_path}"])
    with pytest.raises(SystemExit) as exit_info:
        run(cfg)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: logger=mlflow needs the mlflow package: pip install -e '.[mlflow]' (or pick another logger=)"
    ]


def test_wandb_goes_offline_without_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # where `wandb login` keeps the key: ~/.netrc
    assert loggers.offline_by_default()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert not loggers.offline_by_default()
    monkeypatch.setenv("WANDB_MODE", "offline")  # the user's own choice, which wandb.init reads itself
    assert not loggers.offline_by_default()
