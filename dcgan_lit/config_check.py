"""Refuse config values that cannot work, before anything is built, with a message that names the key."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError
from torch import nn

from dcgan_lit.errors import ConfigError
from dcgan_lit.nets.sizes import num_stride2_blocks

_ABSENT = object()


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# (keys, test, what the value must be). Keys missing from a config (another model or data group) are skipped.
Rule = tuple[tuple[str, ...], Callable[[Any], bool], str]
_RULES: list[Rule] = [
    (
        ("data.batch_size", "data.num_images", "model.nz", "model.generator.ngf", "model.discriminator.ndf"),
        lambda v: is_int(v) and v >= 1,
        "a whole number >= 1",
    ),
    (("data.num_workers",), lambda v: is_int(v) and v >= 0, "a whole number >= 0"),
    (("model.lr_g", "model.lr_d"), lambda v: _is_number(v) and 0 < v < math.inf, "a finite number > 0, e.g. 2e-4"),
    (("data.val_fraction",), lambda v: _is_number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    (("data.nc",), lambda v: is_int(v) and v in (1, 3), "1 (grayscale) or 3 (RGB)"),
    (("metrics.every_n_epochs",), lambda v: is_int(v) and v >= 1, "a whole number >= 1"),
    (("metrics.batch_size",), lambda v: v is None or (is_int(v) and v >= 1), "a whole number >= 1, or null"),
    # FID needs a covariance of the fakes' features, so at least 2 of them; 10k is the usual FID-10k.
    (
        ("metrics.num_fake", "metrics.num_fake_train", "metrics.min_heldout"),
        lambda v: is_int(v) and v >= 2,
        "a whole number >= 2, e.g. 10000",
    ),
    # decay 1 would freeze the averaged G at its initial weights for the whole run.
    (("callbacks.ema.decay",), lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1), e.g. 0.999"),
    (("model.lr_decay_start",), lambda v: v is None or (_is_number(v) and 0 <= v < 1), "in [0, 1), or null"),
    (("model.penalty_every",), lambda v: is_int(v) and v >= 1, "a whole number >= 1, e.g. 16"),
]


def check_rules(cfg: DictConfig, rules: list[Rule]) -> None:
    """Raise ConfigError for the first key whose value fails its rule; keys absent from `cfg` are skipped."""
    for keys, ok, must in rules:
        for key in keys:
            v = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
            if v is not _ABSENT and not ok(v):
                raise ConfigError(f"{key}={v!r}: must be {must}.")


def require(cfg: DictConfig, key: str, example: str) -> None:
    """A ConfigError naming `key` when a mandatory (`???`) value was not given, instead of Hydra's traceback."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"{key} is not set: pass {example}.")


def check_interpolations(cfg: DictConfig) -> None:
    """Every `${...}` resolves: a key that another key reads and that was removed (`~model.generator.kernel_size`,
    which D's kernel_size reads) or misspelled is named here, before Hydra's instantiate, whose own error has lost
    the key."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as e:
        if not isinstance(e, InterpolationKeyError):
            return  # a resolver with no value here, e.g. ${hydra:...} outside a Hydra app: the user's key is fine
        reason = str(e).strip().splitlines()[0]
        raise ConfigError(
            f"{e.full_key}: {reason}: a key it refers to was removed (~) or misspelled; set {e.full_key} itself "
            "too, or keep the key it refers to."
        ) from None


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that cannot work."""

    def get(key: str) -> Any:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)

    check_interpolations(cfg)
    data = cfg.get("data")
    if data is not None and "root" in data.keys() and OmegaConf.is_missing(data, "root"):
        raise ConfigError("data.root is not set: pass data.root=path/to/your/images.")

    check_rules(cfg, _RULES)
    size = get("data.image_size")
    if size is not _ABSENT:
        num_stride2_blocks(size, key="data.image_size")
    for key in ("image_size", "nc"):
        model_v, data_v = get(f"model.{key}"), get(f"data.{key}")
        if _ABSENT not in (model_v, data_v) and model_v != data_v:
            raise ConfigError(
                f"model.{key}={model_v!r} differs from data.{key}={data_v!r}: set data.{key} only; "
                f"model.{key} follows it by default."
            )

    for opt in ("model.optimizer_g", "model.optimizer_d"):
        betas = get(f"{opt}.betas")
        if betas is not _ABSENT and not (
            OmegaConf.is_list(betas) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas)
        ):
            shown = OmegaConf.to_object(betas) if OmegaConf.is_config(betas) else betas
            raise ConfigError(f"{opt}.betas={shown!r}: must be two numbers in [0, 1), e.g. [0.5, 0.999].")

    epochs = get("trainer.max_epochs")
    if epochs is not _ABSENT and epochs is not None and not (is_int(epochs) and (epochs >= 1 or epochs == -1)):
        raise ConfigError(f"trainer.max_epochs={epochs!r}: must be a whole number >= 1 (or -1 for no limit).")

    if get("model.cuda_graph") is True and not torch.cuda.is_available():
        raise ConfigError("model.cuda_graph=true needs a CUDA GPU and none is available; set model.cuda_graph=false.")

    steps = get("trainer.max_steps")
    if steps not in (_ABSENT, None) and not (is_int(steps) and (steps >= 1 or steps == -1)):
        raise ConfigError(f"trainer.max_steps={steps!r}: must be a whole number of batches >= 1 (or -1 for no limit).")

    if get("model.lr_decay_start") not in (_ABSENT, None) and epochs == -1 and steps in (_ABSENT, None, -1):
        raise ConfigError(
            "model.lr_decay_start needs a known end of training, and trainer.max_epochs=-1 with no "
            "trainer.max_steps has none: set either."
        )

    _check_multi_device(get("trainer.devices"), get("trainer.num_nodes"), get("trainer.strategy"))

    metric = get("optimized_metric")
    if isinstance(metric, str) and metric.startswith("val/") and get("metrics") in (None, _ABSENT):
        raise ConfigError(
            f"optimized_metric={metric} is a sample-quality score, and metrics are off (metrics=none), so no run "
            "would log it: add metrics=fid, or optimize a training scalar such as train/g_loss_epoch."
        )

    ckpt = get("ckpt_path")
    if ckpt not in (_ABSENT, None) and not Path(str(ckpt)).expanduser().is_file():
        raise ConfigError(
            f"ckpt_path={ckpt!r}: no such file. "
            "Point it at a checkpoint, e.g. outputs/<date>/<time>/checkpoints/last.ckpt."
        )


# DDP strategies that assume every parameter gets a gradient in every backward; a GAN step breaks that.
_PLAIN_DDP = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def _several_processes(devices: Any, num_nodes: Any) -> bool:
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        several = len(devices) > 1
    elif isinstance(devices, str):
        several = devices.strip() in ("auto", "-1") or "," in devices.strip(",")
    else:
        several = devices is not _ABSENT and is_int(devices) and (devices > 1 or devices == -1)
    return several or (is_int(num_nodes) and num_nodes > 1)


def check_multirun(cfg: DictConfig, multirun: bool) -> None:
    """Multirun with script-launched DDP re-runs the whole sweep in every extra process; refuse it, naming the fix."""
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", "auto"))
    if (
        multirun
        and _several_processes(trainer.get("devices", 1), trainer.get("num_nodes", 1))
        and "spawn" not in strategy
    ):
        raise ConfigError(
            f"multirun (-m) with trainer.strategy={strategy!r} on several devices: Lightning starts each extra DDP "
            "process by re-running this command line, so every process would run the whole sweep. For sweeps use "
            "trainer.strategy=ddp_spawn_find_unused_parameters_true, or run the jobs as separate processes with "
            "hydra/launcher=slurm."
        )


def check_accelerator(accelerator: str) -> None:
    """A GPU asked for where torch sees none: Lightning's own "No supported gpu backend found!" says neither which
    key asked nor what to do. Checked at run time, apart from `check_config`: the same config is right on a GPU
    machine."""
    mps = accelerator == "gpu" and torch.backends.mps.is_available()  # Lightning's "gpu" is Apple's GPU too
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available() or mps:
        return
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
    raise ConfigError(
        f"trainer.accelerator={accelerator!r} needs a GPU, and torch sees none (torch {torch.__version__}, {build}). "
        "trainer=gpu and trainer=ddp set it. To train on this CPU, leave trainer at its default; for DDP over CPU "
        "processes, trainer=ddp trainer.accelerator=cpu."
    )


def _check_multi_device(devices: Any, num_nodes: Any, strategy: Any) -> None:
    """Several devices with Lightning's plain DDP crash on the first GAN step; point to trainer=ddp instead."""
    if strategy is _ABSENT or strategy not in _PLAIN_DDP:
        return
    if _several_processes(devices, num_nodes):
        raise ConfigError(
            f"trainer.devices={devices!r} with trainer.strategy={strategy!r} would run plain DDP, which stops at "
            "the first GAN step (each backward leaves one net without gradients). "
            f"Use trainer=ddp, e.g. `python -m dcgan_lit.train trainer=ddp trainer.devices={devices}`."
        )


def check_batch_norm(model: nn.Module, batch_size: int) -> None:
    """BatchNorm1d normalizes each feature over the batch alone: a batch of one image has no statistics to use."""
    if batch_size >= 2:
        return
    for name in ("generator", "discriminator"):
        net = getattr(model, name, None)
        if net is not None and any(isinstance(m, nn.BatchNorm1d) for m in net.modules()):
            raise ConfigError(
                f"data.batch_size={batch_size}: model.{name} ({type(net).__name__}) has BatchNorm1d layers, which "
                "need at least 2 images per training batch (per device under DDP); set data.batch_size=2 or more."
            )
