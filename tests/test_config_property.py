"""Property test: any drawn config either trains one step on the CPU or is refused with the project's own error."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dcgan_lit.errors import UserError
from dcgan_lit.train import train
from tests.conftest import TINY, compose_train

OUTCOMES: dict[str, int] = {"trained": 0, "refused": 0, "hydra": 0}  # counted for RELIABILITY.md

# Anything a user might type: out-of-range and non-integer numbers, NaN, infinities, strings, lists.
JUNK = st.one_of(
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["abc", "null", "''", "[1,2]", "inf", "nan", "-inf", "0", "1e-300"]),
)


def mostly(valid: st.SearchStrategy) -> st.SearchStrategy:
    """A valid value 9 times in 10, junk otherwise: about 40% of drawn configs are valid throughout."""
    return st.integers(0, 9).flatmap(lambda k: JUNK if k == 0 else valid)


def shown(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(image_size=32, nz=4, ngf=4, ndf=4, nc=3, batch_size=8, lr_g=2e-4, lr_d=2e-4)  # always one that trains
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
def test_any_config_trains_one_step_or_is_refused_with_a_project_error(
    tmp_path_factory: pytest.TempPathFactory,
    image_size: object,
    nz: object,
    ngf: object,
    ndf: object,
    nc: object,
    batch_size: object,
    lr_g: object,
    lr_d: object,
) -> None:
    drawn = {
        "data.image_size": image_size,
        "model.nz": nz,
        "model.generator.ngf": ngf,
        "model.discriminator.ndf": ndf,
        "data.nc": nc,
        "data.batch_size": batch_size,
        "model.lr_g": lr_g,
        "model.lr_d": lr_d,
    }
    out = tmp_path_factory.mktemp("run")
    overrides = [
        *[o for o in TINY if not o.startswith(tuple(drawn))],
        "data.num_images=60",
        "trainer.max_steps=1",
        f"paths.output_dir={out}",
        f"paths.data_dir={Path(out) / 'data'}",
        *[f"{key}={shown(value)}" for key, value in drawn.items()],
    ]
    try:
        cfg = compose_train(overrides)
    except Exception as e:  # Hydra itself refusing an override's syntax is a clean, one-line refusal too
        assert type(e).__module__.startswith(("hydra", "omegaconf")), repr(e)
        OUTCOMES["hydra"] += 1
        return
    try:
        train(cfg)
    except UserError as e:
        assert str(e) and "\n" not in str(e).strip(), str(e)
        OUTCOMES["refused"] += 1
        return
    assert (out / "checkpoints" / "last.ckpt").is_file()  # it trained
    OUTCOMES["trained"] += 1


def test_the_property_test_both_trained_and_refused() -> None:
    """Runs after the property test (file order): guards against a test that passes by refusing everything."""
    print(f"\nproperty test outcomes: {OUTCOMES}")
    assert OUTCOMES["trained"] >= 1 and OUTCOMES["refused"] >= 1, OUTCOMES
