"""FGSM on CIFAR-10 conv nets at epsilon = 0.1 (Goodfellow et al., ICLR 2015,
Sec. 4: 87.15 % error on the paper's maxout conv net).

  python -m experiments.cifar_fgsm --flagfile=experiments/configs/cifar_fgsm.flags \
      --workdir=runs/cifar_fgsm

Attacks the Keras ``cifar_lenet`` and ``cifar_resnet32`` (weights in
``$FOOLJAX_DATA/cifar10-keras-one-pixel``) and, with
``--models=...,allconv=cifar_allconv:runs/allconv/params.npz``, the All-conv
net trained by ``experiments.train_classifier`` (allconv_cifar10.flags). Epsilon
is in [0, 1] pixel units (the Keras nets standardise 0..255 inside). Writes
summary.json (per model: clean accuracy, FGSM error, mean confidence on the
misclassified, the error curve, the paper's 0.8715),
cifar_fgsm_error_vs_epsilon.png, cifar_fgsm_examples.png and
artifact_<model>.npz. Runtime and measured numbers in configs/cifar_fgsm.flags.
"""

from fooljax.runs import cifar_fgsm
from fooljax.runs.cli import run_main

cifar_fgsm.define_flags()

if __name__ == "__main__":
    run_main(cifar_fgsm.main)
