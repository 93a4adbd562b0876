"""Where the host time of a training batch goes: cProfile around `python -m dcgan_lit.train` (any overrides).

python benchmarks/profile_step.py experiment=celeba trainer=gpu +trainer.limit_train_batches=800 > profile.txt
"""

import cProfile
import pstats
import runpy
import sys

if __name__ == "__main__":
    sys.argv = ["dcgan_lit.train", *sys.argv[1:]]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        runpy.run_module("dcgan_lit.train", run_name="__main__")
    except SystemExit:
        pass
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
