"""``models.split_batch``: a model's batch split over local devices gives the
same logits (padding dropped), compiles once per shape, and is the function
itself on one device."""

import json
import os
import subprocess
import sys
import textwrap

import jax

from fooljax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_one_device_is_the_function_itself():
    def logits_fn(p, x):
        return x

    assert models.split_batch(logits_fn, jax.local_devices()[:1]) is logits_fn


def test_split_over_four_devices_equals_one_call():
    code = textwrap.dedent(
        """
        import json, jax, jax.numpy as jnp, numpy as np
        from fooljax import models
        from tests.compile_count import count_compiles
        assert jax.local_device_count() == 4
        spec = models.get_spec("cifar_lenet")
        params = models.init_params(spec)
        logits_fn = spec.build().apply
        whole = jax.jit(logits_fn)
        split = jax.jit(models.split_batch(logits_fn))
        out = []
        for b in (8, 10, 3):  # divides, pads 2, fewer rows than devices
            x = jax.random.uniform(jax.random.key(b), (b, 32, 32, 3))
            a, s = np.asarray(whole(params, x)), np.asarray(split(params, x))
            out.append([list(s.shape), float(np.abs(a - s).max())])
        x = jax.random.uniform(jax.random.key(0), (10, 32, 32, 3)) + 1.0
        with count_compiles() as c:  # same shape as the b=10 call: no compile
            split(params, x).block_until_ready()
        out.append(c.count)
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    *rows, recompiles = json.loads(r.stdout.strip().splitlines()[-1])
    assert [s for s, _ in rows] == [[8, 10], [10, 10], [3, 10]]
    assert all(d <= 1e-5 for _, d in rows), rows
    assert recompiles == 0
