"""What dcgan_lit/lightning_internals.py reads from Lightning without a public API: fails naming it if it moves."""

from collections.abc import Callable
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from dcgan_lit.callbacks.ema import GeneratorEMA, sampling_generator
from dcgan_lit.callbacks.last_checkpoint import LastCheckpoint
from dcgan_lit.lightning_internals import (
    averaged_model,
    callback_state_key,
    epoch_position,
    save_unless_saved,
    stopped_at,
    write_summary,
)
from dcgan_lit.module import DCGAN


def test_weight_averaging_keeps_the_averaged_model_where_the_adapter_reads_it(
    tiny_cfg: Callable[..., DictConfig],
) -> None:
    model = instantiate(tiny_cfg().model)
    ema = GeneratorEMA(decay=0.5)
    trainer = L.Trainer(accelerator="cpu", logger=False, callbacks=[ema], enable_checkpointing=False)
    assert averaged_model(ema) is None  # before fit sets it up
    ema.setup(trainer, model, "fit")
    averaged = averaged_model(ema)
    assert isinstance(averaged, DCGAN), (
        "Lightning's WeightAveraging no longer keeps its AveragedModel in `_average_model`: update "
        "dcgan_lit/lightning_internals.py, or sample grids and FID silently use the live G instead of the EMA."
    )
    assert averaged.generator is not model.generator
    assert sampling_generator(trainer, model) is averaged.generator  # what grids and FID sample from


class RecordPosition(L.Callback):
    """epoch_position() at each batch's end and each epoch's end, beside what it should be."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self.messages: list[str] = []  # stopped_at() at each batch's end

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: object) -> None:
        batch_idx = args[-1]
        self.seen.append((epoch_position(trainer), (trainer.current_epoch, batch_idx + 1)))
        self.messages.append(stopped_at(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen.append((epoch_position(trainer), (trainer.current_epoch + 1, 0)))  # where a resume would start


def test_the_fit_loops_progress_counters_say_where_a_resume_starts(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    record = RecordPosition()
    cfg = tiny_cfg("trainer.max_epochs=2")
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=3, logger=False, callbacks=[record],
                        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    assert len(record.seen) == 8
    for got, expected in record.seen:
        assert got == expected, (
            "Lightning's fit_loop.epoch_progress / epoch_loop.batch_progress counters changed: update "
            "dcgan_lit/lightning_internals.py epoch_position(), or resumed runs train on other batches than the "
            "run they continue."
        )
    # An interruption's exit message: mid-epoch, and after the epoch-end hooks (where Lightning raises for a signal
    # that came during them, a score's).
    assert record.messages == [f"epoch {e}, batch {b}" for e in (0, 1) for b in (1, 2, 3)]
    assert stopped_at(trainer) == "the end of epoch 1", "update dcgan_lit/lightning_internals.py stopped_at()"


def test_callback_state_keys_are_built_as_lightning_builds_its_own(tmp_path: Path) -> None:
    settings = {"monitor": None, "mode": "min", "every_n_train_steps": 0, "every_n_epochs": 1,
                "train_time_interval": None}  # fmt: skip
    checkpoint = ModelCheckpoint(dirpath=tmp_path)
    assert callback_state_key(checkpoint, **settings) == checkpoint.state_key, (
        "Lightning's Callback._generate_state_key no longer builds ModelCheckpoint's key: update "
        "dcgan_lit/lightning_internals.py, or LastCheckpoint's state is no longer found in checkpoints."
    )
    # The key checkpoints already written hold, so they still resume with their LastCheckpoint state.
    last = LastCheckpoint(dirpath=str(tmp_path))
    assert last.state_key == "LastCheckpoint{'filename': 'last', 'every_n_epochs': 1, 'every_n_train_steps': 0}"


def test_a_ready_made_summary_reaches_the_event_file(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import scalar

    writer = SummaryWriter(str(tmp_path))
    write_summary(writer, scalar("val/fid", 12.5))
    writer.close()
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.value for e in acc.Scalars("val/fid")] == [12.5], (
        "torch's SummaryWriter._get_file_writer() changed: update dcgan_lit/lightning_internals.py write_summary(), "
        "or the HParams tab stays empty."
    )


class SaveTwice(L.Callback):
    """At the first epoch's end, off the checkpoint's cadence: save it, then ask again at the same step."""

    def __init__(self, checkpoint: ModelCheckpoint) -> None:
        self.checkpoint, self.files = checkpoint, []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for _ in range(2):
            save_unless_saved(self.checkpoint, trainer)
            self.files.append(sorted((p.name, p.stat().st_mtime_ns) for p in Path(self.checkpoint.dirpath).iterdir()))


def test_a_checkpoint_saves_off_its_cadence_once_per_step(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    cfg = tiny_cfg()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_epochs=100)
    saver = SaveTwice(checkpoint)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        logger=False,
        callbacks=[checkpoint, saver],
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(instantiate(cfg.model), datamodule=instantiate(cfg.data))
    first, second = saver.files
    assert [name for name, _ in first] == ["last.ckpt"] and second == first, (
        "ModelCheckpoint's _last_global_step_saved / _should_skip_saving_checkpoint / _save_topk_checkpoint / "
        "_monitor_candidates changed: update dcgan_lit/lightning_internals.py save_unless_saved(), or a run whose "
        "last epoch is off callbacks.last_checkpoint.every_n_epochs ends without last.ckpt."
    )


def test_the_spawn_strategies_launcher_is_the_one_train_looks_for() -> None:
    from dcgan_lit.lightning_internals import in_spawned_rank, starts_rank_processes

    spawned = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False)
    assert starts_rank_processes(spawned), (
        "Lightning's ddp_spawn launcher is no longer `_MultiProcessingLauncher`: update "
        "dcgan_lit/lightning_internals.py, or signals to a ddp_spawn job end it without a checkpoint."
    )
    assert not in_spawned_rank(spawned)  # this is the process that waits, not a rank
    assert not starts_rank_processes(L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False))
