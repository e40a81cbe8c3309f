"""Strict readers and the fingerprint cache (issue 10 "Data files", issue 11 "Start-up").

Every bad file is written here, in or around its official format; each case asserts the exception
type and its one-line message: the file's path first, then what is wrong.
"""

import io
import os
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from helpers import (
    gzip_bytes,
    idx_bytes,
    mnist_arrays,
    mnist_mirror_names,
    write_cifar_batches,
    write_file,
    write_mnist_idx,
    write_mnist_pickle,
    write_pickle,
)

from mlhw import data
from mlhw import fingerprint_cache as fpcache
from mlhw.errors import DataNotFound, MLHWError

N_TRAIN, N_TEST = 6, 4
IDX = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets its own fingerprint cache, never the user's."""
    folder = tmp_path / "fingerprint-cache"
    monkeypatch.setenv("MLHW_CACHE_DIR", str(folder))
    return folder


def one_line_error(exc_type, call, path, pattern):
    """`call()` raises exactly `exc_type`, one line, starting with `path`, matching `pattern`."""
    with pytest.raises(MLHWError) as err:
        call()
    msg = str(err.value)
    assert type(err.value) is exc_type, msg
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert msg.startswith(f"{path}: "), msg
    assert re.search(pattern, msg[len(str(path)) + 2 :]), msg
    return msg


# --- MNIST idx files ---------------------------------------------------------------------------

_tx, _ty, _sx, _sy = mnist_arrays(N_TRAIN, N_TEST, side=28)
_labels = _ty.copy()
_labels[3] = 12
_real_gz = gzip_bytes(idx_bytes(_tx))
_bad_crc = _real_gz[:-8] + bytes(b ^ 0xFF for b in _real_gz[-8:-4]) + _real_gz[-4:]
_bad_deflate = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 32  # block type 11 is reserved

# (id, which file, written compressed, its bytes (uncompressed unless `raw`), raw: bytes as they are, message)
IDX_CASES = [
    ("not-gzip", "train_x", True, b"not gzip at all", True, r"^cannot be read: not gzip data"),
    ("gzip-fails-to-decompress", "train_x", True, _bad_deflate, True, r"^cannot be read: .*fails to decompress"),
    ("gzip-cut-off", "train_x", True, _real_gz[: len(_real_gz) // 2], True, r"^cannot be read: .*gzip data is cut off"),
    ("gzip-bad-crc", "train_x", True, _bad_crc, True, r"^cannot be read: the gzip data is corrupt \(CRC check"),
    ("empty-file", "train_y", False, b"", True, r"^is empty$"),
    ("empty-gzip", "train_y", True, b"", False, r"^is empty once decompressed$"),
    ("cut-inside-magic", "train_x", False, b"\x00\x00", True, r"^cut off inside the idx header \(2 bytes"),
    ("cut-inside-dims", "train_x", True, idx_bytes(_tx)[:9], False, r"^cut off inside the idx header \(9 bytes, 3 "),
    ("not-idx", "test_x", False, b"hello, world, not idx", True, r"^not an idx file \(magic 68656c6c"),
    ("not-uint8", "test_x", True, idx_bytes(_sx, type_code=0x0D), False, r"^not a uint8 idx file .*0x0d"),
    ("gzip-without-.gz", "train_x", False, _real_gz, True, r"gzip-compressed data but its name does not end in \.gz"),
    ("labels-as-images", "train_x", True, idx_bytes(_ty), False, r"^idx file of 1 dimensions, expected 3$"),
    ("images-as-labels", "train_y", True, idx_bytes(_tx), False, r"^idx file of 3 dimensions, expected 1$"),
    ("not-28x28", "test_x", True, idx_bytes(mnist_arrays(1, N_TEST)[2]), False, r"^images are 2x2, expected 28x28$"),
    ("no-images", "train_x", True, idx_bytes(_tx[:0]), False, r"^holds no images$"),
    (
        "data-cut-off",
        "train_x",
        True,
        idx_bytes(_tx)[:-10],
        False,
        r"^cut off inside the data: expected 4704 values for shape 6x28x28, found 4694$",
    ),
    ("trailing-bytes", "test_y", False, idx_bytes(_sy) + b"xyz", False, r"^3 bytes after the data: expected 4 values"),
    ("label-12", "train_y", True, idx_bytes(_labels), False, r"^label 12 at index 3 is outside 0\.\.9$"),
    ("test-label-200", "test_y", False, idx_bytes(np.r_[_sy[:2], 200, 201]), False, r"^label 200 at index 2 .*\(2 "),
]


@pytest.mark.parametrize("case", IDX_CASES, ids=[c[0] for c in IDX_CASES])
def test_bad_idx_file_is_one_line_naming_it(tmp_path, case):
    _, key, gz, content, raw, pattern = case
    write_mnist_idx(tmp_path, N_TRAIN, N_TEST, gz=gz, side=28)
    path = tmp_path / (IDX[key] + (".gz" if gz else ""))
    write_file(path, content, gz=gz and not raw)
    one_line_error(MLHWError, lambda: data.load_mnist(tmp_path, download=False), path, pattern)
    one_line_error(MLHWError, lambda: data.check_dataset("mnist", tmp_path), path, pattern)


def test_images_and_labels_counts_must_agree(tmp_path):
    write_mnist_idx(tmp_path, N_TRAIN, N_TEST, gz=False, side=28)
    labels = write_file(tmp_path / IDX["test_y"], idx_bytes(_sy[:-1]))
    images = tmp_path / IDX["test_x"]
    pattern = rf"^4 images but {re.escape(str(labels))} holds 3 labels$"
    one_line_error(MLHWError, lambda: data.load_mnist(tmp_path, download=False), images, pattern)


def test_read_idx_checks_the_dimension_count_it_is_asked_for(tmp_path):
    path = write_file(tmp_path / "x.idx", idx_bytes(np.zeros((2, 3), np.uint8)))
    assert data.read_idx(path).shape == (2, 3)
    one_line_error(MLHWError, lambda: data.read_idx(path, ndim=1), path, r"^idx file of 2 dimensions, expected 1$")
    zero = write_file(tmp_path / "zero.idx", b"\x00\x00\x08\x00")
    one_line_error(MLHWError, lambda: data.read_idx(zero), zero, r"^idx file of 0 dimensions, expected at least 1$")


# --- Nielsen's mnist.pkl.gz --------------------------------------------------------------------


def _parts(**change):
    """Three valid (x, y) pairs; `change` replaces some: train_x=..., validation_y=..., ..."""
    rng = np.random.RandomState(0)
    out = []
    for part, n in (("train", 5), ("validation", 3), ("test", 4)):
        x = change.get(f"{part}_x", rng.rand(n, 784).astype(np.float32))
        y = change.get(f"{part}_y", rng.randint(0, 10, n).astype(np.int64))
        out.append((x, y))
    return tuple(out)


_nan = np.zeros((4, 784), np.float32)
_nan[1, 5] = np.nan

PICKLE_CASES = [
    ("not-gzip", b"plain bytes", False, r"^cannot be read: not gzip data"),
    ("gzip-cut-off", gzip_bytes(b"x" * 5000)[:20], False, r"^cannot be read: the gzip data is cut off"),
    ("not-a-pickle", gzip_bytes(b"this is not a pickle"), False, r"^not a readable pickle \(UnpicklingError"),
    ("pickle-cut-off", gzip_bytes(__import__("pickle").dumps(_parts())[:100]), False, r"^not a readable pickle \("),
    ("two-parts", _parts()[:2], True, r"^holds a tuple of 2, expected a \(train, validation, test\) tuple"),
    ("a-dict", {"train": 1}, True, r"^holds a dict, expected"),
    ("triple-not-pairs", ((1, 2, 3), (1, 2), (1, 2)), True, r"^holds a tuple of 3, expected .* of \(x, y\) pairs$"),
    ("ragged", _parts(train_x=[[0.0], [0.0, 1.0]]), True, r"^train images or labels are not arrays"),
    ("100-pixels", _parts(train_x=np.zeros((5, 100), np.float32)), True, r"^train images have shape \(5, 100\)"),
    ("uint8-pixels", _parts(validation_x=np.zeros((3, 784), np.uint8)), True, r"^validation images have dtype uint8"),
    (
        "0..255",
        _parts(test_x=np.full((4, 784), 255.0, np.float32)),
        True,
        r"^test pixels are outside \[0, 1\] \(min 255",
    ),
    ("nan-pixel", _parts(test_x=_nan), True, r"^test pixels are outside \[0, 1\] \(min nan"),
    ("float-labels", _parts(train_y=np.zeros(5)), True, r"^train labels have dtype float64 and shape \(5,\)"),
    ("count-mismatch", _parts(train_y=np.zeros(4, np.int64)), True, r"^the train split has 5 images but 4 labels$"),
    (
        "label-10",
        _parts(validation_y=np.array([0, 1, 10])),
        True,
        r"^validation label 10 at index 2 is outside 0\.\.9$",
    ),
    ("label--1", _parts(test_y=np.array([0, -1, 2, 3])), True, r"^test label -1 at index 1 is outside 0\.\.9$"),
    ("empty-split", _parts(test_x=np.zeros((0, 784), np.float32)), True, r"^the test split holds no images$"),
]


@pytest.mark.parametrize("case", PICKLE_CASES, ids=[c[0] for c in PICKLE_CASES])
def test_bad_mnist_pickle_is_one_line_naming_it(tmp_path, case):
    _, content, is_object, pattern = case
    path = tmp_path / "mnist.pkl.gz"
    write_pickle(path, content) if is_object else write_file(path, content, gz=False)
    one_line_error(MLHWError, lambda: data.load_mnist(tmp_path, download=False), path, pattern)


def test_mnist_pickle_accepts_28x28_float64_images(tmp_path):
    parts = _parts(train_x=np.random.RandomState(1).rand(5, 28, 28))
    write_pickle(tmp_path / "mnist.pkl.gz", parts)
    d = data.load_mnist(tmp_path, download=False)
    assert d.train.x.dtype == np.float32 and d.train.x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(d.train.x[:, 0], parts[0][0].astype(np.float32))


# --- CIFAR-10 python batches -------------------------------------------------------------------


def _batch(n=5, **change):
    rng = np.random.RandomState(3)
    d = {"batch_label": "x", "data": rng.randint(0, 256, (n, 3072)).astype(np.uint8), "labels": [1, 2, 3, 4, 5][:n]}
    d.update(change)
    return {k: v for k, v in d.items() if v is not None}


CIFAR_CASES = [
    ("not-a-pickle", b"just some text", False, r"^not a CIFAR-10 python batch: not a readable pickle \(Unpickling"),
    ("empty", b"", False, r"^not a CIFAR-10 python batch: not a readable pickle \(EOFError"),
    ("cut-off", __import__("pickle").dumps(_batch())[:200], False, r"^not a CIFAR-10 python batch: not a readable"),
    (
        "gzipped",
        gzip_bytes(__import__("pickle").dumps(_batch())),
        False,
        r"^not a CIFAR-10 python batch: not a readable",
    ),
    ("a-list", [1, 2], True, r"^not a CIFAR-10 python batch: holds a list of 2, expected a dict$"),
    (
        "no-labels",
        _batch(labels=None),
        True,
        r"^not a CIFAR-10 python batch: no 'labels' \(keys: 'batch_label', 'data'\)",
    ),
    ("data-is-a-list", _batch(data=[[0] * 3072] * 5), True, r"^'data' is a list of 5, expected a uint8 numpy array"),
    ("int64-data", _batch(data=np.zeros((5, 3072), np.int64)), True, r"^'data' has dtype int64, expected uint8$"),
    (
        "1024-pixels",
        _batch(data=np.zeros((5, 1024), np.uint8)),
        True,
        r"^'data' has shape \(5, 1024\), expected \(N, 3072\)",
    ),
    ("images-3d", _batch(data=np.zeros((5, 3, 1024), np.uint8)), True, r"^'data' has shape \(5, 3, 1024\)"),
    ("no-images", _batch(data=np.zeros((0, 3072), np.uint8), labels=[]), True, r"^holds no images$"),
    ("labels-a-dict", _batch(labels={"a": 1}), True, r"^'labels' is a dict, expected a list of integers$"),
    ("labels-strings", _batch(labels=list("abcde")), True, r"^'labels' has dtype <U1 and shape \(5,\)"),
    ("labels-floats", _batch(labels=[1.0, 2, 3, 4, 5]), True, r"^'labels' has dtype float64"),
    ("ragged-labels", _batch(labels=[[1], [1, 2], 3, 4, 5]), True, r"^'labels' is not a list of integers"),
    ("count-mismatch", _batch(labels=[1, 2, 3, 4]), True, r"^5 images in 'data' but 4 'labels'$"),
    ("label-10", _batch(labels=[1, 10, 3, 4, 5]), True, r"^label 10 at index 1 is outside 0\.\.9$"),
    ("label--1", _batch(labels=np.array([-1, 2, 3, 4, 5])), True, r"^label -1 at index 0 is outside 0\.\.9$"),
]


@pytest.mark.parametrize("batch", ["data_batch_3", "test_batch"])
@pytest.mark.parametrize("case", CIFAR_CASES, ids=[c[0] for c in CIFAR_CASES])
def test_bad_cifar_batch_is_one_line_naming_it(tmp_path, case, batch):
    _, content, is_object, pattern = case
    folder = tmp_path / data.CIFAR_FOLDER
    write_cifar_batches(folder, per_batch=3, n_test=3)
    path = folder / batch
    write_pickle(path, content, gz=False) if is_object else write_file(path, content, gz=False)
    load = lambda: data.load_cifar10(tmp_path, download=False, val_size=2)  # noqa: E731
    one_line_error(MLHWError, load, path, pattern)


# --- pickles that would run code, and every real pickle format ---------------------------------


class _RunsCode:
    """Unpickled by pickle.load, calls `call(*args)`: what a crafted data file does with __reduce__."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _payloads(marker):
    """Two ways for a file to create `marker`, through a shell and through Python itself, each with a pattern of
    the global it names (protocols 0-2 name Python 3's builtins __builtin__, as Python 2 does)."""
    return {
        "os.system": (_RunsCode(os.system, f"touch '{marker}'"), re.escape(f"{os.system.__module__}.system")),
        "exec": (_RunsCode(exec, f"open({str(marker)!r}, 'w').close()"), r"(builtins|__builtin__)\.exec"),
    }


def test_the_crafted_pickles_do_run_code_under_pickle_load(tmp_path):
    """The control: pickle.load itself runs each payload, so the refusals below refuse a live one."""
    for how, (payload, _) in _payloads(tmp_path / "marker").items():
        pickle.loads(pickle.dumps({"data": payload}, protocol=2))
        assert (tmp_path / "marker").exists(), how
        (tmp_path / "marker").unlink()


# where the payload sits: a batch's value (protocol 2, as the official batches), inside an object array's
# elements (unpickled as the array is rebuilt), and one of Nielsen's (x, y) pairs (the default protocol)
CRAFTED = {
    "data_batch_1": lambda payload: pickle.dumps(_batch(data=payload), protocol=2),
    "test_batch": lambda payload: pickle.dumps(_batch(labels=np.array([1, payload], dtype=object))),
    "mnist.pkl.gz": lambda payload: gzip_bytes(pickle.dumps(_parts(train_x=payload))),
}


@pytest.mark.parametrize("how", ["os.system", "exec"])
@pytest.mark.parametrize("where", list(CRAFTED))
def test_a_pickle_that_would_run_code_is_refused_before_it_runs(tmp_path, where, how):
    marker = tmp_path / "marker"
    payload, global_name = _payloads(marker)[how]
    if where == "mnist.pkl.gz":
        path = tmp_path / where
        load = lambda: data.load_mnist(tmp_path, download=False)  # noqa: E731
    else:
        folder = tmp_path / data.CIFAR_FOLDER
        write_cifar_batches(folder, per_batch=3, n_test=3)
        path = folder / where
        load = lambda: data.load_cifar10(tmp_path, download=False, val_size=2)  # noqa: E731
    write_file(path, CRAFTED[where](payload), gz=False)
    pattern = rf"^refers to {global_name}, which a data file has no business with$"
    one_line_error(MLHWError, load, path, pattern)
    assert not marker.exists()


def test_a_refused_global_with_an_unprintable_name_stays_one_line(tmp_path):
    """Protocol 4 names a global by two strings, which may hold anything: the message shows them escaped."""
    raw = b"\x80\x04\x8c\x05os\nxx\x94\x8c\x06system\x94\x93\x94."  # STACK_GLOBAL 'os\nxx' 'system'
    path = write_file(tmp_path / data.CIFAR_FOLDER / "test_batch", raw, gz=False)
    one_line_error(MLHWError, lambda: data.read_cifar_batch(path), path, r"^refers to 'os\\nxx\.system', which")


def test_mlp_train_refuses_a_crafted_mnist_pickle_with_one_line_and_runs_nothing(workdir):
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    marker = workdir / "marker"
    payload, _ = _payloads(marker)["os.system"]
    path = write_file(workdir / "mnist" / "mnist.pkl.gz", CRAFTED["mnist.pkl.gz"](payload), gz=False)
    res = invoke("mlp", "train", "--dataset", "mnist", "--data-dir", path.parent, "--no-download", "--epochs", 1)
    qualname = f"{os.system.__module__}.system"
    assert_one_line_error(res, f"error: {path}: refers to {qualname}, which a data file has no business with")
    assert not marker.exists()
    assert_nothing_created(workdir)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_real_formats_load_in_every_pickle_protocol(tmp_path, protocol):
    """Arrays, numpy scalars (labels as a list of np.int64) and bytes keys, however Python 3 pickled them."""
    batch = _batch(labels=list(np.arange(5, dtype=np.int64)))
    batch = {(b"labels" if k == "labels" else k): v for k, v in batch.items()}  # b'labels', as Python 3
    path = write_file(tmp_path / "test_batch", pickle.dumps(batch, protocol=protocol), gz=False)
    x, y = data.read_cifar_batch(path)
    np.testing.assert_array_equal(x.reshape(5, -1), batch["data"])
    assert y.tolist() == [0, 1, 2, 3, 4]
    parts = _parts()
    pkl = write_file(tmp_path / "mnist.pkl.gz", pickle.dumps(parts, protocol=protocol), gz=True)
    for split, (px, py) in zip(data.read_mnist_pickle(pkl), parts):
        np.testing.assert_array_equal(split.x.reshape(len(px), -1), px)
        np.testing.assert_array_equal(split.y, py)


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the official files: every str and bytes a Python 2 str (BINSTRING:
    no _codecs.encode), numpy's helpers under numpy 1's name (see `_python2_pickle`)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        short = len(raw) < 256
        head = pickle.SHORT_BINSTRING + bytes([len(raw)]) if short else pickle.BINSTRING + struct.pack("<i", len(raw))
        self.write(head + raw)
        self.memoize(obj)

    dispatch[str] = dispatch[bytes] = save_python2_str


def _python2_pickle(obj) -> bytes:
    f = io.BytesIO()
    _Python2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.", b"cnumpy.core.")  # GLOBAL opcodes are lines of text


def test_python2_pickles_load_as_the_official_files_are(tmp_path):
    batch = _batch()
    raw = _python2_pickle(batch)
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw and b"numpy._core" not in raw
    x, y = data.read_cifar_batch(write_file(tmp_path / "data_batch_1", raw, gz=False))
    np.testing.assert_array_equal(x.reshape(5, -1), batch["data"])
    assert y.tolist() == batch["labels"]
    parts = _parts()
    pkl = write_file(tmp_path / "mnist.pkl.gz", _python2_pickle(parts), gz=True)
    for split, (px, py) in zip(data.read_mnist_pickle(pkl), parts):
        np.testing.assert_array_equal(split.x.reshape(len(px), -1), px)
        np.testing.assert_array_equal(split.y, py)


# --- not found, and mirrors' file names ---------------------------------------------------------


def test_mnist_not_found_lists_folders_and_names(tmp_path):
    with pytest.raises(DataNotFound) as err:
        data.load_mnist(tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"MNIST not found in {tmp_path}/ nor {tmp_path}/MNIST/raw/: looked for mnist.pkl.gz or the 4 "
    )
    assert ", ".join(IDX.values()) in msg and "train-images.idx3-ubyte" in msg and ".gz" in msg
    assert "missing" not in msg and re.search(r"--data-dir.*--download", msg)
    write_mnist_idx(tmp_path, N_TRAIN, N_TEST, side=28)
    for name in ("t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).unlink()
    with pytest.raises(DataNotFound, match=r"\(missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte\): pass"):
        data.check_dataset("mnist", tmp_path)


def test_failed_mnist_download_still_lists_what_was_looked_for(tmp_path, monkeypatch):
    def offline(data_dir):
        # torchvision's own wording: the reason comes on the last line
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried https://ossci-datasets.s3.amazonaws.com/mnist/, "
            "got:\n<urlopen error [Errno -2] Name or service not known>\n"
        )

    monkeypatch.setattr(data, "_fetch_mnist", offline)
    with pytest.raises(DataNotFound) as err:
        data.load_mnist(tmp_path / "nowhere")  # download=None: absent, so it tries
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"MNIST not found in {tmp_path}/nowhere/ nor ")
    assert (
        "; the download failed (Error downloading train-images-idx3-ubyte.gz: <urlopen error [Errno -2] Name or "
        "service not known>): pass --data-dir" in msg
    )


def test_cifar_not_found_lists_what_is_missing(tmp_path):
    write_cifar_batches(tmp_path / data.CIFAR_FOLDER, per_batch=3, n_test=3)
    (tmp_path / data.CIFAR_FOLDER / "data_batch_2").unlink()
    with pytest.raises(DataNotFound, match=r"need data_batch_1\.\.5 and test_batch; missing data_batch_2\)"):
        data.load_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("sub", ["", "MNIST/raw"], ids=["flat", "torchvision-raw"])
def test_mirror_named_idx_files_load_the_same(tmp_path, gz, sub):
    write_mnist_idx(tmp_path / "official", 12, 5, gz=gz, side=28)
    folder = tmp_path / "mirror" / sub
    write_mnist_idx(folder, 12, 5, gz=gz, side=28)
    mnist_mirror_names(folder)
    assert (folder / ("train-images.idx3-ubyte" + (".gz" if gz else ""))).is_file()
    official = data.load_mnist(tmp_path / "official", download=False)
    mirror = data.load_mnist(tmp_path / "mirror", download=False)
    assert mirror.sizes() == official.sizes() == {"train": 12, "test": 5}
    for a, b in ((official.train, mirror.train), (official.test, mirror.test)):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    assert mirror.fingerprint() == official.fingerprint()
    assert data.check_dataset("mnist", tmp_path / "mirror") == official.fingerprint()


def test_bad_mirror_named_file_is_named_in_the_error(tmp_path):
    write_mnist_idx(tmp_path, N_TRAIN, N_TEST, side=28)
    mnist_mirror_names(tmp_path)
    path = write_file(tmp_path / "train-labels.idx1-ubyte.gz", idx_bytes(_labels))
    one_line_error(MLHWError, lambda: data.load_mnist(tmp_path, download=False), path, r"^label 12 at index 3")


# --- fingerprints: unchanged values, cached by (path, size, mtime) --------------------------------

# Values computed before the cache existed: runs in existing MLflow stores are identified by them.
PINNED = {
    "digits": "0f427dd4537d8bfd",
    "mnist-idx": "0b9538193af16153",  # write_mnist_idx(60, 12, side=28)
    "mnist-idx-subset": "3836266e263c0e98",  # ... then subset(20, 5, seed 8); test draw seeded again (v2)
    "mnist-pickle": "9ebd26c55785ddf1",  # write_mnist_pickle()
    "cifar10": "c8d5ff587b0b065e",  # write_cifar_batches(per_batch=20, n_test=15), val_size=10
    "cifar10-cnn": "73fc44c77a9359e0",  # ... then with_validation, train_fraction(0.5)
}


def test_fingerprints_are_the_values_they_were(tmp_path, cache_dir):
    write_mnist_idx(tmp_path / "m", 60, 12, side=28)
    write_mnist_pickle(tmp_path / "p" / "mnist.pkl.gz") if (tmp_path / "p").mkdir() is None else None
    write_cifar_batches(tmp_path / "c" / data.CIFAR_FOLDER, per_batch=20, n_test=15)
    for cached in (False, True):  # computed, then from the cache
        fpcache._memo.clear()
        mnist = data.load_mnist(tmp_path / "m", download=False)
        cifar = data.load_cifar10(tmp_path / "c", download=False, val_size=10)
        got = {
            "digits": data.load_digits_data().fingerprint(),
            "mnist-idx": mnist.fingerprint(),
            "mnist-idx-subset": data.subset(mnist, 20, 5, 8).fingerprint(),
            "mnist-pickle": data.load_mnist(tmp_path / "p", download=False).fingerprint(),
            "cifar10": cifar.fingerprint(),
            "cifar10-cnn": data.train_fraction(data.with_validation(cifar), 0.5).fingerprint(),
        }
        assert got == PINNED, f"cached={cached}"
        assert data.content_hash(data.load_mnist(tmp_path / "m", download=False)) == PINNED["mnist-idx"]
    assert (cache_dir / "fingerprints.json").is_file()
    assert data.dataset_fingerprint("digits") == PINNED["digits"]
    assert data.dataset_fingerprint("mnist", tmp_path / "m", steps=[("subset", 20, 5, 8)]) == PINNED["mnist-idx-subset"]


def _no_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("loaded or hashed although the cache knows the answer")

    for name in ("load", "load_mnist", "load_cifar10", "load_digits_data", "content_hash", "read_idx"):
        monkeypatch.setattr(data, name, fail)


CNN_STEPS = [("with_validation", 0.1, 1), ("train_fraction", 0.5)]


@pytest.mark.parametrize("steps", [(), [("subset", 30, 8, 8)], CNN_STEPS], ids=["base", "subset", "cnn"])
def test_dataset_fingerprint_from_cache_reads_nothing(tmp_path, monkeypatch, steps):
    write_mnist_idx(tmp_path, 60, 12, gz=False, side=28)
    expected = data.content_hash(data.derive(data.load_mnist(tmp_path, download=False), steps))
    base = data.check_dataset("mnist", tmp_path)  # the pre-flight check, then the planner's fingerprints
    assert data.dataset_fingerprint("mnist", tmp_path, steps=steps) == expected  # computed and stored
    fpcache._memo.clear()  # as a new process would
    data._last_loaded.clear()
    with monkeypatch.context() as m:
        _no_loading(m)
        assert data.dataset_fingerprint("mnist", tmp_path, steps=steps) == expected
        assert data.check_dataset("mnist", tmp_path) == data.dataset_fingerprint("mnist", tmp_path) == base


def test_loaded_dataset_fingerprint_uses_the_cache(tmp_path, monkeypatch):
    write_cifar_batches(tmp_path / data.CIFAR_FOLDER, per_batch=1001, n_test=3)  # 5,005 images: val 5,000
    first = data.load_cifar10(tmp_path, download=False)
    fp, cnn = first.fingerprint(), data.derive(first, CNN_STEPS).fingerprint()
    fpcache._memo.clear()
    second = data.load_cifar10(tmp_path, download=False)
    monkeypatch.setattr(data, "content_hash", lambda d: "not-hashed-again")
    assert second.fingerprint() == fp and data.dataset_fingerprint("cifar10", tmp_path) == fp
    assert data.train_fraction(data.with_validation(second, 0.1, 1), 0.5).fingerprint() == cnn
    other = data.load_cifar10(tmp_path, download=False, val_size=100)  # other options, other key
    assert other.fingerprint() == "not-hashed-again"


@pytest.mark.parametrize("change", ["same-size", "new-size"])
def test_modified_file_invalidates_the_cache(tmp_path, change):
    write_mnist_idx(tmp_path, 60, 12, gz=False, side=28)
    before = data.dataset_fingerprint("mnist", tmp_path)
    assert data.check_dataset("mnist", tmp_path) == before
    labels, images = tmp_path / IDX["test_y"], tmp_path / IDX["test_x"]
    st = labels.stat()
    if change == "same-size":  # other labels, same length: only the mtime tells (set it, whatever the clock's grain)
        write_file(labels, idx_bytes(np.arange(12)[::-1] % 10))
        assert labels.stat().st_size == st.st_size
        os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    else:
        _, _, x, y = mnist_arrays(0, 13, side=28)
        write_file(images, idx_bytes(x))
        write_file(labels, idx_bytes(y))
    after = data.dataset_fingerprint("mnist", tmp_path)
    assert after != before
    assert after == data.content_hash(data.load_mnist(tmp_path, download=False))
    st = labels.stat()
    write_file(labels, idx_bytes(np.full(len(data.load_mnist(tmp_path, download=False).test), 11)))
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    # a file broken since it last passed is checked again, not trusted
    one_line_error(MLHWError, lambda: data.check_dataset("mnist", tmp_path), labels, r"^label 11 at index 0 ")


def test_a_broken_or_unwritable_cache_is_ignored(tmp_path, monkeypatch, cache_dir):
    write_mnist_idx(tmp_path, 60, 12, side=28)
    cache_dir.mkdir()
    (cache_dir / "fingerprints.json").write_text("{not json")
    assert data.dataset_fingerprint("mnist", tmp_path) == PINNED["mnist-idx"]
    assert '"fingerprint": "0b9538193af16153"' in (cache_dir / "fingerprints.json").read_text()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MLHW_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be created
    fpcache._memo.clear()
    assert data.dataset_fingerprint("mnist", tmp_path) == PINNED["mnist-idx"]


def test_datasets_built_by_hand_are_never_cached(cache_dir):
    x = np.zeros((3, 1, 2, 2), np.float32)
    d = data.Dataset("synthetic", data.Split(x, np.arange(3)), data.Split(x, np.arange(3)))
    assert d.fingerprint() == data.content_hash(d)
    assert data.subset(d, 2, None, 0).fingerprint() == data.content_hash(data.subset(d, 2, None, 0))
    assert not cache_dir.exists()


def test_unknown_step_or_dataset():
    with pytest.raises(MLHWError, match=r"unknown dataset step \('shuffle',\): choose one of subset"):
        data.dataset_fingerprint("digits", steps=["shuffle"])
    with pytest.raises(MLHWError, match=r"^dataset step \('subset', 10\): TypeError: subset\(\) missing 2"):
        data.dataset_fingerprint("digits", steps=[("subset", 10)])
    with pytest.raises(MLHWError, match="unknown dataset 'foo'"):
        data.check_dataset("foo")


def test_a_cached_fingerprint_needs_neither_torch_nor_sklearn(cache_dir):
    assert data.dataset_fingerprint("digits") == PINNED["digits"]  # a miss: loads digits here, and caches
    code = (
        "import sys; from mlhw import data; "
        "assert 'torch' not in sys.modules, 'import mlhw.data imported torch'; "
        "print(data.dataset_fingerprint('digits')); "
        "print(sorted(m for m in ('torch', 'torchvision', 'sklearn') if m in sys.modules))"
    )
    env = {**os.environ, "MLHW_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [PINNED["digits"], "[]"]  # a hit in a new process imports none of them


def test_cifar_files_too_small_for_the_validation_split_name_the_folder(tmp_path, cache_dir):
    write_cifar_batches(tmp_path / data.CIFAR_FOLDER, per_batch=20, n_test=15)
    with pytest.raises(MLHWError) as e:
        data.load_cifar10(tmp_path, download=False)  # the official split: 5,000 validation images
    msg = str(e.value)
    assert str(tmp_path / data.CIFAR_FOLDER) in msg and "100 training images" in msg and "50,000" in msg


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_a_data_dir_that_is_a_file_is_named_as_one_before_anything_runs(workdir, dataset):
    """`--data-dir FILE` read "MNIST not found in FILE/ nor FILE/MNIST/raw/", as if the folder held the wrong files
    (--results-dir says "is a file, not a folder")."""
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    afile = workdir / "afile"
    afile.write_text("not a folder")
    kind = "mlp" if dataset == "mnist" else "cnn"
    res = invoke(kind, "train", "--dataset", dataset, "--data-dir", afile, "--no-download", "--epochs", 1)
    assert_one_line_error(res, f"error: --data-dir {afile} is a file, not a folder (the one holding {dataset}'s files)")
    assert_nothing_created(workdir)
