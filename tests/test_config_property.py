"""Property test: any drawn config builds and computes a GAN step, or is refused with the project's own error.

Every drawn config goes through what a run does before training and the step itself: check_config, the data
module's setup, the model's constructor, then D's and G's losses and backward passes on a real batch. A few fixed
configs then train for real, through the Trainer.
"""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcgan_lit.config_check import check_config
from dcgan_lit.errors import UserError
from dcgan_lit.train import train, user_error
from tests.conftest import TINY, compose_train

# Anything a user might type: out-of-range and non-integer numbers, NaN, infinities, strings, lists.
JUNK = st.one_of(
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["abc", "null", "''", "[1,2]", "inf", "nan", "-inf", "0", "1e-300"]),
)
KEYS = ("data.image_size", "model.nz", "model.generator.ngf", "model.discriminator.ndf", "data.nc",
        "data.batch_size", "model.lr_g", "model.lr_d")  # fmt: skip


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value 9 times in 10, junk otherwise: about 40% of drawn configs are valid throughout."""
    return st.integers(0, 9).flatmap(lambda k: JUNK if k == 0 else valid)


def overrides(values: tuple, out: Path) -> list[str]:
    shown = [repr(v) if isinstance(v, float) else str(v) for v in values]
    return [
        *[o for o in TINY if not o.startswith(KEYS)],
        "data.num_images=60",
        "trainer.max_steps=1",
        f"paths.output_dir={out}",
        f"paths.data_dir={out / 'data'}",
        *[f"{key}={value}" for key, value in zip(KEYS, shown, strict=True)],
    ]


def build_and_step(cfg: object) -> None:
    """What train() does up to and including one GAN step, without the Trainer: raises UserError if refused."""
    check_config(cfg)
    try:
        dm, model = instantiate(cfg.data), instantiate(cfg.model)
    except Exception as e:  # Hydra wraps what a constructor raises
        raise user_error(e) or e from None
    dm.setup("fit")
    real = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    z = torch.randn(len(real), cfg.model.nz)
    fake = model.generator(z)
    d_loss, d_real, _ = model.discriminator_loss(real, fake.detach())
    d_loss.backward()
    g_loss, _ = model.generator_loss(fake)
    g_loss.backward()
    assert d_real.shape == (len(real),) and torch.isfinite(d_loss) and torch.isfinite(g_loss)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, int]:
    """How the drawn configs ended; afterwards, a guard against a property test that passes by refusing all."""
    counts = {"built": 0, "refused": 0, "hydra": 0}
    yield counts
    print(f"\nproperty test outcomes: {counts}")  # for RELIABILITY.md
    assert counts["built"] >= 10 and counts["refused"] >= 10, counts


# Derandomized: the same 60 configs every run. Drawn afresh each time, a run now and then drew fewer than the 10
# refusals that `outcomes` asks for (9 of 62 once in CI), and the suite failed for no change of the code.
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(image_size=32, nz=4, ngf=4, ndf=4, nc=3, batch_size=8, lr_g=2e-4, lr_d=2e-4)  # always one that builds
@example(image_size=48, nz=4, ngf=4, ndf=4, nc=3, batch_size=8, lr_g=2e-4, lr_d=2e-4)  # and one that is refused
@given(
    image_size=mostly(st.sampled_from([16, 32, 64])),
    nz=mostly(st.integers(1, 8)),
    ngf=mostly(st.integers(1, 8)),
    ndf=mostly(st.integers(1, 8)),
    nc=mostly(st.sampled_from([1, 3])),
    batch_size=mostly(st.integers(1, 40)),
    lr_g=mostly(st.floats(1e-6, 0.1)),
    lr_d=mostly(st.floats(1e-6, 0.1)),
)
def test_any_config_builds_a_gan_step_or_is_refused_with_a_project_error(
    tmp_path_factory: pytest.TempPathFactory,
    outcomes: dict[str, int],
    image_size: object,
    nz: object,
    ngf: object,
    ndf: object,
    nc: object,
    batch_size: object,
    lr_g: object,
    lr_d: object,
) -> None:
    out = tmp_path_factory.getbasetemp() / "property"
    drawn = (image_size, nz, ngf, ndf, nc, batch_size, lr_g, lr_d)  # in KEYS order
    try:
        cfg = compose_train(overrides(drawn, out))
    except Exception as e:  # Hydra itself refusing an override's syntax is a clean, one-line refusal too
        assert type(e).__module__.startswith(("hydra", "omegaconf")), repr(e)
        outcomes["hydra"] += 1
        return
    try:
        build_and_step(cfg)
    except UserError as e:
        assert str(e) and "\n" not in str(e).strip(), str(e)
        outcomes["refused"] += 1
        return
    outcomes["built"] += 1


@pytest.mark.parametrize(
    "values",
    [(16, 1, 1, 1, 1, 1, 0.1, 1e-6), (32, 8, 3, 5, 3, 7, 2e-4, 2e-4), (64, 2, 2, 2, 1, 40, 1e-3, 1e-2)],
    ids=["smallest", "odd widths", "64px"],
)
def test_configs_at_the_edges_train_for_real(tmp_path: Path, values: tuple) -> None:
    """A few of the drawn space's corners through the real Trainer: one step, then a checkpoint."""
    train(compose_train(overrides(values, tmp_path)))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
