"""Median over seeds of the first generation at which every class reaches 0.9999,
for the CPPN encoding (``scripts/seed_study.py`` cannot pass the CPPN's flags).

  python scripts/seed_study_cppn.py --flagfile=experiments/configs/mnist_cppn.flags \
      --seeds=0,1,2,3,4 --generations=200 \
      --weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=caffe_deploy \
      --mean_file=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/mnist_mean.binaryproto

Takes every flag of ``experiments.mnist_cppn``. Each seed is a full
``fooling.run`` in its own work directory under --workdir. Prints one line per
seed and, last, a JSON line with the per-seed generations (null = not reached
within --generations) and their median.
"""

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from experiments import mnist_cppn  # noqa: E402  (defines the flags)
from fooljax.cli import print_json_line, run_main  # noqa: E402
from fooljax.evolution import fooling  # noqa: E402
from fooljax.evolution.flags import config_from_flags  # noqa: E402

flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds to run.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import logging

    logging.getLogger("fooljax").setLevel(logging.WARNING)
    options = mnist_cppn.cppn_options()
    firsts, firsts99, walls, mins = [], [], [], []
    for seed in FLAGS.seeds:
        cfg = config_from_flags(
            encoding="cppn",
            encoding_options=options,
            seed=int(seed),
            checkpoint_every=10**9,
        )
        wd = os.path.join(FLAGS.workdir, f"seed{seed}")
        s = fooling.run(cfg, wd, overwrite=True)
        g = s["first_generation_all_at_least"]["0.9999"]
        g99 = s["first_generation_all_at_least"]["0.99"]
        firsts.append(g)
        firsts99.append(g99)
        walls.append(s["wall_seconds"])
        mins.append(min(s["confidence"]))
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
            "encoding": "cppn",
            "first_all_0.9999": firsts,
            "median_first_all_0.9999": None if med >= big else med,
            "first_all_0.99": firsts99,
            "median_first_all_0.99": None if med99 >= big else med99,
            "min_confidence_at_end": mins,
            "median_min_confidence_at_end": statistics.median(mins),
            "population": FLAGS.population,
            "generations": FLAGS.generations,
            "encoding_options": dict(options),
            "weights": FLAGS.weights,
            "preprocess": FLAGS.preprocess,
            "mean_wall_seconds": sum(walls) / len(walls),
        }
    )


if __name__ == "__main__":
    run_main(main)
