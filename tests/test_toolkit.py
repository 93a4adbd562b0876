"""The research toolkit, each piece chosen by config and run through the real training loop."""

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit import losses
from dcgan_lit.diffaugment import cutout, diff_augment, parse_policy
from dcgan_lit.errors import ConfigError
from dcgan_lit.module import joint_d_call_for
from dcgan_lit.nets.discriminator import Discriminator
from dcgan_lit.train import train
from tests.conftest import load_checkpoint as load


def test_loss_values_at_known_points() -> None:
    sure_real, sure_fake = torch.full((4,), 5.0), torch.full((4,), -5.0)
    d, g = ({name: getattr(loss, part) for name, loss in losses.LOSSES.items()} for part in ("d", "g"))
    assert d["hinge"](sure_real, sure_fake) == 0  # both margins met
    assert d["lsgan"](torch.ones(4), torch.zeros(4)) == 0  # exactly on the labels
    assert g["lsgan"](torch.ones(4)) == 0
    assert d["bce"](sure_real, sure_fake) < 0.02
    # One-sided label smoothing: D is now penalised for being sure on real images.
    assert d["bce"](sure_real, sure_fake, real_label=0.9) > 0.4
    assert d["wgan-gp"](torch.tensor([3.0]), torch.tensor([1.0])) == -2
    assert losses.LOSSES["wgan-gp"].penalty == "gp" and losses.LOSSES["bce"].penalty is None


def test_unknown_losses_and_penalties_are_refused_naming_the_known_ones(tiny_cfg: Callable[..., DictConfig]) -> None:
    for override, message in [
        ("model.loss=nope", "model.loss='nope': must be one of bce, hinge, lsgan, wgan-gp."),
        ("+model.penalties.r9=1.0", "model.penalties.r9: no such penalty; known: gp, r1, r2."),
    ]:
        with pytest.raises(InstantiationException) as info:  # Hydra wraps what the constructor raises
            instantiate(tiny_cfg(override).model)
        assert isinstance(info.value.__cause__, ConfigError) and str(info.value.__cause__) == message


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.nn.functional.normalize(torch.randn(1, 12), dim=1))  # ||grad_x D|| = 1
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    assert losses.gradient_penalty(critic, real, fake) < 1e-10


def test_every_d_call_goes_through_diffaugment_the_penalty_included(tiny_cfg: Callable[..., DictConfig]) -> None:
    """The gradient penalty used to score D on un-augmented images while the loss used DiffAugment."""
    cfg = tiny_cfg("model.loss=wgan-gp", "model.discriminator.batch_norm=false", "model.diffaugment=translation")
    model = instantiate(cfg.model)
    seen: list[torch.Tensor] = []
    model.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(0)
    model.discriminator_loss(real, fake)
    assert len(seen) == 3  # D(aug(real)), D(aug(fake)), and the penalty's D(aug(mixed))
    # Translation pads with zeros: each batch D saw has zero rows or columns the raw images do not have.
    for images in seen:
        assert (images == 0).flatten(1).sum(1).gt(0).all()


def test_on_a_cpu_in_bf16_d_scores_real_and_fake_in_one_call(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """Where D has no BatchNorm, one D call per D update on a bf16 CPU, with the logits two calls give."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert joint_d_call_for(False, cpu, "bf16-mixed")
    assert not joint_d_call_for(True, cpu, "bf16-mixed")  # BatchNorm: D's statistics would mix the batches
    assert not joint_d_call_for(False, cpu, "32-true") and not joint_d_call_for(False, gpu, "bf16-mixed")

    no_bn = ("model.discriminator.batch_norm=false", "model.discriminator.spectral_norm=true")
    for overrides, precision, per_batch in [
        ((), "bf16-mixed", [4, 4, 4]),  # BatchNorm D: real, fake, then G's fake
        (no_bn, "32-true", [4, 4, 4]),
        (no_bn, "bf16-mixed", [8, 4]),  # real and fake together, then G's fake
        ((*no_bn, "model.joint_d_call=true"), "32-true", [8, 4]),  # insisted on: fp32 too
        ((*no_bn, "model.joint_d_call=false"), "bf16-mixed", [4, 4, 4]),
    ]:
        out = tmp_path / f"{precision}{len(overrides)}"
        train(tiny_cfg(*overrides, f"trainer.precision={precision}", "trainer.max_steps=3", "data.batch_size=4",
                       "+callbacks.d_calls._target_=tests.helpers.CountDCalls", f"+callbacks.d_calls.dirpath={out}",
                       output_dir=out))  # fmt: skip
        assert json.loads((out / "d_calls.json").read_text()) == [per_batch] * 3

    with pytest.raises(InstantiationException) as info:  # Hydra wraps what the constructor raises
        instantiate(tiny_cfg("model.joint_d_call=true").model)
    assert isinstance(info.value.__cause__, ConfigError)
    assert str(info.value.__cause__).startswith("model.joint_d_call=true scores the real and the fake batch")
    assert "set model.discriminator.batch_norm=false, or model.joint_d_call=null." in str(info.value.__cause__)

    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    model = instantiate(tiny_cfg("model.discriminator.batch_norm=false").model)
    model.joint_d_call = True
    _, d_real, d_fake = model.discriminator_loss(real, fake)
    assert torch.allclose(d_real, model.discriminator(real), atol=1e-6)
    assert torch.allclose(d_fake, model.discriminator(fake), atol=1e-6)

    # Spectral norm's power iteration runs at each training-mode call: once per D update now (Miyato et al. 2018,
    # Algorithm 1), where two calls ran it twice.
    model = instantiate(tiny_cfg(*no_bn).model)
    model.joint_d_call = True
    twin = copy.deepcopy(model.discriminator)

    def u(d: torch.nn.Module) -> torch.Tensor:
        return d.main[0].parametrizations.weight[0]._u

    model.discriminator_loss(real, fake)
    twin(real)
    assert torch.equal(u(model.discriminator), u(twin))
    twin(fake)
    assert not torch.equal(u(model.discriminator), u(twin))


def test_spectral_norm_bounds_each_convolution() -> None:
    d = Discriminator(ndf=8, nc=3, image_size=32, spectral_norm=True, batch_norm=False)
    for _ in range(30):  # power iterations run in training-mode forwards
        d(torch.randn(4, 3, 32, 32))
    convs = [m for m in d.main if isinstance(m, torch.nn.Conv2d)]
    assert all(hasattr(c.parametrizations, "weight") for c in convs)
    sigma = torch.linalg.matrix_norm(convs[1].weight.detach().flatten(1), ord=2)
    assert abs(float(sigma) - 1) < 0.05
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.main)


def d_layers(model: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [m for m in model.discriminator.main if isinstance(m, kind)]


def check_hinge_sn(model: torch.nn.Module) -> None:
    assert model.hparams.loss == "hinge"
    convs = d_layers(model, torch.nn.Conv2d)
    assert convs and all(hasattr(c, "parametrizations") and hasattr(c.parametrizations, "weight") for c in convs)
    assert not d_layers(model, torch.nn.BatchNorm2d)


def check_lsgan(model: torch.nn.Module) -> None:
    assert (model.hparams.loss, model.hparams.real_label) == ("lsgan", 0.9) and model.loss is losses.LOSSES["lsgan"]
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    loss, d_real, d_fake = model.discriminator_loss(real, fake)
    expected = 0.5 * ((d_real - 0.9) ** 2).mean() + 0.5 * (d_fake**2).mean()  # real images against 0.9
    assert torch.allclose(loss, expected)


def check_wgan_gp(model: torch.nn.Module) -> None:
    assert (model.hparams.loss, model.hparams.n_critic, model.optimizer_steps_per_batch) == ("wgan-gp", 3, 4)
    assert not d_layers(model, torch.nn.BatchNorm2d)


def check_k5_dropout_first_bn(model: torch.nn.Module) -> None:
    g_convs = [m for m in model.generator.main if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.kernel_size for c in g_convs] == [(4, 4)] + [(5, 5)] * (len(g_convs) - 1)  # 1x1 -> 4x4, then 5x5
    d_convs = d_layers(model, torch.nn.Conv2d)
    assert [c.kernel_size for c in d_convs] == [(5, 5)] * (len(d_convs) - 1) + [(4, 4)]  # 4x4 -> 1x1 logit last
    relus, drops = d_layers(model, torch.nn.LeakyReLU), d_layers(model, torch.nn.Dropout)
    assert len(drops) == len(relus) and all(d.p == 0.3 for d in drops)  # one after each LeakyReLU
    assert isinstance(model.discriminator.main[1], torch.nn.BatchNorm2d)  # on D's first layer too
    z = torch.randn(2, 16)
    assert model.generator(z).shape == (2, 3, 32, 32) and model.discriminator(model.generator(z)).shape == (2,)


@pytest.mark.parametrize(
    "overrides, check",
    [
        (
            ["model.loss=hinge", "model.discriminator.spectral_norm=true", "model.discriminator.batch_norm=false"],
            check_hinge_sn,
        ),
        (["model.loss=lsgan", "model.real_label=0.9"], check_lsgan),
        (["model.loss=wgan-gp", "model.n_critic=3", "model.discriminator.batch_norm=false"], check_wgan_gp),
        (
            [
                "model.generator.kernel_size=5",
                "model.discriminator.dropout=0.3",
                "model.discriminator.first_batch_norm=true",
            ],
            check_k5_dropout_first_bn,
        ),
    ],  # fmt: skip
    ids=["hinge_sn", "lsgan", "wgan_gp", "k5_dropout_first_bn"],
)
def test_each_option_builds_its_layers_and_trains(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, overrides: list[str], check: Callable
) -> None:
    cfg = tiny_cfg(*overrides, "trainer.max_epochs=1")
    check(instantiate(cfg.model))
    metrics = train(cfg)
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    steps_per_batch = cfg.model.n_critic + 1
    assert ckpt["global_step"] == 3 * steps_per_batch  # 3 batches; n_critic D steps + 1 G step each
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("train/d_loss", "train/g_loss"))


def test_mlp_gan_is_the_fully_connected_gan(tiny_cfg: Callable[..., DictConfig]) -> None:
    model = instantiate(tiny_cfg("model=mlp_gan", "data.nc=1").model)
    g_linear = [m.out_features for m in model.generator.main if isinstance(m, torch.nn.Linear)]
    assert g_linear == [256, 512, 1024, 1 * 32 * 32]
    assert [m.num_features for m in model.generator.main if isinstance(m, torch.nn.BatchNorm1d)] == [512, 1024]
    assert isinstance(model.generator.main[-1], torch.nn.Tanh)
    assert [m.out_features for m in model.discriminator.main if isinstance(m, torch.nn.Linear)] == [512, 256, 1]
    # D's loss is (BCE(D(x), 1) + BCE(D(G(z)), 0)) / 2; G's loss is BCE(D(G(z)), 1), the flipped label.
    real, fake = torch.rand(6, 1, 32, 32) * 2 - 1, model.generator(torch.randn(6, 16)).detach()
    loss, d_real, d_fake = model.discriminator_loss(real, fake)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = 0.5 * (bce(d_real, torch.ones(6)) + bce(d_fake, torch.zeros(6)))
    assert torch.allclose(loss, expected)
    g_loss, d_fake_g = model.generator_loss(fake)
    assert torch.allclose(g_loss, bce(d_fake_g, torch.ones(6)))


def test_ema_samples_and_checkpoints_use_the_averaged_generator(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    train(tiny_cfg("callbacks=ema", "callbacks.ema.decay=0.5", "trainer.max_epochs=2"))
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    # Lightning's EMAWeightAveraging puts the averaged weights in state_dict (what generate/evaluate load) and
    # keeps the live ones for resuming.
    assert "current_model_state" in ckpt
    key = "generator.main.0.weight"
    assert not torch.equal(ckpt["state_dict"][key], ckpt["current_model_state"][key])


@pytest.mark.parametrize("bn_stats", ["averaged", "recomputed"])
def test_ema_generator_batchnorm_statistics(tiny_cfg: Callable[..., DictConfig], tmp_path: Path, bn_stats: str) -> None:
    from torch import nn

    from dcgan_lit.checkpoint_model import load_generator

    ema = [f"callbacks.ema.bn_stats={bn_stats}", "callbacks.ema.bn_samples=96", "callbacks.ema.bn_batch_size=32"]
    train(tiny_cfg("callbacks=ema", "callbacks.ema.decay=0.5", "trainer.max_epochs=2", *ema))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = load(path)
    generator, _ = load_generator(str(path), torch.device("cpu"))  # what generate and evaluate sample from
    bn = next(m for m in generator.modules() if isinstance(m, nn.BatchNorm2d))
    stored = ckpt["state_dict"]["generator.main.1.running_mean"]
    assert torch.equal(bn.running_mean, stored)
    # The first BatchNorm's actual input mean over the 96 seeded z, by the checkpoint's averaged weights.
    inputs: list[torch.Tensor] = []
    hook = bn.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            generator(torch.randn(32, 16, generator=gen))
    hook.remove()
    own_mean = torch.cat(inputs).mean(dim=(0, 2, 3))
    live = ckpt["current_model_state"]["generator.main.1.running_mean"]
    if bn_stats == "recomputed":
        assert torch.allclose(stored, own_mean, atol=1e-5)  # statistics of the averaged weights themselves
    else:
        assert not torch.allclose(stored, own_mean, atol=1e-3)  # an average of the live G's statistics
        assert not torch.equal(stored, live)


def test_ema_bn_stats_must_be_known() -> None:
    from dcgan_lit.callbacks.ema import GeneratorEMA

    with pytest.raises(ConfigError, match=r"callbacks.ema.bn_stats='mean': must be one of averaged, recomputed"):
        GeneratorEMA(bn_stats="mean")


def test_ema_warm_up_and_frequency_pick_the_steps_averaged() -> None:
    from dcgan_lit.callbacks.ema import GeneratorEMA

    late = GeneratorEMA(update_starting_at_step=3, update_every_n_steps=2)
    assert [s for s in range(10) if late.should_update(step_idx=s)] == [4, 6, 8]
    assert not late.should_update(epoch_idx=0)  # per step only: no extra update at epoch ends
    with pytest.raises(ConfigError, match=r"callbacks.ema.update_every_n_steps=0: must be >= 1"):
        GeneratorEMA(update_every_n_steps=0)


def test_ema_warmup_lowers_the_decay_of_the_first_updates_as_tensorflow_does() -> None:
    from torch.optim.swa_utils import AveragedModel

    from dcgan_lit.callbacks.ema import EMAUpdate

    def average_after(steps: int, warmup: bool) -> float:
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        averaged = AveragedModel(model, multi_avg_fn=EMAUpdate(0.999, warmup), use_buffers=True)
        averaged.update_parameters(model)  # the first update copies G's init (0)
        with torch.no_grad():
            model.weight.fill_(1.0)  # G has moved away from its init
        for _ in range(steps):
            averaged.update_parameters(model)
        return averaged.module.weight.item()

    # n = 1, 2, 3 updates after the copy: decays 2/11, 3/12, 4/13, so the init's share is their product.
    assert average_after(3, warmup=True) == pytest.approx(1 - (2 / 11) * (3 / 12) * (4 / 13), abs=1e-6)
    assert average_after(3, warmup=False) == pytest.approx(1 - 0.999**3, abs=1e-6)
    assert average_after(760, warmup=True) > 0.99 > 0.6 > average_after(760, warmup=False)  # 0.999^760 = 0.47


def test_diffaugment_is_differentiable_random_and_shape_preserving() -> None:
    x = (torch.rand(6, 3, 16, 16) * 2 - 1).requires_grad_()
    policy = parse_policy("color,translation,cutout")
    torch.manual_seed(0)
    a = diff_augment(x, policy)
    torch.manual_seed(1)
    b = diff_augment(x, policy)
    assert a.shape == x.shape and not torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G gets gradients through the augmentations
    cut = cutout(torch.ones(4, 1, 16, 16))
    assert ((cut == 0).flatten(1).sum(1) > 0).all()  # every image loses a square
    with pytest.raises(ConfigError, match="unknown \\['rotate'\\]"):
        parse_policy("color,rotate")


def test_diffaugment_colour_parts_on_their_own_add_up_to_color() -> None:
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    torch.manual_seed(3)
    color = diff_augment(x, parse_policy("color"))
    torch.manual_seed(3)
    assert torch.equal(diff_augment(x, parse_policy("brightness,saturation,contrast")), color)

    torch.manual_seed(0)
    shifted = diff_augment(x, parse_policy("brightness"))
    offset = shifted - x  # one offset per image, in [-0.5, 0.5]
    assert torch.allclose(offset, offset[:, :1, :1, :1].expand_as(x), atol=1e-6)
    assert offset.abs().max() <= 0.5 and offset.flatten(1).mean(1).std() > 0.05

    gray = (torch.rand(8, 1, 16, 16) * 2 - 1).repeat(1, 3, 1, 1)
    assert torch.allclose(diff_augment(gray, parse_policy("saturation")), gray, atol=1e-6)  # no colour to scale
    assert not torch.allclose(diff_augment(x, parse_policy("saturation")), x, atol=1e-3)

    stretched = diff_augment(x, parse_policy("contrast"))
    assert torch.allclose(stretched.mean(dim=[1, 2, 3]), x.mean(dim=[1, 2, 3]), atol=1e-5)  # mean kept
    ratio = (stretched - stretched.mean(dim=[1, 2, 3], keepdim=True)).flatten(1).std(1) / (
        x - x.mean(dim=[1, 2, 3], keepdim=True)
    ).flatten(1).std(1)
    assert ((ratio >= 0.5 - 1e-5) & (ratio <= 1.5 + 1e-5)).all() and ratio.std() > 0.05


def test_space_experiment_turns_diffaugment_on(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "space"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (48, 40), (i * 5, 20, 80)).save(folder / f"{i}.png")
    cfg = tiny_cfg("experiment=space", f"data.root={folder}", "metrics=none", "trainer.max_epochs=1",
                   "data.batch_size=8", "data.image_size=32")  # fmt: skip
    assert cfg.model.diffaugment == "color,translation,cutout"
    assert isinstance(instantiate(cfg.model).discriminator.main[1], torch.nn.BatchNorm2d)  # first_batch_norm
    train(cfg)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("model", ["mlp_gan", "dcgan_upsample"])
def test_architecture_variants_train(tiny_cfg: Callable[..., DictConfig], tmp_path: Path, model: str) -> None:
    train(tiny_cfg(f"model={model}", "data.nc=1", "trainer.max_epochs=1"))
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 6 and ckpt["run_config"]["model"]["generator"]["_target_"].endswith(
        {"mlp_gan": "MLPGenerator", "dcgan_upsample": "UpsampleGenerator"}[model]
    )


@pytest.mark.parametrize("name", ["mlp_gan", "dcgan_upsample"])
def test_variant_experiments_compose(tiny_cfg: Callable[..., DictConfig], name: str) -> None:
    cfg = tiny_cfg(f"experiment={name}", "data.image_size=32")
    assert cfg.data.variant == "fashion_mnist" and cfg.data.nc == 1 and cfg.metrics is not None
    if name == "mlp_gan":
        assert (cfg.model.lr_g, cfg.model.lr_d, cfg.model.d_loss_weight) == (1e-4, 2e-4, 0.5)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("dcgan_k5", "model.generator.kernel_size", 5),
        ("dcgan_dropout", "model.discriminator.dropout", 0.3),
        ("dcgan_bn_first", "model.discriminator.first_batch_norm", True),
    ],
)
def test_each_architecture_variant_has_an_experiment(
    tiny_cfg: Callable[..., DictConfig], name: str, key: str, value: object
) -> None:
    from omegaconf import OmegaConf

    cfg = tiny_cfg(f"experiment={name}")
    assert OmegaConf.select(cfg, key) == value and cfg.data.variant == "fashion_mnist"
    if name == "dcgan_k5":
        assert cfg.model.discriminator.kernel_size == 5  # D follows G


def test_r1_and_r2_are_half_the_squared_input_gradient_of_d() -> None:
    """For a linear D (logit = w . x) the input gradient is w everywhere: R1 = R2 = ||w||^2 / 2."""
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1, bias=False))
    w = critic[1].weight.detach().flatten()
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    for name in ("r1", "r2"):
        value = losses.PENALTIES[name].fn(lambda x: critic(x).flatten(), real, fake)
        assert torch.allclose(value, (w**2).sum() / 2), name
    squared = lambda x: (x.flatten(1) ** 2).sum(1)  # noqa: E731  gradient 2x: R1 sees the reals, R2 the fakes
    assert torch.allclose(losses.PENALTIES["r1"].fn(squared, real, fake), 2 * (real.flatten(1) ** 2).sum(1).mean())
    assert torch.allclose(losses.PENALTIES["r2"].fn(squared, real, fake), 2 * (fake.flatten(1) ** 2).sum(1).mean())


def test_a_penalty_trains_through_the_real_loop(tiny_cfg: Callable[..., DictConfig], tmp_path: Path) -> None:
    """One registry entry plus one value: `+model.penalties.r1=...`; its gradient reaches D's weights."""
    cfg = tiny_cfg("+model.penalties.r1=10.0", "model.discriminator.batch_norm=false", "trainer.max_epochs=1")
    model = instantiate(cfg.model)
    assert model.penalties == {"r1": 10.0}
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    with_r1, _, _ = model.discriminator_loss(real, real.flip(0))
    model.penalties = {}
    without, _, _ = model.discriminator_loss(real, real.flip(0))
    assert with_r1 > without  # the penalty is part of D's loss
    train(cfg)
    ckpt = load(tmp_path / "run" / "checkpoints" / "last.ckpt")  # weights_only: plain numbers in its hparams
    assert ckpt["global_step"] == 6 and ckpt["hyper_parameters"]["penalties"] == {"r1": 10.0}


@pytest.mark.parametrize(
    "overrides, what",
    [(["model.loss=wgan-gp"], "model.loss=wgan-gp"), (["+model.penalties.r1=1.0"], "model.penalties.r1")],
    ids=["wgan_gp", "r1"],
)
def test_a_gradient_penalty_with_a_batchnorm_discriminator_is_refused(
    tiny_cfg: Callable[..., DictConfig], tmp_path: Path, capsys: pytest.CaptureFixture, overrides: list[str], what: str
) -> None:
    """It used to train without a word: the penalty is per image, and BatchNorm mixes the images of a batch."""
    from dcgan_lit.train import run
    from tests.conftest import exits

    code, stderr = exits(run, tiny_cfg(*overrides), capsys)
    assert code == 2 and stderr == (
        f"error: {what} penalizes each image's gradient, and the discriminator has BatchNorm, which mixes the "
        "images of a batch; set model.discriminator.batch_norm=false.\n"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_batchnorm1d_net_with_one_image_per_batch_is_refused_naming_the_key(
    tiny_cfg: Callable[..., DictConfig], capsys: pytest.CaptureFixture
) -> None:
    """model=mlp_gan data.batch_size=1 used to end in BatchNorm1d's traceback at the first step."""
    from dcgan_lit.train import run
    from tests.conftest import exits

    code, stderr = exits(run, tiny_cfg("model=mlp_gan", "data.batch_size=1"), capsys)
    assert code == 2 and stderr == (
        "error: data.batch_size=1: model.generator (MLPGenerator) has BatchNorm1d layers, which need at least 2 "
        "images per training batch (per device under DDP); set data.batch_size=2 or more.\n"
    )
