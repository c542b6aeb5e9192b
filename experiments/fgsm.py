"""FGSM on MNIST (Goodfellow et al., ICLR 2015, Sec. 4): error rate and mean
confidence at epsilon = 0.25 for softmax regression and deeper nets, and the
error-vs-epsilon curve.

  python -m experiments.fgsm --flagfile=experiments/configs/fgsm.flags \
      --workdir=runs/fgsm

Models come from the zoo (``fooljax.train.zoo``; trained on first use into
``--zoo_dir``, about 3 minutes for the maxout net on 2 CPU cores). Expected
(10,000 test images): softmax regression error 1.000 / mean confidence 0.846
(paper 0.999 / 0.793), maxout 0.979, LeNet 0.908 (BUILD_NOTES.md); about 1
minute on the 2-core CPU once the zoo is trained (8 with the training). The
whole epsilon curve is one vmapped FGSM call per batch. Writes summary.json
(``epsilon``, ``models: {name: {error, mean_confidence, ...}}``),
fgsm_error_vs_epsilon.png, fgsm_examples.png, and the FGSM(``--epsilon``)
images of each model as ``artifact_<name>.npz`` (``artifact.npz`` for one
model; a source for experiments.transfer as ``DIR:<name>``).
"""

from fooljax.runs import gradient
from fooljax.runs.cli import run_main

gradient.define_flags(gradient.FgsmConfig)

if __name__ == "__main__":
    run_main(gradient.make_main(gradient.FgsmConfig))
