"""Official files or not: MNIST and CIFAR-10 recognised by their content (published MD5s), and files of the official
format with other content (synthetic, a benchmark's random pixels) named as such in run tags, titles and REPORT.md.
The oracles are MD5s computed here with hashlib from the files' bytes, never the code's own digests."""

import gzip
import hashlib
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import invoke, runs_of, write_cifar_batches, write_mnist_idx

from mlhw import data

REAL_MNIST = Path("/work/shared/data/mnist")
NAMES = list(data.MNIST_FILES.values())
FAKE = "(not the official MNIST files)"


@pytest.fixture(autouse=True)
def _fresh_loads():
    """Every load reads its files: no dataset served from this process's last load."""
    data._last_loaded.clear()
    yield
    data._last_loaded.clear()


def _decoded_md5(path: Path) -> str:
    raw = path.read_bytes()
    return hashlib.md5(gzip.decompress(raw) if path.suffix == ".gz" else raw).hexdigest()


def _text(output: str) -> str:
    return " ".join(output.split())  # rich wraps long titles


def test_mnist_files_of_the_official_format_with_other_content_are_not_official(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path / "gz", 120, 30, side=28)
    write_mnist_idx(tmp_path / "raw", 120, 30, side=28, gz=False)
    for folder in ("gz", "raw"):
        assert data.load("mnist", tmp_path / folder, False).files == data.NOT_OFFICIAL
    # the same check passes files whose decompressed MD5s (computed here) are the official ones: it is no constant
    fake = [_decoded_md5(tmp_path / "gz" / f"{n}.gz") for n in NAMES]
    assert fake == [_decoded_md5(tmp_path / "raw" / n) for n in NAMES]  # the content, not the compression
    monkeypatch.setitem(data.OFFICIAL_MD5, "mnist", fake)
    data._last_loaded.clear()
    for folder in ("gz", "raw"):
        assert data.load("mnist", tmp_path / folder, False).files == data.OFFICIAL


def test_nielsens_pickle_is_recognised_by_its_content(tmp_path, monkeypatch):
    """mnist.pkl.gz holds byte / 256 of train[:50000], train[50000:] and test: the idx files' content."""
    tx, ty, sx, sy = write_mnist_idx(tmp_path / "idx", 120, 30, side=28)
    monkeypatch.setitem(data.OFFICIAL_MD5, "mnist", [_decoded_md5(tmp_path / "idx" / f"{n}.gz") for n in NAMES])
    for scale, verdict in ((256, data.OFFICIAL), (255, data.NOT_OFFICIAL)):
        folder = tmp_path / f"pickle{scale}"
        folder.mkdir()
        parts = [(x.reshape(len(x), -1).astype(np.float32) / scale, y.astype(np.int64)) for x, y in (
            (tx[:100], ty[:100]), (tx[100:], ty[100:]), (sx, sy))]  # fmt: skip
        with gzip.open(folder / data.MNIST_PICKLE, "wb") as f:
            pickle.dump(tuple(parts), f)
        assert data.load("mnist", folder, False).files == verdict, scale


def test_a_gz_with_torchvisions_md5_is_official_as_it_is(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path, 40, 10, side=28)
    md5s = {n: hashlib.md5((tmp_path / f"{n}.gz").read_bytes()).hexdigest() for n in NAMES}
    monkeypatch.setattr(data, "MNIST_GZ_MD5", md5s)  # as if these were torchvision's downloads
    assert data.load("mnist", tmp_path, False).files == data.OFFICIAL
    data._last_loaded.clear()
    md5s[NAMES[1]] = "0" * 32  # one file that is not: its decompressed content decides, and it is not MNIST's
    monkeypatch.setenv("MLHW_CACHE_DIR", str(tmp_path / "other-cache"))
    assert data.load("mnist", tmp_path, False).files == data.NOT_OFFICIAL


def test_cifar_batches_of_the_official_format_with_other_content_are_not_official(tmp_path, monkeypatch):
    folder = tmp_path / data.CIFAR_FOLDER
    write_cifar_batches(folder, per_batch=1001, n_test=10)
    assert data.load("cifar10", tmp_path, False).files == data.NOT_OFFICIAL
    md5s = [hashlib.md5((folder / n).read_bytes()).hexdigest() for n in data.CIFAR_BATCHES]
    monkeypatch.setitem(data.OFFICIAL_MD5, "cifar10", md5s)
    data._last_loaded.clear()
    assert data.load("cifar10", tmp_path, False).files == data.OFFICIAL


def test_the_published_md5s_are_torchvisions():
    """The constants, as torchvision/datasets/cifar.py and mnist.py publish them."""
    assert data.CIFAR_MD5["data_batch_1"] == "c99cafc152244af753f735de768cd75f"
    assert data.CIFAR_MD5["test_batch"] == "40351d587109b95175f43aff81a1287e"
    assert data.MNIST_GZ_MD5["train-images-idx3-ubyte"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert data.OFFICIAL_MD5["cifar10"] == [data.CIFAR_MD5[n] for n in data.CIFAR_BATCHES]
    assert data.OFFICIAL_MD5["mnist"] == [data.MNIST_IDX_MD5[n] for n in NAMES]


def test_the_verdict_is_cached_with_the_fingerprints(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path, 60, 20, side=28)
    assert data.load("mnist", tmp_path, False).files == data.NOT_OFFICIAL
    data._last_loaded.clear()

    def refuse(*a, **kw):
        raise AssertionError("unchanged files hashed again")

    monkeypatch.setattr(data, "_file_md5", refuse)
    monkeypatch.setattr(data, "_mnist_content_md5s", refuse)
    assert data.load("mnist", tmp_path, False).files == data.NOT_OFFICIAL
    data._last_loaded.clear()
    write_mnist_idx(tmp_path, 61, 20, side=28)  # changed files are hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        data.load("mnist", tmp_path, False)


def test_digits_are_embedded_and_parts_keep_the_verdict(tmp_path):
    assert data.load("digits").files == data.EMBEDDED
    write_mnist_idx(tmp_path, 60, 20, side=28)
    mnist = data.load("mnist", tmp_path, False)
    for part in (data.subset(mnist, 10, 5, 8), data.two_classes(mnist, (3, 8)), data.with_validation(mnist)):
        assert part.files == data.NOT_OFFICIAL
    assert data.files_note("mnist-3v8", data.NOT_OFFICIAL) == " " + FAKE
    assert data.files_note("cifar10", data.NOT_OFFICIAL) == " (not the official CIFAR-10 files)"
    assert data.files_note("mnist", data.OFFICIAL) == data.files_note("digits", data.EMBEDDED) == ""


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"the real MNIST files are not in {REAL_MNIST}")
def test_the_real_mnist_files_are_official(tmp_path):
    for n in NAMES:  # the published MD5s of the decompressed files, checked here with hashlib
        assert _decoded_md5(REAL_MNIST / f"{n}.gz") == data.MNIST_IDX_MD5[n], n
    assert data.load("mnist", REAL_MNIST, False).files == data.OFFICIAL
    # one label changed: not the official files any more
    for n in NAMES:
        shutil.copy(REAL_MNIST / f"{n}.gz", tmp_path / f"{n}.gz")
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = (raw[8] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    assert data.load("mnist", tmp_path, False).files == data.NOT_OFFICIAL


def test_records_name_datasets_read_from_other_files():
    from mlhw.report import datasets_named

    def recs(*files, name="mnist"):
        return [{"dataset": name, "dataset_files": f} for f in files]

    assert datasets_named(recs(data.OFFICIAL, data.OFFICIAL)) == ["mnist"]
    assert datasets_named(recs(None)) == ["mnist"]  # logged before mlhw told them apart: not known, not claimed
    assert datasets_named(recs(data.NOT_OFFICIAL)) == [f"mnist {FAKE}"]
    assert datasets_named(recs(data.OFFICIAL, data.NOT_OFFICIAL, data.OFFICIAL)) == [
        "mnist (not the official MNIST files: 1 of 3 runs)"
    ]
    assert datasets_named(recs(data.EMBEDDED, name="digits") + recs(data.NOT_OFFICIAL, name="cifar10")) == [
        "cifar10 (not the official CIFAR-10 files)",
        "digits",
    ]


def test_a_run_on_synthetic_mnist_says_so_in_its_tag_title_and_report(workdir):
    write_mnist_idx(workdir / "fake", 300, 50, side=28)
    uri = f"sqlite:///{workdir}/mlflow.db"
    common = ["--train-size", 100, "--test-size", 20, "--epochs", 1, "--tracking-uri", uri]
    res = invoke("mlp", "train", "--dataset", "mnist", "--data-dir", workdir / "fake", *common)
    assert res.exit_code == 0, res.output
    assert re.search(r"MLP \[\d+\] on mnist 100/20, 1 epoch \(not the official MNIST files\)", _text(res.stdout))
    res = invoke("mlp", "train", "--dataset", "digits", *common)  # digits: as before
    assert res.exit_code == 0, res.output
    assert "official" not in res.stdout
    _, runs = runs_of(uri)
    tags = {r.data.tags["mlhw.dataset"]: r.data.tags for r in runs}
    assert tags["mnist"]["mlhw.dataset_files"] == "not the official files"
    assert tags["digits"]["mlhw.dataset_files"] == "embedded"

    doc = {
        "version": 1,
        "suites": {"mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 1, "train_size": 100}}},
        "profiles": {"fake": {"defaults": {"dataset": "mnist"}}, "digits": {"defaults": {"dataset": "digits"}}},
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
    lines = {}
    for profile in ("fake", "digits"):
        folder = ["--data-dir", workdir / "fake"] if profile == "fake" else []  # (digits reads none: refused)
        res = invoke("reproduce", "--profile", profile, "--file", workdir / "exp.yaml", "--tracking-uri", uri, *folder)
        assert res.exit_code == 0, res.output
        report = (workdir / "results" / profile / "REPORT.md").read_text()
        lines[profile] = next(line for line in report.splitlines() if line.startswith("Datasets:"))
    assert lines["fake"].startswith(f"Datasets: mnist {FAKE}. Files that are not the official ones"), lines["fake"]
    assert lines["digits"].startswith("Datasets: digits. These runs used scikit-learn's 8x8 digits")
    assert "official" not in lines["digits"]
