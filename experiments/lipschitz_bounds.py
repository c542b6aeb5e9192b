"""Szegedy et al. (ICLR 2014) Table 5: instability bounds, the upper Lipschitz
constant of every layer and their product, beside L-BFGS's smallest distortion.

  python -m experiments.lipschitz_bounds --model=lenet \
      --weights=$FOOLJAX_DATA/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=unit --workdir=runs/lipschitz_caffe_lenet
  python -m experiments.lipschitz_bounds \
      --flagfile=experiments/configs/lipschitz_bounds.flags --workdir=runs/lipschitz

Operator norms of convolutions and fully-connected layers by power iteration
on each layer's linear map at the input shape it sees (jax.linearize +
jax.linear_transpose), batch norm as a diagonal layer, 1 for ReLU and
non-overlapping max-pooling, residual blocks as 1 + prod(branch). Writes
summary.json (``layers`` [{name, kind, bound}] in network order, ``product``,
``lbfgs``, ``paper``; ``networks[name]`` with ``--model=all``) and
lipschitz_bounds.png. Runtime and expected numbers in
``configs/lipschitz_bounds.flags``.
"""

from fooljax.runs import lipschitz
from fooljax.runs.cli import run_main

lipschitz.define_flags()

if __name__ == "__main__":
    run_main(lipschitz.main)
