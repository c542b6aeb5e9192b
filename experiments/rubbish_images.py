"""Rubbish-class examples (Goodfellow et al., ICLR 2015, appendix): Gaussian
noise pushed by a targeted gradient-sign step toward a chosen class.

  python -m experiments.rubbish_images \
      --flagfile=experiments/configs/rubbish_images.flags --workdir=runs/rubbish

For each model (softmax regression, maxout, LeNet from the zoo; ``--zoo_dir``)
the fraction of noise images whose target class gets >= 0.5 (the paper's
Fig. 8 criterion) and the mean confidences: unperturbed noise, one targeted
FGSM step and targeted PGD in the same epsilon ball. Writes summary.json
(``models[name][noise|fgsm|pgd]``), rubbish_grid.png (images titled
``class: confidence``) and rubbish_fooled.png. Runtime and our numbers in
``configs/rubbish_images.flags``.
"""

from fooljax.runs import goodfellow_extras
from fooljax.runs.cli import run_main

goodfellow_extras.define_flags(goodfellow_extras.RubbishConfig)

if __name__ == "__main__":
    run_main(goodfellow_extras.make_main(goodfellow_extras.RubbishConfig))
