"""The layers of STYLE.md / BUILD_NOTES.md "Layers", checked on the source:
every import edge (function-local ones included) points down, there is no
import circle, and function-local imports are only for heavy optional
dependencies."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What each part may import of fooljax (errors and checks are leaves that
# everyone may use; checks: input validation shared by the layers).
LEAVES = {"fooljax.errors", "fooljax.checks"}
ALLOWED = {
    "fooljax.errors": set(),
    "fooljax.checks": {"fooljax.errors"},
    "fooljax.io": {"fooljax.errors"},
    "fooljax.data": {"fooljax.errors", "fooljax.io"},
    "fooljax.models": {"fooljax.errors", "fooljax.io", "fooljax.data"},
    "fooljax.encodings": {"fooljax.errors"},
    "fooljax.evolution": {"fooljax.errors", "fooljax.encodings"},
    "fooljax.attacks": {"fooljax.errors", "fooljax.encodings", "fooljax.evolution"},
    "fooljax.train": {
        "fooljax.errors",
        "fooljax.io",
        "fooljax.data",
        "fooljax.models",
        "fooljax.encodings",
        "fooljax.evolution",
        "fooljax.attacks",
    },
}
# Heavy optional dependencies, and heavy ones few entry points use (scipy:
# L-BFGS only, ~0.3 s of every start-up): the only imports allowed inside
# functions.
LAZY_OK = {
    "scipy",
    "h5py",
    "tflite",
    "torch",
    "ai_edge_litert",
    "tensorflow",
    "tensorflow_datasets",
    "tf_keras",
    "art",
    # matplotlib: pictures other than the MAP-Elites curves (io.plot, PIL);
    # evosax: CMA-ES users only
    "matplotlib",
    # orbax: checkpoints, imported on a thread while a run's first chunk computes
    "orbax",
    "evosax",
}


def _sources():
    for top in ("fooljax", "experiments", "scripts"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


MODULES = {_module_name(p): p for p in _sources()}


def _resolve(name):
    """The most specific known module a dotted import names."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(path):
    """``[(imported name, lineno, function-local)]`` of one file."""
    tree = ast.parse(open(path).read(), path)
    module = _module_name(path)
    is_pkg = path.endswith("__init__.py")
    out = []

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, local) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = module if is_pkg else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in child.names:
                    full = f"{base}.{a.name}"
                    out.append((full if full in MODULES else base, child.lineno, local))
            visit(child, inner)

    visit(tree, False)
    return out


EDGES = {
    m: [(n, line, local) for n, line, local in _imports(p)] for m, p in MODULES.items()
}


def _part(module):
    for p in ALLOWED:
        if module == p or module.startswith(p + "."):
            return p
    return module


def test_every_edge_points_down():
    bad = []
    for m, edges in EDGES.items():
        for name, line, _ in edges:
            target = _resolve(name)
            if not target:
                continue  # third party
            src, dst = _part(m), _part(target)
            if m.startswith("experiments."):
                ok = target.startswith("fooljax.runs")
            elif m.startswith("scripts."):
                ok = target.startswith("fooljax")
            elif m == "fooljax" or m.startswith("fooljax.runs"):
                ok = target.startswith("fooljax")
            elif src in ALLOWED:
                ok = dst == src or dst in ALLOWED[src] or dst in LEAVES
            else:
                ok = False
            if not ok:
                bad.append(f"{MODULES[m]}:{line}: {m} -> {target}")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_experiments_import_only_runs_and_absl():
    bad = []
    for m, edges in EDGES.items():
        if not m.startswith("experiments."):
            continue
        for name, line, _ in edges:
            top = name.split(".")[0]
            if not (name.startswith("fooljax.runs") or top == "absl"):
                bad.append(f"{m}:{line}: {name}")
    assert not bad, bad


def test_no_import_circle():
    graph = {
        m: {_resolve(n) for n, _, _ in edges} - {"", m} for m, edges in EDGES.items()
    }
    # ``import fooljax.a.b`` runs the package ``fooljax.a`` first, but a module
    # naming its own package's __init__ (``from fooljax.models import X`` inside
    # fooljax/models/x.py) is a circle, and is in the graph.
    state, stack, cycles = {}, [], []

    def dfs(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v) :] + [v])
            elif v not in state:
                dfs(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_function_local_imports_only_for_heavy_optional_dependencies():
    bad = [
        f"{MODULES[m]}:{line}: {name}"
        for m, edges in EDGES.items()
        for name, line, local in edges
        if local and name.split(".")[0] not in LAZY_OK
    ]
    assert not bad, "function-local imports:\n" + "\n".join(bad)


def test_scripts_do_not_touch_sys_path():
    for m, p in MODULES.items():
        if m.startswith("scripts."):
            assert "sys.path" not in open(p).read(), p


@pytest.mark.parametrize("package", ["fooljax.attacks", "fooljax.evolution"])
def test_algorithm_packages_import_no_orbax_or_matplotlib(package):
    code = (
        f"import sys, {package}; "
        "bad = [m for m in ('orbax', 'matplotlib', 'fooljax.models', 'fooljax.io', "
        "'fooljax.data', 'fooljax.train', 'fooljax.runs') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
