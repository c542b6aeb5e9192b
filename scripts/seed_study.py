"""Median over seeds of the first generation at which every class reaches 0.9999.

  python scripts/seed_study.py --seeds=0,1,2,3,4 --generations=400 \
      --weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=caffe_deploy \
      --mean_file=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/mnist_mean.binaryproto \
      [--crossover_rate=0.5] [--population=200] [--mutation_rate=0.1]

Takes every flag of the fooling entry points, the CPPN's included
(``--flagfile=experiments/configs/mnist_cppn.flags`` runs the CPPN study). Each
seed is a full ``fooling.run`` in its own work directory under --workdir. Prints
one line per seed and, last, a JSON line with the per-seed generations (null =
not reached within --generations) and their median.
"""

from absl import flags

from fooljax.runs import fooling
from fooljax.runs.cli import run_main

fooling.define_flags(default_workdir="runs/seed_study")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds to run.")

if __name__ == "__main__":
    run_main(fooling.seed_study_main)
