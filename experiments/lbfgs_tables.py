"""Szegedy et al. (ICLR 2014) Tables 1 and 2 on MNIST with box-constrained
L-BFGS-B adversarial examples (``fooljax.attacks.lbfgs``).

  python -m experiments.lbfgs_tables \
      --flagfile=experiments/configs/lbfgs_tables.flags --workdir=runs/lbfgs_tables

Table 1: test error, mean minimal distortion sqrt(sum (x'-x)^2 / n), success rate
per model on the first ``--num_images`` test images (random target label != true
label). Table 2: error caused on each column model by each row model's examples
and by Gaussian noise. Expected: success 1.0 for every model, mean distortion
0.072 / 0.093 / 0.151 / 0.041 / 0.046 / 0.045 (paper 0.062 / 0.1 / 0.14 / 0.058 /
0.065 / 0.086); about 25 minutes on a loaded 2-core CPU (BUILD_NOTES.md). Writes summary.json
(``table1``, ``table2``), lbfgs_examples.png, one ``lbfgs_<model>.npz`` per
model and its examples as ``artifact_<model>.npz`` (``artifact.npz`` for one
model; a source for experiments.transfer as ``DIR:<model>``).
"""

from fooljax.runs import gradient
from fooljax.runs.cli import run_main

gradient.define_flags(gradient.LbfgsTablesConfig)

if __name__ == "__main__":
    run_main(gradient.make_main(gradient.LbfgsTablesConfig))
