"""One manual optimization step, observed from inside the real Trainer."""

from collections.abc import Callable

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dcgan_lit.module import DCGAN


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


class StepProbe(L.Callback):
    """Snapshots G and D before the step, right after D's optimizer step, and after the whole step."""

    def on_train_start(self, trainer: L.Trainer, pl_module: DCGAN) -> None:
        opt_g, opt_d = trainer.optimizers
        opt_d.register_step_post_hook(
            lambda *_: setattr(self, "after_d_step", (snapshot(pl_module.generator), snapshot(pl_module.discriminator)))
        )

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: DCGAN, batch: torch.Tensor, batch_idx: int) -> None:
        self.before = (snapshot(pl_module.generator), snapshot(pl_module.discriminator))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: DCGAN, outputs: object, batch: torch.Tensor, batch_idx: int
    ) -> None:
        self.after = (snapshot(pl_module.generator), snapshot(pl_module.discriminator))


def fit_one_step(cfg: DictConfig, probe: L.Callback) -> tuple[DCGAN, L.Trainer]:
    L.seed_everything(0)
    model, dm = instantiate(cfg.model), instantiate(cfg.data)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        logger=False,
        callbacks=[probe],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(model, datamodule=dm)
    return model, trainer


def test_one_step_updates_d_then_g_and_leaves_d_alone_during_g(tiny_cfg: Callable[..., DictConfig]) -> None:
    probe = StepProbe()
    model, trainer = fit_one_step(tiny_cfg(), probe)
    g0, d0 = probe.before
    g_mid, d_mid = probe.after_d_step
    g1, d1 = probe.after

    assert trainer.global_step == 2  # one step of each optimizer
    assert same(g0, g_mid), "D's update must not touch G"
    assert not same(d0, d_mid), "D's update must change D"
    assert not same(g_mid, g1), "G's update must change G"
    assert same(d_mid, d1), "G's update must leave D's parameters unchanged"
    # G's backward went through D with D's grads switched off, so D only holds its own step's gradients.
    assert all(p.requires_grad for p in model.parameters()), "toggle/untoggle must restore requires_grad"


def test_step_logs_the_tutorial_diagnostics_as_tensors(tiny_cfg: Callable[..., DictConfig]) -> None:
    model, trainer = fit_one_step(tiny_cfg(), L.Callback())
    logged = trainer.logged_metrics
    for name in ("train/d_loss", "train/g_loss", "train/D_x", "train/D_G_z1", "train/D_G_z2"):
        assert name in logged, name
        assert isinstance(logged[name], torch.Tensor)
    for name in ("train/D_x", "train/D_G_z1", "train/D_G_z2"):
        assert 0 < logged[name].item() < 1  # probabilities: sigmoid of D's logits
    # At init D cannot tell real from fake, so its BCE loss is near 2 * log(2).
    assert abs(logged["train/d_loss"].item() - 2 * torch.log(torch.tensor(2.0)).item()) < 0.5


def test_fixed_noise_is_a_checkpointed_buffer(tiny_cfg: Callable[..., DictConfig]) -> None:
    model = instantiate(tiny_cfg().model)
    assert "fixed_noise" in model.state_dict()
    assert model.fixed_noise.shape == (64, 16)
    g_mode = model.generator.training
    samples = model.sample_fixed()
    assert samples.shape == (64, 3, 32, 32)
    assert model.generator.training == g_mode  # sampling does not leave G in eval mode
    assert torch.equal(samples, model.sample_fixed())  # eval mode: deterministic, running stats untouched


def test_optimizers_come_from_yaml_with_separate_lrs(tiny_cfg: Callable[..., DictConfig]) -> None:
    model = instantiate(tiny_cfg("model.lr_g=1e-4", "model.lr_d=4e-4").model)
    opt_g, opt_d = model.configure_optimizers()
    assert isinstance(opt_g, torch.optim.Adam) and isinstance(opt_d, torch.optim.Adam)
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert list(opt_g.param_groups[0]["betas"]) == [0.5, 0.999]
    assert type(opt_g.param_groups[0]["betas"]) in (list, tuple)  # no omegaconf objects inside checkpoints
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in model.generator.parameters()}
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in model.discriminator.parameters()}
