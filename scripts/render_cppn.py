"""Renders CPPN elites of a finished (or running) run at any resolution.

  python scripts/render_cppn.py --workdir=runs/mnist_cppn --size=1024 \
      [--classes=0,7] [--out_dir=DIR]

Reads ``WORKDIR/config.json`` (the encoding options) and the latest orbax
checkpoint under ``WORKDIR/checkpoints/``, and writes one PNG per requested
class (default: all), ``class_<k>_<H>x<W>.png``, into --out_dir (default
``WORKDIR/render``). The CPPN is a function of continuous coordinates, so the
same genome the classifier saw at 28x28 draws the same pattern at 1024x1024.
Last output line: JSON with the written paths.
"""

import json
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import flags

from fooljax import models
from fooljax.encodings import cppn
from fooljax.errors import FooljaxError, WorkdirError
from fooljax.io.images import save_png
from fooljax.runs.cli import print_json_line, run_main

flags.DEFINE_string("workdir", None, "Work directory of a CPPN run.")
flags.DEFINE_integer("size", 1024, "Output height and width in pixels.")
flags.DEFINE_integer("height", None, "Output height (overrides --size).")
flags.DEFINE_integer("width", None, "Output width (overrides --size).")
flags.DEFINE_list("classes", None, "Class indices to render (default: all).")
flags.DEFINE_string("out_dir", None, "Where to write (default WORKDIR/render).")
FLAGS = flags.FLAGS


def load_elites(workdir: str):
    """``(genomes, fitness, config, encoding_extra)`` of a run's latest checkpoint;
    ``genomes`` is a ``cppn.Genome`` with leaves ``[K, ...]``."""
    cfg_path = os.path.join(workdir, "config.json")
    if not os.path.exists(cfg_path):
        raise WorkdirError(f"{cfg_path} not found: is {workdir} a run directory?")
    with open(cfg_path) as f:
        config = json.load(f)
    if config.get("encoding") != "cppn":
        raise FooljaxError(
            f"{workdir} is a '{config.get('encoding')}' run, not a CPPN run"
        )
    shape = config.get("image_shape")
    if not shape:
        shape = models.get_spec(config["model"]).input_shape
    options = {k: v for k, v in config.get("encoding_options", [])}
    _, extra = cppn.make_encoding(tuple(shape), **options)

    ckpt_dir = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(ckpt_dir):
        raise WorkdirError(f"no checkpoints in {workdir}")
    mngr = ocp.CheckpointManager(ckpt_dir)
    step = mngr.latest_step()
    if step is None:
        raise WorkdirError(f"no checkpoints in {ckpt_dir}")
    try:
        state = mngr.restore(step, args=ocp.args.StandardRestore())
    except Exception as e:  # orbax raises many types for corrupt files
        raise WorkdirError(
            f"checkpoint {step} in {ckpt_dir} cannot be read ({type(e).__name__})"
        ) from None
    finally:
        mngr.close()
    archive = state["archive"]
    genomes = cppn.Genome(**{k: np.asarray(v) for k, v in archive["genomes"].items()})
    return genomes, np.asarray(archive["fitness"]), config, extra, step


def main(argv):
    if not FLAGS.workdir:
        raise FooljaxError("--workdir is required")
    height = FLAGS.height if FLAGS.height is not None else FLAGS.size
    width = FLAGS.width if FLAGS.width is not None else FLAGS.size
    if height <= 0 or width <= 0:
        raise FooljaxError(f"render size must be positive, got {height}x{width}")
    genomes, fitness, _, extra, step = load_elites(FLAGS.workdir)
    k_all = fitness.shape[0]
    try:
        classes = [int(c) for c in FLAGS.classes] if FLAGS.classes else range(k_all)
    except ValueError:
        raise FooljaxError("--classes must be integers") from None
    bad = [c for c in classes if not 0 <= c < k_all]
    if bad:
        raise FooljaxError(f"classes {bad} out of range (the run has {k_all})")
    out_dir = FLAGS.out_dir or os.path.join(FLAGS.workdir, "render")
    os.makedirs(out_dir, exist_ok=True)
    render = jax.jit(extra["render_fn"], static_argnums=(1, 2))
    paths = []
    for k in classes:
        if not np.isfinite(fitness[k]):
            print(f"class {k}: empty cell, skipped", file=sys.stderr)
            continue
        g = jax.tree_util.tree_map(lambda a, k=k: a[k], genomes)
        img = np.asarray(render(g, height, width))
        path = os.path.join(out_dir, f"class_{k}_{height}x{width}.png")
        save_png(path, img)
        paths.append(path)
        print(f"class {k} (p={np.exp(fitness[k]):.6f}): {path}", flush=True)
    print_json_line(
        {"checkpoint": step, "height": height, "width": width, "paths": paths}
    )


if __name__ == "__main__":
    run_main(main)
