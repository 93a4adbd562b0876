"""FID/KID with a tiny TorchScript extractor standing in for TF-Inception (same interface, seconds on a CPU)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from dcgan_lit.data.synthetic import render_space_images
from dcgan_lit.errors import ConfigError, DataError
from dcgan_lit.metrics.features import cpu_graph, load_extractor
from dcgan_lit.metrics.quality import Reference, choose_reference, features, fid_kid
from dcgan_lit.train import train
from tests.conftest import events, load_checkpoint


def test_fid_of_a_set_with_itself_is_zero_and_grows_as_fakes_get_worse(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    cpu = torch.device("cpu")
    real_images, _ = render_space_images(300, 32, seed=1)
    real = features(extractor, real_images.split(100), cpu)
    same = fid_kid(extractor, real, real, cpu)
    assert abs(same["fid"]) < 1e-3 and abs(same["kid"]) < 1e-3

    scores = []
    for noise in (10, 40, 120):
        g = torch.Generator().manual_seed(noise)
        worse = (real_images.float() + noise * torch.randn(real_images.shape, generator=g)).clamp(0, 255)
        scores.append(fid_kid(extractor, real, features(extractor, worse.to(torch.uint8).split(100), cpu), cpu))
    fids = [s["fid"] for s in scores]
    assert 0 < fids[0] < fids[1] < fids[2], fids
    assert scores[0]["kid"] < scores[2]["kid"]


def test_kid_subsets_shrink_for_small_sets(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    images, _ = render_space_images(20, 32, seed=2)
    feats = features(extractor, [images], torch.device("cpu"))
    out = fid_kid(extractor, feats[:10], feats[10:], torch.device("cpu"))  # a 200-image folder holds out 10
    assert out["kid_subset_size"] == 10 and out["num_real"] == 10


def test_kid_is_the_same_every_time_and_leaves_the_training_random_stream_alone(tiny_weights: Path) -> None:
    """KID's subsets came from torch's global generator: evaluate gave 0.00804 and 0.00819 for one checkpoint,
    and every score mid-run moved the z and DiffAugment draws of the rest of the run."""
    extractor = load_extractor(str(tiny_weights))
    images, _ = render_space_images(120, 32, seed=3)
    feats = features(extractor, [images], torch.device("cpu"))
    torch.manual_seed(123)
    first = fid_kid(extractor, feats[:60], feats[60:], torch.device("cpu"))
    after_scoring = torch.rand(3)
    torch.manual_seed(999)
    second = fid_kid(extractor, feats[:60], feats[60:], torch.device("cpu"))
    assert (first["kid"], first["kid_std"]) == (second["kid"], second["kid_std"])
    torch.manual_seed(123)
    assert torch.equal(after_scoring, torch.rand(3))


def test_grayscale_repeats_to_three_channels(tiny_weights: Path) -> None:
    extractor = load_extractor(str(tiny_weights))
    gray = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    assert torch.equal(extractor(gray), extractor(gray.expand(-1, 3, -1, -1)))


def test_training_logs_val_fid_and_kid_and_keeps_best_ckpt(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path
) -> None:
    run = tmp_path / "run"
    metrics = train(
        tiny_cfg(
            "metrics=fid",
            f"metrics.inception_weights={tiny_weights}",
            "metrics.num_fake=40",
            "metrics.num_fake_train=40",
            "metrics.every_n_epochs=1",
            "optimized_metric=val/fid",
        )
    )
    assert metrics["val/fid"] > 0 and "val/kid" in metrics
    acc = events(run)
    fids = [e.value for e in acc.Scalars("val/fid")]
    assert len(fids) == 2 and len(acc.Scalars("val/kid")) == 2  # after each of 2 epochs
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert best["epoch"] == fids.index(min(fids))  # the checkpoint of the lowest FID, not merely the last one
    (state,) = (v for k, v in best["callbacks"].items() if "'monitor': 'val/fid'" in k)
    assert abs(float(state["best_model_score"]) - min(fids)) < 1e-3
    # 12 of 120 images are held out, fewer than metrics.min_heldout: the 108 training images are the reference.
    caches = list((tmp_path / "data" / "cache").glob("real-*.pt"))
    assert len(caches) == 1 and torch.load(caches[0], weights_only=True).shape == (108, 64)


def test_the_reference_is_the_heldout_split_unless_it_is_too_small(tiny_cfg: Callable[..., DictConfig]) -> None:
    from hydra.utils import instantiate

    def reference(num_images: int, min_heldout: int) -> Reference:
        dm = instantiate(tiny_cfg(f"data.num_images={num_images}").data)
        dm.setup("fit")
        return choose_reference(dm, min_heldout)

    assert reference(120, min_heldout=12) == Reference("heldout", 12, "at least metrics.min_heldout=12")
    small = reference(120, min_heldout=13)
    assert (small.split, small.num_images) == (
        "train",
        108,
    ) and "only 12, fewer than metrics.min_heldout=13" in small.why
    with pytest.raises(DataError, match=r"metrics: the data has 45 training and 5 held-out images, and FID/KID need "
                                         r"at least 50 real images.*set metrics=none"):  # fmt: skip
        reference(50, min_heldout=1000)


@pytest.mark.parametrize("num_images", [2, 29])
def test_a_folder_too_small_to_score_is_refused_before_training(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path, num_images: int
) -> None:
    """2 to 29 images leave 0 or 1 held out, and too few training images to stand in: refused, naming the fix."""
    from tests.test_data_folder import noise, write

    for i in range(num_images):
        write(tmp_path / "few" / f"{i}.png", noise(20, 20, seed=i))
    cfg = tiny_cfg("data=folder", f"data.root={tmp_path / 'few'}", "data.batch_size=1", "data.num_workers=0",
                   "metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=4",
                   "metrics.num_fake_train=4")  # fmt: skip
    with pytest.raises(
        DataError, match=r"need at least 50 real images to mean anything\. Add images, or set metrics=none"
    ):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused at start-up, not after an epoch


def test_a_failing_score_is_reported_and_the_epochs_checkpoint_is_still_written(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    import dcgan_lit.callbacks.sample_quality as sample_quality

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the metric broke")

    monkeypatch.setattr(sample_quality, "fid_kid", broken)
    cfg = tiny_cfg("metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=8",
                   "metrics.num_fake_train=8",
                   "metrics.every_n_epochs=1", "trainer.max_epochs=1")  # fmt: skip
    metrics = train(cfg)
    assert "val/fid" not in metrics
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["epoch"] == 0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["epoch 0: FID/KID failed and were skipped (RuntimeError: the metric broke); training and "
                      "checkpoints go on."]  # fmt: skip


def test_default_run_has_no_metrics(tiny_cfg: Callable[..., DictConfig]) -> None:
    assert tiny_cfg().metrics is None
    assert tiny_cfg("experiment=celeba", "data.root=x").metrics.num_fake == 10_000


def test_a_missing_weights_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics.inception_weights='.*nope.pt' cannot be loaded as TorchScript"):
        load_extractor(str(tmp_path / "nope.pt"))


def test_hparams_tab_gets_the_settings_and_final_metrics(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, tiny_weights: Path
) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    run = tmp_path / "run"
    train(tiny_cfg("metrics=fid", f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=20",
                   "metrics.num_fake_train=20",
                   "trainer.max_epochs=1", "model.lr_g=3e-4"))  # fmt: skip
    acc = events(run)
    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = session.session_start_info.hparams
    assert hp["lr_g"].number_value == 3e-4 and hp["loss"].string_value == "bce"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert "val/fid" in {m.name.tag for m in experiment.experiment.metric_infos}
    assert len(acc.Scalars("val/fid")) == 1  # the tab adds no extra point to the curve


def test_optuna_search_composes_and_minimizes_val_fid() -> None:
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(
            "train", overrides=["hparams_search=optuna", "experiment=fashion_mnist"], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    assert cfg.optimized_metric == "val/fid" and "model.lr_g" in sweeper.params
    assert cfg.metrics.num_fake == 10_000  # the experiment turns the metric on


def test_an_optuna_sweep_runs_trials_and_reports_the_best_fid(tmp_path: Path, tiny_weights: Path) -> None:
    import yaml

    from tests.conftest import TINY, cli

    tiny = [o for o in TINY if not o.startswith("trainer.max_epochs")]
    args = ["-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "metrics=fid", "data.num_images=120",
            f"metrics.inception_weights={tiny_weights}", "metrics.num_fake=20",
            "metrics.num_fake_train=20", "trainer.max_epochs=1", *tiny,
            f"hydra.sweep.dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    proc = cli("train", *args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert results["best_value"] > 0 and "model.lr_g" in results["best_params"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1"]


def test_without_weights_offline_the_download_path_fails_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    import torchmetrics.image.fid as tm_fid

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tm_fid, "NoTrainInceptionV3", offline)  # what torch-fidelity's download does offline
    with pytest.raises(ConfigError, match=r"torchmetrics' FID Inception is unavailable .*make fid-weights"):
        load_extractor(None)


def test_the_nhwc_fast_path_gives_the_plain_nets_features(tiny_weights: Path) -> None:
    """The extractor feeds the net channels-last (1.4x faster on a CPU); the features must not change."""
    extractor = load_extractor(str(tiny_weights))
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    resized = torch.nn.functional.interpolate(images.float(), size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        plain = extractor.net((resized - 128) / 128).flatten(1)
    assert torch.allclose(extractor(images), plain, rtol=1e-5, atol=1e-6)


class InceptionLikeBlock(nn.Module):
    """What default_1.pt's blocks do: weights cast to the input's dtype, functional BatchNorm after each conv, and
    `.contiguous()` on each branch before the concatenation."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("weight", torch.randn(8, 3, 3, 3, generator=g) * 0.2)
        self.register_buffer("mean", torch.randn(8, generator=g) * 0.1)
        self.register_buffer("var", torch.rand(8, generator=g) + 0.5)
        self.register_buffer("beta", torch.randn(8, generator=g) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(x, self.weight.to(x.dtype), None, [2, 2], [1, 1])
        y = F.relu(F.batch_norm(y, self.mean, self.var, None, self.beta, False, 0.1, 0.001))
        pooled = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        both = torch.cat([y.contiguous(), pooled.contiguous()], 1)
        return F.adaptive_avg_pool2d(both, 4).flatten(1)


def test_the_cpu_graph_folds_batchnorm_keeps_channels_last_and_changes_no_feature() -> None:
    net = torch.jit.script(InceptionLikeBlock().eval())
    fast = cpu_graph(net)
    graph = fast.graph
    assert fast is not net and not graph.findAllNodes("aten::batch_norm")  # folded into the convolution
    layouts = [n.inputsAt(1).toIValue() for n in graph.findAllNodes("aten::contiguous")]
    assert layouts == [2, 2]  # torch.channels_last: the branches stay NHWC
    x = torch.randn(3, 3, 299, 299)
    with torch.no_grad():
        assert torch.allclose(fast(x.contiguous(memory_format=torch.channels_last)), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("amx", [True, False], ids=["amx", "no-amx"])
def test_a_bf16_extractor_is_for_monitoring_only_and_says_so(
    tiny_cfg: Callable[..., DictConfig],
    tmp_path: Path,
    tiny_weights: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    amx: bool,
) -> None:
    """metrics=fid_bf16 on a CPU with AMX-BF16: the scores go to val/fid_bf16 (never val/fid), best.ckpt follows
    them, and the real features are cached apart from fp32's, since they differ. On a CPU without it, where the
    bf16 Inception runs 7x slower, the same config scores in fp32, logs val/fid, and best.ckpt follows that."""
    monkeypatch.setattr("dcgan_lit.precision.cpu_has_amx_bf16", lambda: amx)
    run, scored = tmp_path / "run", "val/fid_bf16" if amx else "val/fid"
    with caplog.at_level("INFO"):
        metrics = train(
            tiny_cfg(
                "metrics=fid_bf16",
                f"metrics.inception_weights={tiny_weights}",
                "metrics.num_fake=40",
                "metrics.num_fake_train=40",
                "metrics.every_n_epochs=1",
                "trainer.max_epochs=1",
                "trainer.precision=32-true",  # the extractor's choice alone is under test
            )  # fmt: skip
        )
    other = "val/fid" if amx else "val/fid_bf16"
    assert metrics[scored] > 0 and other not in metrics and scored.replace("fid", "recall") in metrics
    assert scored in events(run).Tags()["scalars"]
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert any(f"'monitor': '{scored}'" in key for key in best["callbacks"])
    why = "this CPU has AMX-BF16" if amx else "no AMX-BF16 on this cpu, where fp32 is the faster"
    assert any(r.getMessage().startswith("FID/KID extractor: ") and why in r.getMessage() for r in caplog.records)
    fp32, bf16 = load_extractor(str(tiny_weights)), load_extractor(str(tiny_weights), "bf16")
    assert fp32.identity != bf16.identity and bf16.name.endswith("(bf16 autocast)")  # separate feature caches
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    a, b = fp32(images), bf16(images)
    assert not torch.equal(a, b) and torch.allclose(a, b, rtol=0.05, atol=0.05)


def test_an_unknown_extractor_precision_is_refused_naming_the_key(tiny_weights: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics.extractor_precision='fp16': must be one of fp32, bf16, auto"):
        load_extractor(str(tiny_weights), "fp16")
