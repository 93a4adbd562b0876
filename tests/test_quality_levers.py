"""The sample-quality levers of issue 23, each a YAML value run through the real loop: a learning-rate decay, the
EMA counted in batches and in images, and lazy penalties."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit import losses
from dcgan_lit.errors import ConfigError
from dcgan_lit.module import DCGAN
from dcgan_lit.train import train
from tests.conftest import events
from tests.conftest import load_checkpoint as load

# TINY trains 3 batches per epoch, 2 epochs: 6 batches.


def test_lr_decay_falls_linearly_to_zero_and_a_longer_resume_decays_to_its_own_end(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    train(tiny_cfg("model.lr_decay_start=0.5"))
    logged = events(tmp_path / "run").Scalars("train/lr_g")
    # 6 batches, decay from batch 3: the rate each batch's step used, logged at that batch.
    assert [e.value for e in logged] == pytest.approx([2e-4 * f for f in (1, 1, 1, 1, 2 / 3, 1 / 3)])
    assert [e.value for e in events(tmp_path / "run").Scalars("train/lr_d")] == pytest.approx([e.value for e in logged])
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert [s["_last_lr"][0] for s in ckpt["lr_schedulers"]] == pytest.approx([0.0, 0.0])  # after the 6th step

    # Resumed for 4 epochs (12 batches, decay from batch 6): batch 6 trains at the full rate again, not at 0.
    resumed = tmp_path / "resumed"
    ckpt_path = f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"
    train(tiny_cfg("model.lr_decay_start=0.5", "trainer.max_epochs=4", ckpt_path, output_dir=resumed))
    assert [e.value for e in events(resumed).Scalars("train/lr_g")] == pytest.approx(
        [2e-4 * f for f in (1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6)]
    )


def test_lr_decay_ends_at_max_steps_batches(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    # trainer.max_steps=4 is 4 batches, 8 of Lightning's optimizer steps: the decay ends at batch 4, not 8.
    train(tiny_cfg("model.lr_decay_start=0.5", "trainer.max_steps=4"))
    assert [e.value for e in events(tmp_path / "run").Scalars("train/lr_g")] == pytest.approx(
        [2e-4 * f for f in (1, 1, 1, 0.5)]
    )


def refusal(cfg: DictConfig) -> str:
    """The ConfigError that building `cfg` raises (Hydra wraps what a constructor raises)."""
    with pytest.raises(InstantiationException) as info:
        instantiate(cfg)
    assert isinstance(info.value.__cause__, ConfigError)
    return str(info.value.__cause__)


@pytest.mark.parametrize("start", [1.0, -0.1])
def test_an_lr_decay_start_outside_0_1_names_the_key(tiny_cfg: Callable[..., DictConfig], start: float) -> None:
    assert refusal(tiny_cfg(f"model.lr_decay_start={start}").model) == (
        f"model.lr_decay_start={start}: the fraction of training after which the rates decay to 0; "
        "must be in [0, 1), or null for constant rates."
    )


@pytest.mark.parametrize(
    "ema, averaged",
    [
        (["+callbacks.ema.update_every_n_steps=2"], 3),  # batches 0, 2, 4
        (["callbacks.ema.update_starting_at_step=4"], 2),  # batches 4 and 5
        ([], 6),
    ],
    ids=["every_2_batches", "from_batch_4", "every_batch"],
)
def test_ema_steps_are_batches_of_one_d_and_one_g_update(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, ema: list[str], averaged: int
) -> None:
    # Lightning counts a global step per optimizer step: 2 per batch, whose indices it hands the callback are odd.
    train(tiny_cfg("callbacks=ema", *ema))
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["averaging_state"]["n_averaged"].item() == averaged


def test_an_ema_half_life_in_images_is_the_decay_for_the_batch_size(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """A half-life of 16 images at batch 16 is a decay of 0.5 per batch: the same averaged weights, to the bit."""

    def averaged_weights(name: str, *ema: str) -> dict[str, torch.Tensor]:
        train(tiny_cfg("callbacks=ema", "seed=3", *ema, output_dir=tmp_path / name))
        return load(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]

    by_images = averaged_weights("half_life", "callbacks.ema.half_life_images=16")
    by_decay = averaged_weights("decay", "callbacks.ema.decay=0.5")
    default = averaged_weights("default")  # decay 0.999
    key = "generator.main.0.weight"
    assert torch.equal(by_images[key], by_decay[key])
    assert not torch.allclose(by_images[key], default[key])
    assert refusal(tiny_cfg("callbacks=ema", "callbacks.ema.half_life_images=0").callbacks.ema) == (
        "callbacks.ema.half_life_images=0: must be > 0 (or null to use decay)."
    )


def test_lazy_penalties_run_every_n_batches_at_n_times_the_weight(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg("+model.penalties.r1=10.0", "model.penalty_every=2", "model.discriminator.batch_norm=false")
    model = instantiate(cfg.model)
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    lazy, _, _ = model.discriminator_loss(real, real.flip(0))  # batch 0: penalized, at 2 x 10
    d_loss = model.loss.d(model.score(real), model.score(real.flip(0)), 1.0)
    r1 = losses.PENALTIES["r1"].fn(model.score, real, real.flip(0))
    assert torch.allclose(lazy, d_loss + 20.0 * r1)
    monkeypatch.setattr(DCGAN, "batches_done", property(lambda self: 1))
    skipped, _, _ = model.discriminator_loss(real, real.flip(0))
    assert torch.allclose(skipped, d_loss)
    monkeypatch.undo()

    # In the real loop: 6 batches, R1 at batches 0, 2 and 4.
    calls: list[int] = []
    r1_penalty = losses.PENALTIES["r1"].fn
    counting = losses.Penalty(lambda score, real, fake: calls.append(1) or r1_penalty(score, real, fake))
    monkeypatch.setitem(losses.PENALTIES, "r1", counting)
    train(cfg)
    assert len(calls) == 3
    assert refusal(tiny_cfg("model.penalty_every=0").model) == "model.penalty_every=0: must be a whole number >= 1."
