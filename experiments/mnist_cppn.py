"""MAP-Elites fooling images for MNIST with the CPPN indirect encoding.

  python -m experiments.mnist_cppn \
      --flagfile=experiments/configs/mnist_cppn.flags [--workdir=DIR]

Nguyen et al. 2015, Sec. 2.3 and 3.2: a CPPN (inputs x, y, d, bias; sine,
sigmoid, Gaussian, identity) evolved NEAT-style by MAP-Elites over the 10 digit
classes. Runs on the embedded LeNet (no data, no network). Against the paper's
own Caffe LeNet add ``--weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000
--preprocess=caffe_deploy --mean_file=.../mnist_mean.binaryproto``.
Expected (flagfile: 200 offspring x 1000 generations, 2-core CPU): every class
>= 0.9999 within the first few dozen generations, the whole run in about 1-3
minutes depending on the machine's load (BUILD_NOTES.md has measured numbers).
Writes summary.json, archive.png, classes/*.png, confidence.png, metrics.jsonl
and checkpoints/ into the work directory; ``scripts/render_cppn.py`` renders an
elite at any resolution from there. The CPPN's weights use --mutation_rate and
--mutation_eta (polynomial mutation in [-10, 10]).
"""

from fooljax.runs import fooling
from fooljax.runs.cli import run_main

fooling.define_flags(default_workdir="runs/mnist_cppn", encoding="cppn")

if __name__ == "__main__":
    run_main(fooling.main)
