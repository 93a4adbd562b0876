"""What a user sees in TensorBoard and on the console, read back from a real run's event file and output."""

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from dcgan_lit.precision import resolve_precision
from dcgan_lit.train import run, train
from tests.conftest import events

SETTINGS = {"lr_g", "lr_d", "betas_g", "betas_d", "loss", "nz", "ngf", "ndf", "batch_size", "image_size",
            "max_epochs", "seed", "precision", "ema_decay", "lr_decay_start", "ema_half_life_images"}  # fmt: skip
EPOCH_MEANS = ["train/d_loss_epoch", "train/g_loss_epoch", "train/D_x_epoch", "train/D_G_z1_epoch",
               "train/D_G_z2_epoch"]  # fmt: skip


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Path:
    """A 2-epoch tiny run with FID, every batch logged."""
    from tests.conftest import TINY, compose_train

    out = tmp_path_factory.mktemp("tb")
    overrides = [*TINY, "data.num_images=120", "metrics=fid", f"metrics.inception_weights={tiny_weights}",
                 "metrics.num_fake=16",
                 "metrics.num_fake_train=16", "metrics.every_n_epochs=1", f"paths.output_dir={out}",
                 f"paths.data_dir={out / 'data'}"]  # fmt: skip
    train(compose_train(overrides))
    return out


def test_the_time_series_page_opens_on_the_grids_and_the_curves(tb_run: Path) -> None:
    tags = events(tb_run).Tags()
    groups = sorted({tag.split("/")[0] for tag in tags["scalars"] + tags["images"]})
    # Alphabetical, as TensorBoard orders them: grids, then training curves, then FID/KID; no artifacts/,
    # epoch or perf/ groups before them.
    assert groups == ["samples", "train", "val"]
    # samples/nearest_real: the copy check's grid (the tiny run is scored against its training images).
    assert sorted(tags["images"]) == [
        "samples/fixed_noise",
        "samples/nearest_real",
        "samples/real",
        "samples/real_vs_fake",
    ]
    logged = {"train/epoch", "train/images_per_sec", "val/fid", "val/kid", "val/precision", "val/recall", *EPOCH_MEANS}
    assert logged <= set(tags["scalars"])


def test_sample_grids_are_labelled_by_epoch_and_real_vs_fake_is_captioned(tb_run: Path) -> None:
    acc = events(tb_run)
    assert [e.step for e in acc.Images("samples/fixed_noise")] == [1, 2]  # the slider reads "after epoch N"
    assert [e.step for e in acc.Images("samples/real")] == [0]
    caption = np.asarray(Image.open(tb_run / "artifacts" / "real_vs_fake.png").convert("L"))[:24]
    assert (caption < 100).sum() > 50 and (caption == 255).mean() > 0.8  # dark text on a white band
    assert [e.step for e in acc.Images("samples/real_vs_fake")] == [2]


def test_custom_scalars_has_the_tutorials_two_charts_as_multiline_charts(tb_run: Path) -> None:
    (event,) = events(tb_run).Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    logged = events(tb_run).Tags()["scalars"]
    # TensorBoard searches each tag pattern in every scalar's name: what each chart draws.
    drawn = {
        (c.title, cat.title): [tag for tag in logged if any(re.search(p, tag) for p in c.multiline.tag)]
        for cat in layout.category
        for c in cat.chart
    }
    assert sorted(drawn[("G and D loss", "GAN (per logged batch)")]) == ["train/d_loss", "train/g_loss"]
    assert sorted(drawn[("D(x) and D(G(z)), before and after D's step", "GAN (per logged batch)")]) == [
        "train/D_G_z1", "train/D_G_z2", "train/D_x"
    ]  # fmt: skip
    assert sorted(drawn[("G and D loss", "GAN (epoch means)")]) == ["train/d_loss_epoch", "train/g_loss_epoch"]
    assert drawn[("FID", "Sample quality")] == ["val/fid"]


def test_epoch_means_are_the_means_of_the_epochs_steps(tb_run: Path) -> None:
    acc = events(tb_run)
    steps = [e.value for e in acc.Scalars("train/d_loss")]  # every batch logged: 3 per epoch
    means = [e.value for e in acc.Scalars("train/d_loss_epoch")]
    assert len(steps) == 6 and means == pytest.approx([np.mean(steps[:3]), np.mean(steps[3:])], rel=1e-5)


def test_hparams_tab_holds_the_chosen_settings_and_metrics(tb_run: Path) -> None:
    content = events(tb_run).PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert set(hp) == SETTINGS  # no _target_, _partial_, fused or other noise keys
    assert hp["betas_g"].string_value == "0.5, 0.999" and hp["lr_g"].number_value == 2e-4
    ran = resolve_precision("auto", "cpu")[0]  # trainer.precision=auto, as it resolved on this machine
    assert hp["seed"].number_value == 999 and hp["precision"].string_value == ran
    assert hp["ngf"].number_value == 8 and hp["ema_decay"].number_value == 0.995  # the default run's EMA
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["val/fid", "val/kid", "val/precision", "val/recall",
                                                            *EPOCH_MEANS]  # fmt: skip


def test_the_console_shows_dcgan_lits_lines_not_lightnings_chatter(
    tiny_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # what Hydra's console logging shows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tiny_cfg("trainer.max_epochs=1"))
    shown = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    for chatter in ("Tip", "GPU available", "TPU available", "Seed set", "FLOPs", "Trainer.fit` stopped"):
        assert chatter not in shown, chatter
    assert "model: G Generator 18.9 K parameters, D Discriminator 11.2 K" in shown and "done; see the run" in shown
    assert not [w for w in caught if "LeafSpec" in str(w.message)]


def test_epochs_between_scores_warn_nothing(
    tiny_cfg: Callable[..., DictConfig], tiny_weights: Path, tmp_path: Path
) -> None:
    """best.ckpt watches val/fid, which only scored epochs log: the epochs between are not a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(tiny_cfg("metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=16",
                     "metrics.num_fake_train=16",
                     "metrics.every_n_epochs=2", "trainer.max_epochs=2"))  # fmt: skip
    assert len(events(tmp_path / "run").Scalars("val/fid")) == 1  # epoch 0 had no score, epoch 1 one
    assert not [w for w in caught if "could not find the monitored key" in str(w.message)]
    assert not [w for w in caught if "will save all extracted features" in str(w.message)]  # KID's, by design
