"""Where the host time of a training batch goes: cProfile around `python -m dcgan_lit.train` (any overrides).

python benchmarks/profile_step.py experiment=celeba trainer=gpu +trainer.limit_train_batches=800 > profile.txt

cProfile adds a cost to every Python call, so it overstates loops of many small ops (it put the EMA update at
3.8 ms a batch, which takes 0.7 ms timed directly: BENCHMARKS.md, "The EMA costs under 1% of a batch"). Read its
figures as counts of calls, and time a suspect directly or with a sampling profiler (py-spy --nonblocking).
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
