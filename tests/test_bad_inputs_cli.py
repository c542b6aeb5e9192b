"""A corpus of bad command lines over every entry point in ``experiments/``.

Each case must end with a non-zero exit, no traceback, ONE line on stderr that
names the culprit (a regex per case), and no change to any file that existed
before. The cases of one entry point run in one process (``tests.cli_harness``
resets the flags between them), so the corpus stays fast.
"""

import hashlib
import os
import re

import numpy as np
import pytest

from fooljax import models
from tests.cli_harness import run_in_subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    f = {"dir": str(d)}
    rng = np.random.default_rng(0)  # garbage, but the same every run
    f["regular"] = str(d / "a_file")
    open(f["regular"], "w").write("not a directory\n")
    finished = d / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text("{}\n")
    (finished / "config.json").write_text("{}\n")
    f["finished"] = str(finished)
    f["garbage_npz"] = str(d / "garbage.npz")
    open(f["garbage_npz"], "wb").write(b"PK\x03\x04" + rng.bytes(200))
    _, params = models.load_pretrained("lenet_mnist")
    good = str(d / "good.npz")
    models.save_params_npz(good, params)
    f["truncated_npz"] = str(d / "truncated.npz")
    open(f["truncated_npz"], "wb").write(open(good, "rb").read()[:5000])
    flat = models.flatten_params(params)
    last = sorted(flat)[-1]
    flat[last] = flat[last] * np.nan
    f["nan_npz"] = str(d / "nan.npz")
    np.savez(f["nan_npz"], **flat)
    f["latin1_flags"] = str(d / "latin1.flags")
    open(f["latin1_flags"], "wb").write("--model=l\xe9net\n".encode("latin-1"))
    f["garbage_h5"] = str(d / "garbage.h5")
    open(f["garbage_h5"], "wb").write(b"\x89HDF\r\n\x1a\n" + rng.bytes(300))
    f["garbage_proto"] = str(d / "mean.binaryproto")
    open(f["garbage_proto"], "wb").write(rng.bytes(64))
    os.remove(good)
    return f


def _snapshot(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


class _data(tuple):
    """A case that gets past the data loading: skipped, like every data test,
    when ``FOOLJAX_DATA`` is unset (a clone without ../shared/data)."""

    def __new__(cls, args, pattern):
        return super().__new__(cls, (args, pattern))


W = "--workdir={dir}/w"  # a fresh work directory: it must stay unmade or empty
FOOLING = [
    (["--population=1", W], r"population"),
    (["--population=abc", W], r"--population"),
    (["--generations=0", W], r"generations"),
    (["--mutation_rate=1.5", W], r"mutation_rate"),
    (["--mutation_rate=nan", W], r"mutation_rate"),
    (["--mutation_eta=-1", W], r"mutation_eta"),
    (["--crossover_eta=nan", W], r"crossover_eta"),
    (["--crossover_rate=inf", W], r"crossover_rate"),
    (["--eval_batch=0", W], r"eval_batch"),
    (["--log_every=0", W], r"log_every"),
    (["--checkpoint_every=-5", W], r"checkpoint_every"),
    (["--num_devices=-1", W], r"num_devices"),
    (["--mutation_halving=-2", W], r"mutation_halving"),
    (["--image_shape=28,28", W], r"image_shape"),
    (["--image_shape=a,b,c", W], r"image_shape"),
    (["--image_shape=28,0,1", W], r"image_shape"),
    (["--encoding=bogus", W], r"bogus"),
    (["--model=nonexistent_net", W], r"nonexistent_net"),
    (["--weights=/nonexistent/lenet.npz", W], r"/nonexistent/lenet\.npz"),
    (["--weights={garbage_npz}", W], r"garbage\.npz"),
    (["--weights={truncated_npz}", W], r"truncated\.npz"),
    (["--weights={nan_npz}", W], r"nan\.npz.*NaN"),
    (["--weights=$FOOLJAX_UNSET_VARIABLE/x", W], r"FOOLJAX_UNSET_VARIABLE|unset"),
    (["--preprocess=bogus", W], r"bogus"),
    (["--mean_file=/nonexistent/mean.binaryproto", W], r"mean\.binaryproto"),
    (["--mean_file={garbage_proto}", W], r"mean\.binaryproto"),
    (["--ten_crop", W], r"ten_crop"),
    (["--workdir={regular}/sub"], r"a_file"),
    (["--workdir={finished}"], r"finished"),
    (["--flagfile={latin1_flags}", W], r"latin1\.flags.*UTF-8"),
    (["--flagfile=/nonexistent/x.flags", W], r"x\.flags"),
    (["--nosuchflag=1", W], r"nosuchflag"),
    (["--encoding=cppn", "--crossover_rate=0.5", W], r"crossover"),
    (["--encoding=cppn", "--mutation_halving=5", W], r"halving"),
    (["--encoding=cppn", "--cppn_max_nodes=2", W], r"max_nodes"),
    (["--encoding=cppn", "--cppn_max_edges=1", W], r"max_edges"),
    (["--encoding=cppn", "--cppn_activations=foo", W], r"foo"),
    (["--encoding=cppn", "--cppn_p_add_conn=2", W], r"p_add_conn"),
    (["--encoding=cppn", "--cppn_activation_rate=nan", W], r"activation_rate"),
    (["--cppn_coords=bogus", W], r"cppn_coords"),
]
ONE_PIXEL = [
    (["--pixels=0", W], r"pixel"),
    (["--population=3", W], r"population"),
    (["--max_generations=-1", W], r"max_generations"),
    (["--differential_weight=nan", W], r"differential_weight"),
    (["--differential_weight=0", W], r"differential_weight"),
    (["--crossover_rate=2", W], r"crossover_rate"),
    (["--early_stop=bogus", W], r"early_stop"),
    (["--batch_size=0", W], r"batch_size"),
    (["--num_images=0", W], r"num_images"),
    (["--eval_batch=-1", W], r"eval_batch"),
    (["--start_index=-1", W], r"start_index"),
    (["--compact_every=-1", W], r"compact_every"),
    (["--weights=init", "--dataset=bogus_set", W], r"bogus_set"),
    (["--weights=init", "--data_dir=/nonexistent/cifar", W], r"/nonexistent/cifar"),
    _data(["--model=lenet", "--weights=default", W], r"\(28, 28, 1\)|28, 28, 1"),
    (["--weights=/nonexistent/lenet.h5", W], r"lenet\.h5"),
    (["--weights={garbage_h5}", W], r"garbage\.h5"),
    (["--weights=init", "--pixels=5000", W], r"pixel count"),
    _data(["--weights=init", "--start_index=100000", W], r"start_index|no images"),
    ([], r"workdir"),
    _data(["--workdir={finished}", "--weights=init"], r"finished"),
    (["--targeted=maybe", W], r"targeted"),
]
FGSM = [
    (["--epsilon=1.5", W], r"epsilon"),
    (["--epsilon=nan", W], r"epsilon"),
    (["--epsilon=-0.1", W], r"epsilon"),
    (["--curve_epsilons=0,abc", W], r"curve_epsilons"),
    (["--curve_epsilons=0,2", W], r"epsilon"),
    (["--models=", W], r"models"),
    (["--models=softmax_regression=bogus_zoo", W], r"bogus_zoo"),
    (["--num_images=0", W], r"num_images"),
    (["--batch_size=0", W], r"batch_size"),
    (["--data_dir=/nonexistent/mnist", W], r"/nonexistent/mnist"),
    _data(["--workdir={finished}"], r"finished"),
]
LBFGS = [
    (["--num_search_steps=0", W], r"num_search_steps"),
    (["--max_iterations=0", W], r"max_iterations"),
    (["--initial_c=0", W], r"initial_c"),
    (["--initial_c=nan", W], r"initial_c"),
    (["--noise_stddevs=-0.1", W], r"noise_stddevs"),
    (["--noise_stddevs=abc", W], r"noise_stddevs"),
    (["--table2_columns=", W], r"models"),
    (["--models=bogus_zoo", W], r"bogus_zoo"),
]
ADVERSARIAL = [
    (["--epsilon=2", W], r"epsilon"),
    (["--model=bogus_zoo", W], r"bogus_zoo"),
    (["--batch_size=-3", W], r"batch_size"),
]
ASCENT = [
    (["--step_size=0", W], r"step_size"),
    (["--step_size=nan", W], r"step_size"),
    (["--num_steps=-1", W], r"num_steps"),
    (["--l2_decay=-1", W], r"l2_decay"),
    (["--init=bogus", W], r"init"),
    (["--model=bogus_net", W], r"bogus_net"),
    (["--weights={nan_npz}", W], r"nan\.npz.*NaN"),
]
TRAIN = [
    (["--epochs=0", W], r"epochs"),
    (["--batch_size=0", W], r"batch_size"),
    (["--learning_rate=nan", W], r"learning_rate"),
    (["--learning_rate=-1", W], r"learning_rate"),
    (["--optimizer=bogus", W], r"bogus"),
    (["--adv_alpha=2", W], r"adv_alpha"),
    (["--adv_epsilon=nan", W], r"adv_epsilon"),
    (["--weight_decay=-1", W], r"weight_decay"),
    (["--model=bogus_net", W], r"bogus_net"),
    (["--dataset=bogus_set", W], r"bogus_set"),
    (["--data_dir=/nonexistent/mnist", W], r"/nonexistent/mnist"),
]
EVALUATE = [
    (["--batch_size=0"], r"batch_size"),
    (["--model=bogus_net"], r"bogus_net"),
    (["--dataset=bogus_set"], r"bogus_set"),
    (["--data_dir=/nonexistent/mnist"], r"/nonexistent/mnist"),
    (["--weights={truncated_npz}"], r"truncated\.npz"),
    (["--weights={nan_npz}"], r"nan\.npz.*NaN"),
    _data(["--model=cifar_lenet", "--weights=init"], r"dataset images|32, 32, 3"),
    (["--preprocess=caffe_deploy", "--mean_file={garbage_proto}"], r"binaryproto"),
    (["--flagfile={latin1_flags}"], r"latin1\.flags"),
    (["extra_positional"], r"extra_positional"),
]
IMAGENET = [
    (["--weights=/nonexistent/mobilenet.tflite", W], r"mobilenet\.tflite"),
    (["--model=mobilenet_v2", "--weights={garbage_npz}", W], r"garbage\.npz"),
    (["--image_shape=256,256,1", "--weights=init", W], r"256, 256, 1|image"),
    (["--cppn_max_edges=1", "--weights=init", W], r"max_edges"),
]
RENDER = [
    ([], r"workdir"),
    (["--workdir=/nonexistent/run"], r"/nonexistent/run"),
    (["--workdir={finished}"], r"finished"),
    (["--workdir={finished}", "--size=0"], r"size"),
]
TRANSFER = [
    ([], r"workdir"),
    ([W], r"--sources"),
    (["--sources=/nonexistent/run", W], r"/nonexistent/run"),
    (["--sources={finished}", W], r"finished.*artifact"),
    (["--sources={regular}", W], r"a_file"),
    (["--sources={finished}", "--batch_size=0", W], r"batch_size"),
    (["--sources={finished}", "--models=", W], r"--models"),
]
RETRAIN = [
    (["--iterations=0", W], r"iterations"),
    (["--population=1", W], r"population"),
    (["--measure_runs=0", W], r"measure_runs"),
    (["--num_train_examples=-1", W], r"num_train_examples"),
    (["--learning_rate=nan", W], r"learning_rate"),
    (["--train_from=bogus", W], r"train_from"),
    (["--dataset=bogus", W], r"dataset"),
    (["--model=nonexistent_net", W], r"nonexistent_net"),
    (["--weights=/nonexistent/x.npz", W], r"x\.npz"),
    (["--model=mobilenet_v1_025", "--weights=init", W], r"num_classes field"),
    (["--data_dir=/nonexistent/mnist", W], r"/nonexistent/mnist"),
    (["--encoding=cppn", "--cppn_max_nodes=2", W], r"max_nodes"),
    _data(["--dataset=cifar10", W], r"takes"),
    _data(["--workdir={finished}"], r"finished"),
]

ENTRY_POINTS = {
    "mnist_direct": ("fooling.main", FOOLING),
    "one_pixel": ("one_pixel.main", ONE_PIXEL),
    "fgsm": ("gradient.make_main(gradient.FgsmConfig)", FGSM),
    "lbfgs_tables": ("gradient.make_main(gradient.LbfgsTablesConfig)", LBFGS),
    "adversarial_training": (
        "gradient.make_main(gradient.AdversarialTrainingConfig)",
        ADVERSARIAL,
    ),
    "gradient_ascent": ("gradient.make_main(gradient.GradientAscentConfig)", ASCENT),
    "train_classifier": ("train.train_main", TRAIN),
    "evaluate": ("train.evaluate_main", EVALUATE),
    "imagenet_cppn": ("fooling.main", IMAGENET),
    "scripts.render_cppn": ("m.main", RENDER),
    "transfer": ("transfer.main", TRANSFER),
    "fooling_retrain": ("m.retrain.main", RETRAIN),
}


def test_corpus_has_at_least_100_cases():
    assert sum(len(c) for _, c in ENTRY_POINTS.values()) >= 100


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_bad_command_lines(name, files, tmp_path):
    main_expr, cases = ENTRY_POINTS[name]
    if not os.environ.get("FOOLJAX_DATA"):
        cases = [c for c in cases if not isinstance(c, _data)]
    argvs = [
        [a.replace("{dir}/w", f"{{dir}}/{name}_w{i}").format(**files) for a in args]
        for i, (args, _) in enumerate(cases)
    ]
    before = _snapshot(files["dir"])
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("FOOLJAX_UNSET_VARIABLE", None)
    results = run_in_subprocess(_module(name), main_expr, argvs, tmp_path, env)
    problems = []
    for argv, (_, pattern), res in zip(argvs, cases, results, strict=True):
        lines = [ln for ln in res["stderr"].splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error: ")]

        if res["code"] in (0, None) or res["traceback"] or len(errors) != 1:
            problems.append(f"{argv}: exit {res['code']}, stderr {lines[-3:]}")
        elif not re.search(pattern, errors[0]):
            problems.append(f"{argv}: {errors[0]!r} does not match {pattern!r}")
    assert _snapshot(files["dir"]) == before or _only_new_empty(
        before, _snapshot(files["dir"])
    ), "pre-existing files changed"
    touched = [
        w
        for w in os.listdir(files["dir"])
        if w.startswith(f"{name}_w") and os.listdir(os.path.join(files["dir"], w))
    ]
    assert not touched, f"bad input wrote into work directories: {touched}"
    assert not problems, "\n".join(problems)


def _module(name):
    return name if name.startswith("scripts.") else f"experiments.{name}"


def _only_new_empty(before, after):
    return all(after.get(p) == h for p, h in before.items())
