"""Two `train()` calls in one script under trainer=ddp, as a user's own sweep loop makes them: Lightning keeps the
process group (and its key-value store) from the first fit for the second. Run by tests/test_faults.py:
`python tests/two_ddp_fits.py OUT WEIGHTS`; each fit's ranks write OUT/fit<seed>/draws<rank>.json."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcgan_lit.train import train  # noqa: E402
from tests.conftest import DDP_ON_TWO_CPUS, TINY, compose_train  # noqa: E402

out, weights = Path(sys.argv[1]), sys.argv[2]
tiny = [o for o in TINY if not o.startswith(("trainer=", "trainer.max_epochs"))]
for seed in (1, 2):
    fit = out / f"fit{seed}"
    train(compose_train([
        *DDP_ON_TWO_CPUS, *tiny, "trainer.max_epochs=1", "data.num_images=120", f"seed={seed}", "metrics=fid",
        f"metrics.inception_weights={weights}", "metrics.num_fake_train=16", "metrics.every_n_epochs=1",
        "+callbacks.draws._target_=tests.helpers.SaveRankDraws", f"+callbacks.draws.dirpath={fit}",
        # rank 0 scores slowly, so rank 1 is waiting for the score, not arriving after it is stored
        "+callbacks.slow._target_=tests.helpers.SlowScore", f"+callbacks.slow.marker={fit / 'scoring'}",
        f"paths.output_dir={fit}", f"paths.data_dir={out / 'data'}",
    ]))  # fmt: skip
