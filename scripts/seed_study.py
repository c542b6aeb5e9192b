"""Median over seeds of the first generation at which every class reaches 0.9999.

  python scripts/seed_study.py --seeds=0,1,2,3,4 --generations=400 \
      --weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=caffe_deploy \
      --mean_file=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/mnist_mean.binaryproto \
      [--crossover_rate=0.5] [--population=200] [--mutation_rate=0.1]

Each seed is a full ``fooling.run`` in its own work directory under --workdir.
Prints one line per seed and, last, a JSON line with the per-seed generations
(null = not reached within --generations) and their median.
"""

import os
import statistics

from absl import app, flags

from fooljax.cli import print_json_line, setup_logging
from fooljax.evolution import fooling
from fooljax.evolution.flags import config_from_flags, define_fooling_flags

define_fooling_flags(default_workdir="runs/seed_study")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds to run.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save
    setup_logging()
    import logging

    logging.getLogger("fooljax").setLevel(logging.WARNING)
    firsts, firsts99, walls = [], [], []
    for seed in FLAGS.seeds:
        cfg = config_from_flags(seed=int(seed), checkpoint_every=10**9)
        wd = os.path.join(FLAGS.workdir, f"seed{seed}")
        s = fooling.run(cfg, wd, overwrite=True)
        g = s["first_generation_all_at_least"]["0.9999"]
        g99 = s["first_generation_all_at_least"]["0.99"]
        firsts.append(g)
        firsts99.append(g99)
        walls.append(s["wall_seconds"])
        print(
            f"seed {seed}: all >= 0.99 at {g99}, all >= 0.9999 at {g}, "
            f"min conf {min(s['confidence']):.6f}, {s['wall_seconds']:.1f} s",
            flush=True,
        )
    big = 10**9
    med = statistics.median([g if g is not None else big for g in firsts])
    med99 = statistics.median([g if g is not None else big for g in firsts99])
    print_json_line(
        {
            "first_all_0.9999": firsts,
            "median_first_all_0.9999": None if med >= big else med,
            "first_all_0.99": firsts99,
            "median_first_all_0.99": None if med99 >= big else med99,
            "population": FLAGS.population,
            "mutation_rate": FLAGS.mutation_rate,
            "mutation_eta": FLAGS.mutation_eta,
            "crossover_rate": FLAGS.crossover_rate,
            "generations": FLAGS.generations,
            "weights": FLAGS.weights,
            "preprocess": FLAGS.preprocess,
            "mean_wall_seconds": sum(walls) / len(walls),
        }
    )


if __name__ == "__main__":
    app.run(main)
