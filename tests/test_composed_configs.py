"""The composed config of every experiment and config group option, compared with the committed snapshots.

Restructuring conf/ (shared blocks, experiments that carry only what they change) must compose to exactly the
same configs. A change meant to alter them updates the snapshots, so the diff shows what changed:
    UPDATE_COMPOSED=1 pytest tests/test_composed_configs.py
"""

import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose_train

SNAPSHOTS = Path(__file__).resolve().parent / "composed"


def choices() -> list[str]:
    """The default run, every experiment, and every option of the groups experiments do not cover."""
    experiments = [f"experiment={p.stem}" for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
    groups = [
        f"{group}={p.stem}"
        for group in ("data", "model", "trainer", "callbacks", "logger", "metrics")
        for p in sorted((CONF_DIR / group).glob("*.yaml"))
    ]
    return ["default", *experiments, *groups]


@pytest.mark.parametrize("choice", choices())
def test_composed_config_matches_its_snapshot(choice: str) -> None:
    overrides = [] if choice == "default" else [choice]
    composed = OmegaConf.to_yaml(compose_train(overrides))  # unresolved, as `--cfg job` prints it
    snapshot = SNAPSHOTS / f"{choice.replace('=', '-')}.yaml"
    if os.environ.get("UPDATE_COMPOSED"):
        snapshot.write_text(composed)
    assert snapshot.is_file(), f"no snapshot for {choice}: run UPDATE_COMPOSED=1 pytest {__file__}"
    # Key order is how the YAML files happen to be laid out; the values are what runs.
    assert yaml.safe_load(composed) == yaml.safe_load(snapshot.read_text()), f"{choice} composes unlike {snapshot}"
