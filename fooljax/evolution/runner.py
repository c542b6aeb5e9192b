"""The host loop shared by every evolution experiment.

It only logs, checkpoints and writes pictures; the generations themselves run in
compiled ``lax.scan`` chunks (``map_elites.make_run_chunk``). A run lives in its
work directory:

- ``config.json``: the settings (a run with other settings is refused).
- ``metrics.jsonl``: one line per log step (generation, elite min/median/max
  probability, classes >= 0.99 / 0.9999, generations/s, evaluations/s).
- ``checkpoints/``: orbax, atomic, every ``checkpoint_every`` generations; a
  restarted run resumes from the latest one and is bit-identical to an
  uninterrupted run (keys are ``fold_in(key, generation)``, chunks do not change
  the computation).
- at the end: ``archive.png``, ``classes/*.png``, ``confidence.png`` and, last,
  ``summary.json`` (its presence marks the run finished).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from fooljax.evolution import map_elites as me
from fooljax.io import images as imageio
from fooljax.io.checkpoint import Checkpointer
from fooljax.io.workdir import SUMMARY, append_jsonl, atomic_write_json, prepare_workdir

log = logging.getLogger("fooljax")

METRICS = "metrics.jsonl"


def _read_metrics(path: str, up_to_generation: int | None = None) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a crash
            if up_to_generation is not None and row["generation"] > up_to_generation:
                break
            rows.append(row)
    return rows


def _rewrite_metrics(path: str, rows: list[dict]) -> None:
    from fooljax.io.workdir import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def default_mesh(population: int, num_devices: int = 0):
    """A 1-D mesh over local devices for sharding the population (``None`` for 1).

    ``num_devices=0``: as many devices as evenly divide ``population``.
    """
    devices = jax.local_devices()
    n = num_devices or len(devices)
    n = min(n, len(devices))
    while n > 1 and population % n:
        n -= 1
    if n <= 1:
        return None
    return jax.sharding.Mesh(np.array(devices[:n]), ("pop",))


def run_map_elites(
    *,
    workdir: str,
    config: dict,
    log_probs_fn: Callable,
    params: Any,
    encoding: me.Encoding,
    num_classes: int,
    population: int,
    num_generations: int,
    seed: int,
    class_names: list[str] | None = None,
    checkpoint_every: int = 250,
    log_every: int = 50,
    overwrite: bool = False,
    mesh=None,
    eval_batch: int = 50,
    t_start: float | None = None,
    max_grid: int = 100,
    summary_extra: dict | None = None,
    on_finish: Callable[[me.MapElitesState, str], None] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Runs (or resumes) MAP-Elites in ``workdir``; returns the summary dict.

    ``stop_after``: stop (without finishing) once this many generations are done;
    for tests that interrupt a run.
    """
    t_start = time.time() if t_start is None else t_start
    resume = prepare_workdir(workdir, config, overwrite=overwrite)
    metrics_path = os.path.join(workdir, METRICS)
    class_names = class_names or [str(i) for i in range(num_classes)]

    layout = me.make_layout(population, mesh, eval_batch)
    init = me.make_init(
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        num_classes=num_classes,
        population=population,
        layout=layout,
    )
    run_chunk = me.make_run_chunk(
        log_probs_fn=log_probs_fn,
        encoding=encoding,
        population=population,
        layout=layout,
    )
    key = jax.random.key(seed)
    state = init(key, params)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    latest = ckpt.latest_step() if resume else None
    if latest is not None:
        state = ckpt.restore(latest, state)
        rows = _read_metrics(metrics_path, latest)
        _rewrite_metrics(metrics_path, rows)
        log.info("resumed %s at generation %d", workdir, latest)
    else:
        if os.path.exists(metrics_path):
            os.remove(metrics_path)
        ckpt.save(0, state)
    generation = int(state.generation)
    log.info(
        "MAP-Elites: %d classes, population %d, %d generations, %d device(s) -> %s",
        num_classes,
        population,
        num_generations,
        1 if layout.mesh is None else layout.mesh.size,
        workdir,
    )
    while generation < num_generations:
        if stop_after is not None and generation >= stop_after:
            ckpt.close()
            return {"stopped_at": generation}
        n = min(log_every, num_generations - generation)
        t0 = time.perf_counter()
        state, m = run_chunk(state, params, n)
        m = jax.device_get(m)
        dt = time.perf_counter() - t0
        generation = int(state.generation)
        row = {
            "generation": generation,
            "min": float(m["min"][-1]),
            "median": float(m["median"][-1]),
            "max": float(m["max"][-1]),
            "num_at_least_0.99": int(m["num_at_least_0.99"][-1]),
            "num_at_least_0.9999": int(m["num_at_least_0.9999"][-1]),
            "generations_per_second": n / dt,
            "evaluations_per_second": n * population / dt,
        }
        append_jsonl(metrics_path, row)
        log.info(
            "gen %d/%d: elite conf min %.4f median %.4f max %.6f, >=0.99: %d, "
            ">=0.9999: %d (%.1f gen/s, %.0f eval/s)",
            generation,
            num_generations,
            row["min"],
            row["median"],
            row["max"],
            row["num_at_least_0.99"],
            row["num_at_least_0.9999"],
            row["generations_per_second"],
            row["evaluations_per_second"],
        )
        if generation % checkpoint_every == 0 or generation == num_generations:
            ckpt.save(generation, state)
    ckpt.close()
    return _finish(
        state,
        workdir=workdir,
        config=config,
        encoding=encoding,
        class_names=class_names,
        seed=seed,
        t_start=t_start,
        max_grid=max_grid,
        summary_extra=summary_extra or {},
        on_finish=on_finish,
        layout=layout,
    )


def _write_archive_page(workdir, class_names, conf, found_at) -> None:
    """``archive.html``: every class's elite, most confident first (for 1000
    classes, where one grid picture would be unreadable)."""
    import html

    from fooljax.io.workdir import atomic_write_text

    order = np.argsort(-np.asarray(conf), kind="stable")
    rows = []
    for k in order:
        name = class_names[k]
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
        rows.append(
            f'<figure><img src="classes/{k:04d}_{safe}.png" width="112" '
            f'loading="lazy"><figcaption>{k}: {html.escape(name)}<br>'
            f"{100 * conf[k]:.3f}% (gen {int(found_at[k])})</figcaption></figure>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>fooljax archive</title>"
        "<style>figure{display:inline-block;margin:4px;width:120px;"
        "font:11px sans-serif;text-align:center}</style>"
        f"<h3>{len(conf)} classes, median confidence "
        f"{100 * float(np.median(conf)):.2f}%, "
        f"{int(np.sum(np.asarray(conf) >= 0.99))} classes &ge; 99%</h3>" + "".join(rows)
    )
    atomic_write_text(os.path.join(workdir, "archive.html"), page)


def _finish(
    state,
    *,
    workdir,
    config,
    encoding,
    class_names,
    seed,
    t_start,
    max_grid,
    summary_extra,
    on_finish,
    layout,
) -> dict:
    archive = jax.device_get(state.archive)
    fitness = np.asarray(archive.fitness)
    conf = np.where(np.isfinite(fitness), np.exp(fitness), 0.0)
    imgs = np.asarray(jax.jit(jax.vmap(encoding.decode))(state.archive.genomes))
    classes_dir = os.path.join(workdir, "classes")
    os.makedirs(classes_dir, exist_ok=True)
    for k, name in enumerate(class_names):
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
        imageio.save_png(
            os.path.join(classes_dir, f"{k:04d}_{safe}.png"), imgs[k], min_size=112
        )
    k_all = len(class_names)
    shown = np.arange(k_all)
    if k_all > max_grid:  # evenly spaced sample; every class has its own PNG
        shown = np.linspace(0, k_all - 1, max_grid).round().astype(int)
    titles = [f"{class_names[k][:17]}\n{100 * conf[k]:.5f}%" for k in shown]
    imageio.save_grid(
        os.path.join(workdir, "archive.png"),
        imgs[shown],
        titles,
        ncols=5 if len(shown) <= 10 else 10,
        suptitle=f"elites after {int(state.generation)} generations",
    )
    if k_all > max_grid:
        _write_archive_page(workdir, class_names, conf, archive.found_at)
    rows = _read_metrics(os.path.join(workdir, METRICS))
    if rows:
        gens = [r["generation"] for r in rows]
        imageio.save_curves(
            os.path.join(workdir, "confidence.png"),
            gens,
            {s: [r[s] for r in rows] for s in ("min", "median", "max")},
            xlabel="generation",
            ylabel="elite confidence",
            title="MAP-Elites elite confidence over classes",
        )
    first = [int(g) for g in np.asarray(state.first_all)]
    summary = {
        "confidence": [float(c) for c in conf],
        "class_names": list(class_names),
        "found_at_generation": [int(g) for g in np.asarray(archive.found_at)],
        "generations": int(state.generation),
        "median_confidence": float(np.median(conf)),
        "num_classes_at_least": {
            str(t): int(np.sum(conf >= t)) for t in (0.9, 0.99, 0.9999)
        },
        "first_generation_all_at_least": {
            str(t): (g if g >= 0 else None)
            for t, g in zip(me.THRESHOLDS, first, strict=True)
        },
        "wall_seconds": time.time() - t_start,
        "model": config.get("model"),
        "seed": seed,
        "flags": config,
        "backend": jax.default_backend(),
        "num_devices": 1 if layout.mesh is None else layout.mesh.size,
        "eval_batch": layout.eval_batch,
        **summary_extra,
    }
    if on_finish is not None:
        on_finish(state, workdir)
    atomic_write_json(os.path.join(workdir, SUMMARY), summary)
    log.info(
        "done: %d generations, median confidence %.6f, %d/%d classes >= 0.9999, "
        "%.1f s; results in %s",
        summary["generations"],
        summary["median_confidence"],
        summary["num_classes_at_least"]["0.9999"],
        len(conf),
        summary["wall_seconds"],
        workdir,
    )
    return summary
