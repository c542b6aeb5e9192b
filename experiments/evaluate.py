"""Evaluate a classifier on a labelled dataset; the last output line is JSON.

  python -m experiments.evaluate --model=lenet --weights=default \
      --data_dir=../shared/data/mnist
  python -m experiments.evaluate --model=lenet \
      --weights=../shared/data/lenet-mnist-caffe-fooling/lenet_iter_10000 \
      --preprocess=caffe_deploy \
      --mean_file=../shared/data/lenet-mnist-caffe-fooling/mnist_mean.binaryproto \
      --data_dir=../shared/data/mnist

``--weights``: ``default`` (embedded), a checkpoint/work directory, a ``.npz`` of
params, or a foreign weights file (``.caffemodel``, ...) detected from content.
Expected: accuracy 0.9936 (default), 0.9918 (unit), 0.9739 (caffe_deploy).
"""

from fooljax.runs import train
from fooljax.runs.cli import run_main

train.define_evaluate_flags()

if __name__ == "__main__":
    run_main(train.evaluate_main)
