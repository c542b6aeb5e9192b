#!/bin/bash
# The MNIST transfer matrix of BUILD_NOTES.md (Nguyen et al. 2015 §3.5): 3 LeNets
# (embedded = seed 0, seed 1 trained here, the paper's Caffe LeNet) x {direct, cppn},
# 5 runs per source. Usage: scripts/transfer_matrix.sh [OUT_DIR]  (~25 min on 2 cores)
set -e
: "${FOOLJAX_DATA:?set FOOLJAX_DATA to the folder with mnist/ and lenet-mnist-caffe-fooling/}"
C=$FOOLJAX_DATA/lenet-mnist-caffe-fooling
R=${1:-runs/transfer_matrix}
mkdir -p $R
[ -f $R/lenet_seed1/summary.json ] || python -m experiments.train_classifier --flagfile=experiments/configs/lenet_mnist.flags --seed=1 --workdir=$R/lenet_seed1
for enc in direct cppn; do
  F=experiments/configs/mnist_$enc.flags
  [ -f $R/${enc}_lenet0/summary.json ] || python -m experiments.mnist_$enc --flagfile=$F --num_runs=5 --generations=500 --workdir=$R/${enc}_lenet0
  [ -f $R/${enc}_lenet1/summary.json ] || python -m experiments.mnist_$enc --flagfile=$F --num_runs=5 --generations=500 --weights=$R/lenet_seed1 --workdir=$R/${enc}_lenet1
  [ -f $R/${enc}_caffe/summary.json ] || python -m experiments.mnist_$enc --flagfile=$F --num_runs=5 --generations=500 --weights=$C/lenet_iter_10000 --preprocess=unit --workdir=$R/${enc}_caffe
done
S=$(ls -d $R/direct_* $R/cppn_* | paste -sd,)
python -m experiments.transfer --sources=$S --models=lenet:default,lenet:$R/lenet_seed1,lenet:$C/lenet_iter_10000:unit --workdir=$R/transfer --overwrite
