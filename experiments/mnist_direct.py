"""fooljax's main job: MAP-Elites fooling images for MNIST, direct encoding.

  python -m experiments.mnist_direct \
      --flagfile=experiments/configs/mnist_direct.flags [--workdir=DIR]

Runs on the embedded LeNet (no data, no network). Against the paper's own Caffe
LeNet add ``--weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000
--preprocess=caffe_deploy --mean_file=.../mnist_mean.binaryproto``.
Expected (paper settings, 1000 generations of 200, 2-core CPU): every class
>= 0.9999; about 15 s with a warm compilation cache. Writes summary.json,
archive.png, classes/*.png, confidence.png, nines.png, qd.png, metrics.jsonl
into the work directory.
"""

from fooljax.runs import fooling
from fooljax.runs.cli import run_main

fooling.define_flags(default_workdir="runs/mnist_direct", encoding="direct")

if __name__ == "__main__":
    run_main(fooling.main)
