import os

import pytest


@pytest.fixture(scope="session")
def data_root():
    """``$FOOLJAX_DATA`` (the real datasets/weights), or skip with the reason."""
    root = os.environ.get("FOOLJAX_DATA")
    if not root:
        pytest.skip("FOOLJAX_DATA is unset: real data/weights tests need it")
    if not os.path.isdir(root):
        pytest.fail(f"FOOLJAX_DATA={root} is not a directory")
    return root


@pytest.fixture(scope="session")
def mnist_test(data_root):
    from fooljax.data import load_mnist

    return load_mnist("test", os.path.join(data_root, "mnist"))


@pytest.fixture(scope="session")
def caffe_lenet_path(data_root):
    return os.path.join(data_root, "lenet-mnist-caffe-fooling", "lenet_iter_10000")


@pytest.fixture(scope="session")
def caffe_mean_path(data_root):
    return os.path.join(
        data_root, "lenet-mnist-caffe-fooling", "mnist_mean.binaryproto"
    )
