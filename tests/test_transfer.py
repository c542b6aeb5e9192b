"""The transfer family: artifacts left by image-making runs, scored on other
models; a new family made of a runs module, a main and a flagfile."""

import json
import os

import numpy as np
import pytest

from fooljax.errors import FooljaxError
from fooljax.runs import fooling, gradient, transfer
from fooljax.runs.common import ARTIFACT, load_artifact


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    me = str(d / "me")
    cfg = fooling.FoolingConfig(
        population=20, generations=4, log_every=2, checkpoint_every=2, eval_batch=20
    )
    fooling.run(cfg, me)
    ga = str(d / "ga")
    gradient.run_gradient_ascent(gradient.GradientAscentConfig(num_steps=40), ga)
    unfinished = str(d / "unfinished")
    fooling.run(cfg, unfinished, stop_after=2)
    return {"me": me, "ga": ga, "unfinished": unfinished, "dir": str(d)}


def test_artifacts_hold_the_images_and_source_confidences(sources):
    ga = load_artifact(sources["ga"])
    s = json.load(open(os.path.join(sources["ga"], "summary.json")))
    assert ga["kind"] == "fooling" and ga["model"] == "lenet"
    assert ga["images"].shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(ga["labels"], np.arange(10))
    np.testing.assert_allclose(ga["confidence"], s["confidence"], rtol=1e-6)
    me = load_artifact(sources["me"])
    s = json.load(open(os.path.join(sources["me"], "summary.json")))
    occupied = np.asarray(s["confidence"]) > 0
    np.testing.assert_array_equal(me["labels"], np.nonzero(occupied)[0])
    np.testing.assert_allclose(
        me["confidence"], np.asarray(s["confidence"])[occupied], rtol=1e-5
    )


def test_matrix_on_the_source_model_equals_the_source_confidences(sources, tmp_path):
    cfg = transfer.TransferConfig(
        sources=f"{sources['me']},{sources['ga']}",
        models="lenet:default,lenet:init",
        batch_size=7,
    )
    s = transfer.run(cfg, str(tmp_path / "t"))
    for src in (sources["me"], sources["ga"]):
        art = load_artifact(src)
        row = s["matrix"][src]["lenet:default"]
        for t in (0.99, 0.9999):
            assert row[f"fraction_at_least_{t}"] == pytest.approx(
                np.mean(art["confidence"] >= t)
            )
        assert row["median_confidence"] == pytest.approx(
            np.median(art["confidence"]), rel=1e-4
        )
        # an untrained LeNet is not fooled by images made for a trained one
        assert s["matrix"][src]["lenet:init"]["fraction_at_least_0.99"] == 0.0
    assert os.path.getsize(tmp_path / "t" / "transfer.png") > 0
    assert json.load(open(tmp_path / "t" / "summary.json"))["models"] == [
        "lenet:default",
        "lenet:init",
    ]


def test_parse_target():
    assert transfer.parse_target("lenet") == ("lenet", "default", None)
    assert transfer.parse_target("lenet:/a/b:unit") == ("lenet", "/a/b", "unit")
    assert transfer.parse_target("cifar_lenet:/x.h5") == ("cifar_lenet", "/x.h5", None)


@pytest.mark.parametrize(
    "which, models, pattern",
    [
        ("missing", "lenet", r"does not exist"),
        ("unfinished", "lenet", r"no finished run"),
        ("no_artifact", "lenet", r"holds no artifact\.npz"),
        ("ga", "cifar_lenet:init", r"takes \(32, 32, 3\) images"),
        ("ga", "bogus_net", r"bogus_net"),
        ("", "lenet", r"--sources"),
    ],
)
def test_bad_sources_and_targets_are_one_line(
    sources, tmp_path, which, models, pattern
):
    if which == "no_artifact":
        d = tmp_path / "na"
        d.mkdir()
        (d / "summary.json").write_text("{}")
        src = str(d)
    elif which == "missing":
        src = str(tmp_path / "nope")
    else:
        src = sources.get(which, "")
    out = tmp_path / "out"
    cfg = transfer.TransferConfig(sources=src, models=models)
    with pytest.raises(FooljaxError, match=pattern) as e:
        transfer.run(cfg, str(out))
    assert "\n" not in str(e.value)
    assert not out.exists()  # refused before the work directory is made


def test_target_with_too_few_classes_is_refused():
    from fooljax.models import Classifier

    clf = Classifier(None, None, (28, 28, 1), 5, "five", None)
    art = {"images": np.zeros((2, 28, 28, 1)), "labels": np.array([1, 7])}
    with pytest.raises(FooljaxError, match="has 5 classes.*class 7"):
        transfer._check_fits(clf, "five", art, "src")


def test_damaged_artifact_is_refused(sources, tmp_path):
    import shutil

    src = str(tmp_path / "copy")
    shutil.copytree(sources["ga"], src)
    path = os.path.join(src, ARTIFACT)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(FooljaxError, match="artifact"):
        transfer.run(transfer.TransferConfig(sources=src), str(tmp_path / "t"))


@pytest.fixture
def two_artifacts(tmp_path):
    """A finished run that left one artifact per source model."""
    from fooljax.runs.common import save_artifact

    d = tmp_path / "multi"
    d.mkdir()
    (d / "summary.json").write_text("{}")
    rng = np.random.default_rng(0)
    for i, name in enumerate(("net_a", "net/b")):
        save_artifact(
            str(d),
            rng.uniform(size=(3 + i, 28, 28, 1)),
            [1, 2, 3, 4][: 3 + i],
            [0.5] * (3 + i),
            kind="adversarial",
            model=name,
            weights="default",
            name=name,
        )
    return str(d)


def test_a_source_with_several_artifacts_names_one(two_artifacts, tmp_path):
    from fooljax.runs.common import list_artifacts

    assert sorted(list_artifacts(two_artifacts)) == ["net_a", "net_b"]
    assert load_artifact(f"{two_artifacts}:net_a")["model"] == "net_a"
    b = load_artifact(os.path.join(two_artifacts, "artifact_net_b.npz"))
    assert b["model"] == "net/b" and len(b["labels"]) == 4
    with pytest.raises(FooljaxError, match=r"several artifacts \(net_a, net_b\)"):
        load_artifact(two_artifacts)
    with pytest.raises(FooljaxError, match=r"no artifact named zz \(it has: net_a"):
        load_artifact(f"{two_artifacts}:zz")
    with pytest.raises(FooljaxError, match="does not exist"):
        load_artifact(f"{tmp_path}/nope:net_a")
    out = tmp_path / "t"
    s = transfer.run(
        transfer.TransferConfig(
            sources=f"{two_artifacts}:net_a,{two_artifacts}:net_b", models="lenet"
        ),
        str(out),
    )
    assert list(s["matrix"]) == [f"{two_artifacts}:net_a", f"{two_artifacts}:net_b"]
    assert s["sources"][f"{two_artifacts}:net_b"]["num_images"] == 4
    with pytest.raises(FooljaxError, match="several artifacts"):
        transfer.run(
            transfer.TransferConfig(sources=two_artifacts), str(tmp_path / "t2")
        )
    assert not (tmp_path / "t2").exists()
