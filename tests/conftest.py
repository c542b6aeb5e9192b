import os
import tempfile

import pytest

# Many tests (and the CLI subprocesses they start, which inherit the
# environment) compile the same programs: share them through JAX's persistent
# compilation cache. Entries are keyed by the program and the jax/XLA versions,
# so a hit is the same executable a fresh compile would produce.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(tempfile.gettempdir(), "fooljax-tests-jax-cache"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


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
