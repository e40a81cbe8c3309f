"""The data layer, shared by every part: embedded digits, MNIST and CIFAR-10, as arrays.

Every loader returns a `Dataset` of numpy arrays: images as (N, C, H, W), either uint8 in
0..255 or float32 already in [0, 1], and int64 labels. Models turn each split into a device
tensor once, and batches are index slices of those tensors: no DataLoader anywhere.

Real datasets are read from files in their official formats by the strict readers below: every
problem with a file (cut off, not decompressible, wrong structure, sizes, dtypes or labels) is an
`MLHWError` with one line that names the file and what is wrong. Pickles (Nielsen's MNIST, the
CIFAR-10 batches) are read by `_DataUnpickler`, which builds numpy arrays and plain containers and refuses
every other global before calling anything: a crafted file cannot run code. torchvision is used only to
download (and checksum) the official archives; this module imports neither torch nor torchvision.

Fingerprints (content hashes that identify runs) are cached on disk by the files' path, size and
mtime (`fingerprint_cache.cache_path()`), so that a command with nothing to do need not load or hash
anything: `dataset_fingerprint(name, data_dir, steps=...)` answers from the cache and loads only
when it misses. `check_dataset` is the pre-flight validation of a dataset's files.

Official files are recognised by their content (`Dataset.files`: `OFFICIAL`, `NOT_OFFICIAL`, or `EMBEDDED` for
digits): MNIST by the MD5s of its four idx files once decompressed (or torchvision's MD5s of the .gz), CIFAR-10 by
torchvision's MD5s of the python batches. Files in the official format with other content (synthetic, a benchmark's
random pixels) run, and every run, title and report says they are not the official files. The verdict is cached
beside the fingerprints, by the same (path, size, mtime) stamps: unchanged files are not hashed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import importlib
import io
import json
import math
import os
import pickle
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlhw import fingerprint_cache as fpcache
from mlhw.errors import DataNotFound, MLHWError

DIGITS_TEST_SIZE = 500  # of load_digits' 1,797 images; the rest (1,297) is the training pool
DIGITS_SPLIT_SEED = 0  # fixed, so that every seed of every run is scored on the same test images
MNIST_TRAIN_POOL = 50_000  # train[:50000]; train[50000:] is the validation set (Nielsen's split)
MNIST_SIDE = 28
CIFAR_PIXELS = 3 * 32 * 32
N_CLASSES = 10

# A derivation step: ("subset", train_size, test_size, seed), ("with_validation", fraction, split_seed)
# or ("train_fraction", fraction); see `derive`.
Step = tuple
# Where a loaded dataset came from: (its source, as JSON: name, files with size and mtime, loader
# options) and the derivation steps applied since. None: unknown (built by hand, or files changed
# while being read), so its fingerprint is never cached.
Origin = tuple[str, tuple[Step, ...]]


@dataclass
class Split:
    x: np.ndarray  # (N, C, H, W): uint8 0..255 or float32 in [0, 1]
    y: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> Split:
        return Split(self.x[idx], self.y[idx])


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    val: Split | None = None
    n_classes: int = 10
    source: str = ""
    files: str = ""  # OFFICIAL, NOT_OFFICIAL, EMBEDDED (digits); "" when unknown (a dataset built by hand)
    _fingerprint: str | None = field(default=None, repr=False, compare=False)
    _origin: Origin | None = field(default=None, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.image_shape))

    def fingerprint(self) -> str:
        """Content hash of every split: two runs with equal fingerprints saw the same numbers.
        Cached in memory (a Dataset never changes) and, for datasets read from files, on disk."""
        if self._fingerprint is None:
            key = fpcache.key(*self._origin) if self._origin is not None else None
            fp = fpcache.get(key) if key is not None else None
            if fp is None:
                fp = content_hash(self)
                if key is not None:
                    fpcache.put(key, fp, self._origin[0])
            self._fingerprint = fp
        return self._fingerprint

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.train), "test": len(self.test)}
        if self.val is not None:
            out["val"] = len(self.val)
        return out


def two_classes(data: Dataset, classes: tuple[int, int]) -> Dataset:
    """The part of `data` in two classes (Q3's binary task), named for them ('digits-3v8'): what a two-class SVM
    trains and is tested on, for its dataset inputs and sizes."""
    keep = [s if s is None else s.take(np.isin(s.y, classes)) for s in (data.train, data.test, data.val)]
    tag = "v".join(map(str, classes))
    sub = Dataset(f"{data.name}-{tag}", keep[0], keep[1], keep[2], 2, data.source or data.name, data.files)
    sub._fingerprint = hashlib.sha256(f"{data.fingerprint()}:{tag}".encode()).hexdigest()
    return sub


def content_hash(data: Dataset) -> str:
    """The fingerprint computed from the arrays, never cached: sha256 of the name and every split."""
    h = hashlib.sha256(data.name.encode())
    for split in (data.train, data.val, data.test):
        if split is not None:
            h.update(np.ascontiguousarray(split.x).tobytes())
            h.update(np.ascontiguousarray(split.y).tobytes())
    return h.hexdigest()[:16]


def unit_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]; float pixels are already there."""
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)


# --- derived datasets: subsets, validation splits, training fractions ----------------------------


def _derived(data: Dataset, step: Step, **changes) -> Dataset:
    origin = None if data._origin is None else (data._origin[0], data._origin[1] + _norm_steps([step]))
    return dataclasses.replace(data, _fingerprint=changes.pop("_fingerprint", None), _origin=origin, **changes)


def oversized(data: Dataset, train_size: int | None, test_size: int | None) -> tuple[str, int, int] | None:
    """("train" or "test", the size asked, the pool's size) for a subset the pool cannot give; None if both can."""
    for which, size, pool in (("train", train_size, data.train), ("test", test_size, data.test)):
        if size is not None and size > len(pool):
            return which, size, len(pool)
    return None


def subset(data: Dataset, train_size: int | None, test_size: int | None, seed: int) -> Dataset:
    """The assignment's subsets, drawn as the course's loader draws them: for each of the training pool and
    the test set, only when the size asked is smaller than it, `np.random.seed(seed)` then
    `choice(len(pool), size, replace=False)`. The generator is seeded again before the test draw, so the test
    subset does not depend on the training size; a size equal to the pool keeps it whole, in its order. (The
    same draws, without touching numpy's global generator.)"""
    train, test = data.train, data.test
    too_large = oversized(data, train_size, test_size)
    if too_large is not None:
        which, size, pool = too_large
        raise MLHWError(f"--{which}-size {size} is larger than the {which} pool of {data.name} ({pool})")
    if train_size is not None and train_size < len(train):
        train = train.take(np.random.RandomState(seed).choice(len(train), train_size, replace=False))
    if test_size is not None and test_size < len(test):
        test = test.take(np.random.RandomState(seed).choice(len(test), test_size, replace=False))
    return _derived(data, ("subset", train_size, test_size, seed), train=train, test=test)


def with_validation(data: Dataset, fraction: float = 0.1, split_seed: int = 1) -> Dataset:
    """Give a dataset without a validation split one the way the assignment makes CIFAR-10's: a
    seeded shuffle (seed 1) of the training pool, the first `fraction` of it becomes validation."""
    step = ("with_validation", fraction, split_seed)
    if data.val is not None:  # the same content
        return _derived(data, step, _fingerprint=data._fingerprint)
    perm = np.random.RandomState(split_seed).permutation(len(data.train))
    n_val = max(1, int(round(fraction * len(perm))))
    return _derived(data, step, train=data.train.take(perm[n_val:]), val=data.train.take(perm[:n_val]))


def train_fraction(data: Dataset, fraction: float) -> Dataset:
    """The first `fraction` of the (already shuffled) training pool: the same images for every
    variant and seed, so that runs differ only in what they are meant to compare."""
    if not 0 < fraction <= 1:
        raise MLHWError(f"train fraction must be in (0, 1] (got {fraction})")
    n = max(1, int(round(fraction * len(data.train))))
    return _derived(data, ("train_fraction", fraction), train=data.train.take(np.arange(n)))


STEPS: dict[str, Callable[..., Dataset]] = {
    "subset": subset,
    "with_validation": with_validation,
    "train_fraction": train_fraction,
}


def _norm_steps(steps: Sequence[Step | str]) -> tuple[Step, ...]:
    out = []
    for step in steps:
        step = (step,) if isinstance(step, str) else tuple(step)
        if not step or step[0] not in STEPS:
            raise MLHWError(f"unknown dataset step {step!r}: choose one of {', '.join(STEPS)}")
        out.append(tuple(a.item() if isinstance(a, np.generic) else a for a in step))
    return tuple(out)


def derive(data: Dataset, steps: Sequence[Step | str] = ()) -> Dataset:
    """Apply derivation steps in order, e.g. `[("subset", 10_000, 5_000, 8)]` (what an MLP or SVM
    run sees) or `[("with_validation", 0.1, 1), ("train_fraction", 0.1)]` (what a CNN run sees)."""
    steps = _norm_steps(steps)
    if not steps:
        return data
    out = data
    for name, *args in steps:
        try:
            out = STEPS[name](out, *args)
        except TypeError as err:  # wrong arguments for the step
            raise MLHWError(f"dataset step {(name, *args)!r}: {_why(err)}") from None
    # recorded as given, so that `dataset_fingerprint(..., steps)` finds what this one stores
    out._origin = None if data._origin is None else (data._origin[0], data._origin[1] + steps)
    return out


# --- strict readers: one-line errors that name the file ------------------------------------------


def _why(err: BaseException) -> str:
    text = str(err).splitlines()[0][:120] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed when its name ends in .gz."""
    try:
        if path.suffix != ".gz":
            raw = path.read_bytes()
        else:
            with gzip.open(path, "rb") as f:
                raw = f.read()
    except gzip.BadGzipFile as err:
        what = "not gzip data" if str(err).startswith("Not a gzipped file") else "the gzip data is corrupt"
        raise MLHWError(f"{path}: cannot be read: {what} ({err})") from None
    except EOFError:
        raise MLHWError(f"{path}: cannot be read: the gzip data is cut off (the file ends mid-stream)") from None
    except zlib.error as err:
        raise MLHWError(f"{path}: cannot be read: the gzip data fails to decompress ({err})") from None
    except OSError as err:
        raise MLHWError(f"{path}: cannot be read ({err.strerror or _why(err)})") from None
    if not raw:
        raise MLHWError(f"{path}: is empty" + (" once decompressed" if path.suffix == ".gz" else ""))
    return raw


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an idx file (plain or .gz): magic 0x0000 | dtype 0x08 (uint8) | ndim, then big-endian
    uint32 dims, then exactly prod(dims) bytes. `ndim`, when given, is required."""
    path = Path(path)
    raw = _read_bytes(path)
    if raw[:2] == b"\x1f\x8b":
        raise MLHWError(f"{path}: holds gzip-compressed data but its name does not end in .gz")
    if len(raw) < 4:
        raise MLHWError(f"{path}: cut off inside the idx header ({len(raw)} bytes, the magic number alone is 4)")
    zero, dtype, nd = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise MLHWError(f"{path}: not an idx file (magic {raw[:4].hex()}, expected 000008 then the dimension count)")
    if dtype != 0x08:
        raise MLHWError(f"{path}: not a uint8 idx file (magic {raw[:4].hex()}: type code 0x{dtype:02x}, not 0x08)")
    if nd == 0 or (ndim is not None and nd != ndim):
        raise MLHWError(f"{path}: idx file of {nd} dimensions, expected {ndim if ndim is not None else 'at least 1'}")
    head = 4 + 4 * nd
    if len(raw) < head:
        raise MLHWError(f"{path}: cut off inside the idx header ({len(raw)} bytes, {nd} dimensions need {head})")
    dims = struct.unpack(f">{nd}I", raw[4:head])
    want, found, shape = math.prod(dims), len(raw) - head, "x".join(map(str, dims))
    if found < want:
        raise MLHWError(f"{path}: cut off inside the data: expected {want} values for shape {shape}, found {found}")
    if found > want:
        raise MLHWError(f"{path}: {found - want} bytes after the data: expected {want} values for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, count=want, offset=head).reshape(dims)


def _check_labels(path: Path, y: np.ndarray, what: str = "label") -> None:
    bad = np.flatnonzero((y < 0) | (y >= N_CLASSES))
    if bad.size:
        i = int(bad[0])
        more = f" ({bad.size} labels are)" if bad.size > 1 else ""
        raise MLHWError(f"{path}: {what} {y[i]} at index {i} is outside 0..{N_CLASSES - 1}{more}")


def _read_mnist_images(path: Path) -> np.ndarray:
    x = read_idx(path, ndim=3)
    if x.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise MLHWError(f"{path}: images are {x.shape[1]}x{x.shape[2]}, expected {MNIST_SIDE}x{MNIST_SIDE}")
    if len(x) == 0:
        raise MLHWError(f"{path}: holds no images")
    return x


def _read_mnist_labels(path: Path) -> np.ndarray:
    y = read_idx(path, ndim=1)
    _check_labels(path, y)
    return y


def _describe(obj) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)}"
    return f"a {type(obj).__name__}"


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global that no data file needs (os.system, builtins.eval, ...): refused unused."""

    def __init__(self, module: str, name: str):
        qualname = f"{module}.{name}"
        # STACK_GLOBAL's names are any strings: keep the message one short line
        self.qualname = qualname if qualname.isprintable() and len(qualname) <= 120 else ascii(qualname[:120])
        super().__init__(f"refers to {self.qualname}")


def _refused(path: Path, err: _RefusedGlobal) -> MLHWError:
    return MLHWError(f"{path}: refers to {err.qualname}, which a data file has no business with")


def _numpy_internal(submodule: str, name: str):
    """numpy's pickle helpers, wherever this numpy keeps them (numpy._core since 2.0, numpy.core before; a
    pickle names the one of the numpy that wrote it, and numpy 2 warns on some numpy.core names)."""
    for package in ("numpy._core", "numpy.core"):
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
    raise pickle.UnpicklingError(f"this numpy has no {submodule}.{name}")


def _latin1_bytes(text, encoding="utf-8"):
    """`_codecs.encode` as Python 3 pickles bytes in protocols 0-2 (encode(text, 'latin1')), and only so."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode of a {type(text).__name__} to {encoding!r}, not bytes as latin1")
    return text.encode("latin1")


# Every global a real data file needs: numpy arrays (_reconstruct, ndarray and dtype; _frombuffer in protocol 5),
# numpy scalars (labels written as a list of np.int64) and bytes as protocols 0-2 write them under Python 3.
_PICKLE_GLOBALS: dict[tuple[str, str], Callable[[], object]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_bytes,
    ("builtins", "bytes"): lambda: bytes,  # b"" in protocols 0-2
    ("__builtin__", "bytes"): lambda: bytes,  # the same, as protocol 2 names it for Python 2
    **{
        (f"{package}.{submodule}", name): functools.partial(_numpy_internal, submodule, name)
        for package in ("numpy.core", "numpy._core")
        for submodule, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
    },
}


class _DataUnpickler(pickle.Unpickler):
    """pickle.load for files the user gives: a global outside `_PICKLE_GLOBALS` raises `_RefusedGlobal` before
    it is imported, let alone called (pickle.load runs whatever a file's __reduce__ names)."""

    def find_class(self, module: str, name: str):
        found = _PICKLE_GLOBALS.get((module, name))
        if found is None:
            raise _RefusedGlobal(module, name)
        return found()


def _unpickle(f) -> object:
    """One pickle from a binary file, Python 2's included (its str read as latin1, as numpy's arrays need)."""
    return _DataUnpickler(f, encoding="latin1").load()


def read_mnist_pickle(path: str | Path) -> tuple[Split, Split, Split]:
    """Nielsen's mnist.pkl.gz: ((train_x, train_y), (val_x, val_y), (test_x, test_y)), x float
    (N, 784) already in [0, 1], y integers 0..9. Returns (train, validation, test)."""
    path = Path(path)
    raw = _read_bytes(path)
    try:
        obj = _unpickle(io.BytesIO(raw))
    except _RefusedGlobal as err:
        raise _refused(path, err) from None
    except Exception as err:  # a broken pickle raises almost anything
        raise MLHWError(f"{path}: not a readable pickle ({_why(err)})") from None
    del raw
    pairs = isinstance(obj, (tuple, list)) and len(obj) == 3
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in obj):
        raise MLHWError(f"{path}: holds {_describe(obj)}, expected a (train, validation, test) tuple of (x, y) pairs")
    return tuple(_pickle_split(path, part, *pair) for part, pair in zip(("train", "validation", "test"), obj))


def _pickle_split(path: Path, part: str, x, y) -> Split:
    try:
        x, y = np.asarray(x), np.asarray(y)
    except (ValueError, TypeError) as err:
        raise MLHWError(f"{path}: {part} images or labels are not arrays ({_why(err)})") from None
    if x.dtype.kind != "f":
        raise MLHWError(f"{path}: {part} images have dtype {x.dtype}, expected floats in [0, 1]")
    side = (MNIST_SIDE, MNIST_SIDE)
    if not ((x.ndim == 2 and x.shape[1] == MNIST_SIDE**2) or (x.ndim == 3 and x.shape[1:] == side)):
        raise MLHWError(f"{path}: {part} images have shape {x.shape}, expected (N, {MNIST_SIDE**2})")
    if len(x) == 0:
        raise MLHWError(f"{path}: the {part} split holds no images")
    lo, hi = x.min(), x.max()
    if not (lo >= 0 and hi <= 1):  # also catches NaN
        raise MLHWError(f"{path}: {part} pixels are outside [0, 1] (min {lo:g}, max {hi:g})")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise MLHWError(f"{path}: {part} labels have dtype {y.dtype} and shape {y.shape}, expected N integers")
    if len(y) != len(x):
        raise MLHWError(f"{path}: the {part} split has {len(x)} images but {len(y)} labels")
    _check_labels(path, y, f"{part} label")
    return Split(np.asarray(x, np.float32).reshape(-1, 1, MNIST_SIDE, MNIST_SIDE), np.asarray(y, np.int64))


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch: a pickled dict with `data` (N, 3072) uint8, row-major 3x32x32, and
    `labels`, N integers 0..9. Returns x (N, 3, 32, 32) uint8 and y (N,) int64."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = _unpickle(f)
    except OSError as err:
        raise MLHWError(f"{path}: cannot be read ({err.strerror or _why(err)})") from None
    except _RefusedGlobal as err:
        raise _refused(path, err) from None
    except Exception as err:  # a broken pickle raises almost anything
        raise MLHWError(f"{path}: not a CIFAR-10 python batch: not a readable pickle ({_why(err)})") from None
    if not isinstance(d, dict):
        raise MLHWError(f"{path}: not a CIFAR-10 python batch: holds {_describe(d)}, expected a dict")
    # a batch pickled by Python 3 with bytes keys (b'data') is the same batch
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        keys = ", ".join(sorted(repr(k) for k in d)[:8]) or "none"
        raise MLHWError(f"{path}: not a CIFAR-10 python batch: no {' or '.join(map(repr, missing))} (keys: {keys})")
    x, labels = d["data"], d["labels"]
    if not isinstance(x, np.ndarray):
        raise MLHWError(f"{path}: 'data' is {_describe(x)}, expected a uint8 numpy array (N, {CIFAR_PIXELS})")
    if x.dtype != np.uint8:
        raise MLHWError(f"{path}: 'data' has dtype {x.dtype}, expected uint8")
    if x.ndim != 2 or x.shape[1] != CIFAR_PIXELS:
        raise MLHWError(f"{path}: 'data' has shape {x.shape}, expected (N, {CIFAR_PIXELS}): N images of 3x32x32")
    if len(x) == 0:
        raise MLHWError(f"{path}: holds no images")
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise MLHWError(f"{path}: 'labels' is {_describe(labels)}, expected a list of integers")
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError) as err:
        raise MLHWError(f"{path}: 'labels' is not a list of integers ({_why(err)})") from None
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise MLHWError(f"{path}: 'labels' has dtype {y.dtype} and shape {y.shape}, expected a list of integers")
    if len(y) != len(x):
        raise MLHWError(f"{path}: {len(x)} images in 'data' but {len(y)} 'labels'")
    _check_labels(path, y)
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


# --- where a dataset comes from: files, and their (size, mtime) stamps ---------------------------


def _stamps(paths: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((str(Path(p).resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _source_key(name: str, stamps, options: str) -> str:
    return json.dumps([name, options, stamps])


def _stamped(
    name: str,
    paths: Sequence[Path] | None,
    options: str,
    read: Callable[[], Dataset],
    md5s: Callable[[Dataset], list[str] | None] | None = None,
) -> Dataset:
    """Read a dataset and record its origin, unless its files changed while being read. `md5s`: the MD5s of the
    files' content (see `OFFICIAL_MD5`), which say whether they are the official files (`data.files`); their
    digest is cached by the files' stamps, so unchanged files are hashed once."""
    try:
        before = _stamps(paths) if paths else None
    except OSError:
        before = None
    data = read()
    key = digest = computed = None
    if md5s is not None:
        key = fpcache.key(_source_key(name, before, options), (FILES_STEP,)) if before else None
        digest = fpcache.get(key) if key else None
        if digest is None:
            digest = computed = _files_digest(md5s(data))
    try:
        after = _stamps(paths) if before else None
    except OSError:
        after = None
    if before is not None and before == after:
        data._origin = (_source_key(name, before, options), ())
        if key is not None and computed is not None:
            fpcache.put(key, computed, data._origin[0])
    if md5s is not None:  # files that changed while being read are no known files
        official = digest == _files_digest(OFFICIAL_MD5[name]) and before is not None and before == after
        data.files = OFFICIAL if official else NOT_OFFICIAL
    return data


# --- the official files, recognised by their content ----------------------------------------------

OFFICIAL = "official"  # the tag mlhw.dataset_files of a run on the official files (their content: see below)
NOT_OFFICIAL = "not the official files"  # files in the official format with other content: synthetic, a benchmark's
EMBEDDED = "embedded"  # digits: scikit-learn's bundled set, which is what it is
DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "digits": "digits"}
FILES_STEP = "official files digest"  # the fingerprint cache's key for a files' verdict (no derivation step)

# The MD5s of the official MNIST idx files once decompressed (yann.lecun.com's, as widely published; the copies in
# /work/shared/data/mnist have them): the key, as a mirror may compress them otherwise (those shared copies were
# re-compressed in 2023 and their .gz MD5s are not torchvision's) and a user may hold them uncompressed.
MNIST_IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# torchvision's MD5s of the official .gz (torchvision/datasets/mnist.py): a .gz that has one is official as it is.
MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
# torchvision's MD5s of the official CIFAR-10 python batches (torchvision/datasets/cifar.py).
CIFAR_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


def _files_digest(md5s: Sequence[str] | None) -> str:
    """16 hex digits standing for a list of file MD5s (what the fingerprint cache stores); None: not checkable."""
    return hashlib.sha256(json.dumps(list(md5s or [])).encode()).hexdigest()[:16]


def _file_md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def _mnist_content_md5s(data: Dataset, scale: int | None = None) -> list[str] | None:
    """The MD5s the four idx files holding `data` would have, decompressed (train = train + validation, in
    order). `scale`: float pixels are byte / scale (Nielsen's pickle: 256); None when they are not."""
    out = []
    for splits in ([data.train] + ([data.val] if data.val is not None else []), [data.test]):
        n = sum(len(s) for s in splits)
        hx = hashlib.md5(struct.pack(">HBB3I", 0, 0x08, 3, n, MNIST_SIDE, MNIST_SIDE), usedforsecurity=False)
        hy = hashlib.md5(struct.pack(">HBBI", 0, 0x08, 1, n), usedforsecurity=False)
        for s in splits:
            x = s.x
            if scale is not None:
                x = x * np.float32(scale)  # exact for byte / 256 in float32
                if not (np.array_equal(x, np.floor(x)) and x.min() >= 0 and x.max() <= 255):
                    return None
            hx.update(np.ascontiguousarray(x.astype(np.uint8, copy=False)).tobytes())
            hy.update(s.y.astype(np.uint8).tobytes())
        out += [hx.hexdigest(), hy.hexdigest()]
    return out


def _mnist_idx_md5s(paths: Sequence[Path], data: Dataset) -> list[str]:
    """Per idx file: its official MD5 when it is torchvision's .gz, else the MD5 of its decompressed content."""
    decoded: list[str] | None = None
    out = []
    for i, (path, name) in enumerate(zip(paths, MNIST_FILES.values())):
        if path.suffix == ".gz" and _file_md5(path) == MNIST_GZ_MD5[name]:
            out.append(MNIST_IDX_MD5[name])
            continue
        decoded = decoded or _mnist_content_md5s(data)
        out.append(decoded[i])
    return out


OFFICIAL_MD5 = {"mnist": list(MNIST_IDX_MD5.values()), "cifar10": list(CIFAR_MD5.values())}


def files_note(name: str, files: str | None) -> str:
    """' (not the official MNIST files)' for a dataset read from files that are not the official ones, '' otherwise:
    the official files, digits, or not known (a run logged before mlhw told them apart). `name` may be a part of a
    dataset ('mnist-3v8')."""
    if files != NOT_OFFICIAL:
        return ""
    base = name.split("-")[0]
    return f" (not the official {DATASET_TITLES.get(base, base)} files)"


# --- digits: the embedded default -------------------------------------------------------------


def _digits_source() -> tuple[list[Path] | None, str]:
    """scikit-learn's digits.csv.gz (found without importing scikit-learn) and its version."""
    import importlib.metadata
    import importlib.util

    try:
        spec = importlib.util.find_spec("sklearn")
        version = importlib.metadata.version("scikit-learn")
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        return None, ""
    if spec is None or not spec.submodule_search_locations:
        return None, ""
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    return ([path] if path.is_file() else None), f"scikit-learn {version}"


def load_digits_data() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 real handwritten digits), pixels 0..16 -> [0, 1].
    Fixed split: a seed-0 permutation, the last 500 images are the test set."""
    paths, version = _digits_source()
    return _stamped("digits", paths, version, lambda: _read_digits(paths[0] if paths else None))


def _digits_arrays(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """load_digits()'s data and target. Its CSV read as load_digits reads it (64 pixel columns and the label)
    when it is found: importing scikit-learn for it costs ~2 s of a reproduction's start-up on a 2-core CPU
    (scipy.stats and the rest come with it), reading the file ~20 ms."""
    if path is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data, d.target
    import gzip

    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    return raw[:, :-1], raw[:, -1].astype(int, copy=False)


def _read_digits(path: Path | None = None) -> Dataset:
    pixels, target = _digits_arrays(path)
    x = (pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = target.astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(y))
    tr, te = perm[:-DIGITS_TEST_SIZE], perm[-DIGITS_TEST_SIZE:]
    return Dataset(
        "digits",
        Split(x[tr], y[tr]),
        Split(x[te], y[te]),
        None,
        10,
        "sklearn.datasets.load_digits (embedded, 8x8)",
        EMBEDDED,
    )


# --- MNIST: idx files (torchvision's layout, or mirrors' names) or Nielsen's mnist.pkl.gz ---------

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MNIST_PICKLE = "mnist.pkl.gz"


def _mnist_folders(data_dir: Path) -> tuple[Path, Path]:
    return data_dir, data_dir / "MNIST" / "raw"


def _find(data_dir: Path, name: str) -> Path | None:
    """`name` or `name.gz`, also as popular mirrors name it (`train-images.idx3-ubyte`)."""
    for folder in _mnist_folders(data_dir):
        for base in (name, name.replace("-idx", ".idx", 1)):
            for candidate in (folder / base, folder / f"{base}.gz"):
                if candidate.is_file():
                    return candidate
    return None


def _mnist_source(data_dir: Path, pickle_ok: bool = True) -> tuple[str, list[Path]] | None:
    """("pickle", [mnist.pkl.gz]) or ("idx", the 4 idx files), or None when neither is complete."""
    pkl = data_dir / MNIST_PICKLE
    if pickle_ok and pkl.is_file():
        return "pickle", [pkl]
    paths = [_find(data_dir, n) for n in MNIST_FILES.values()]
    return ("idx", paths) if all(p is not None for p in paths) else None


def _mnist_not_found(data_dir: Path, download_error: str | None = None) -> DataNotFound:
    top, raw = _mnist_folders(data_dir)
    missing = [n for n in MNIST_FILES.values() if _find(data_dir, n) is None]
    partial = f" (missing {', '.join(missing)})" if len(missing) < len(MNIST_FILES) else ""
    failed = f"; the download failed ({download_error})" if download_error else ""
    return DataNotFound(
        f"MNIST not found in {top}/ nor {raw}/: looked for {MNIST_PICKLE} or the 4 idx files "
        f"{', '.join(MNIST_FILES.values())} (raw or .gz, also named with a dot before idx, e.g. "
        f"train-images.idx3-ubyte){partial}{failed}: pass --data-dir DIR where they are, or --download when online"
    )


def _mnist_from_idx(paths: list[Path]) -> Dataset:
    px, py, qx, qy = paths
    arr = {}
    for part, (xp, yp) in (("train", (px, py)), ("test", (qx, qy))):
        x, y = _read_mnist_images(xp), _read_mnist_labels(yp)
        if len(x) != len(y):
            raise MLHWError(f"{xp}: {len(x)} images but {yp} holds {len(y)} labels")
        arr[part] = (x[:, None], y.astype(np.int64))
    (tx, ty), (sx, sy) = arr["train"], arr["test"]
    pool = min(MNIST_TRAIN_POOL, len(ty))
    return Dataset(
        "mnist",
        Split(tx[:pool], ty[:pool]),
        Split(sx, sy),
        Split(tx[pool:], ty[pool:]) if pool < len(ty) else None,
        10,
        f"MNIST idx files in {px.parent}",
    )


def _mnist_from_pickle(path: Path) -> Dataset:
    train, val, test = read_mnist_pickle(path)
    return Dataset("mnist", train, test, val, 10, f"Nielsen pickle {path}")


def load_mnist(data_dir: str | Path = "data", download: bool | None = None) -> Dataset:
    """MNIST mapped onto the assignment: train = train[:50000], val = train[50000:], test = test.
    Reads `mnist.pkl.gz` when present, else the idx files; downloads through torchvision when
    `download` is True, or when it is None (auto) and the files are absent."""
    data_dir = Path(data_dir)
    found = None if download else _mnist_source(data_dir)
    if found is None and download is not False:
        _download(_fetch_mnist, "MNIST", data_dir, lambda why: _mnist_not_found(data_dir, why))
        found = _mnist_source(data_dir, pickle_ok=False)
    if found is None:
        raise _mnist_not_found(data_dir)
    kind, paths = found
    if kind == "pickle":  # Nielsen's: byte / 256 of the official content, which its MD5s recognise
        pickled = lambda d: _mnist_content_md5s(d, 256)  # noqa: E731
        return _stamped("mnist", paths, kind, lambda: _mnist_from_pickle(paths[0]), pickled)
    return _stamped("mnist", paths, kind, lambda: _mnist_from_idx(paths), lambda d: _mnist_idx_md5s(paths, d))


def _fetch_mnist(data_dir: Path) -> None:
    from torchvision.datasets import MNIST  # checks the official archives' MD5 on download

    for train in (True, False):
        MNIST(str(data_dir), train=train, download=True)


def _fetch_cifar10(data_dir: Path) -> None:
    from torchvision.datasets import CIFAR10

    CIFAR10(str(data_dir), train=True, download=True)


def _download(fetch, name: str, data_dir: Path, not_found: Callable[[str], DataNotFound] | None = None) -> None:
    created = [p for p in (data_dir, *data_dir.parents) if not p.exists()]
    before = {Path(r) for r, _, _ in os.walk(data_dir)} if data_dir.is_dir() else set()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fetch(data_dir)
    except Exception as err:  # network errors come in many types; the message says what to do
        _remove_empty(data_dir, created, before)
        reason = str(err).splitlines()[0][:120] if str(err).strip() else type(err).__name__
        cause = getattr(err, "__cause__", None) or getattr(err, "__context__", None)
        later = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        if reason.rstrip().endswith(":") and later:  # torchvision: "Error downloading X:\nTried URL, got:\n<why>"
            reason = f"{reason.rstrip()} {later[-1][:120]}"
        elif reason.rstrip().endswith(":") and cause is not None:
            reason = f"{reason.rstrip()} {str(cause).splitlines()[0][:120] or type(cause).__name__}"
        if not_found is not None:
            raise not_found(reason) from None
        # CIFAR-10's words are built inside the raise (load_cifar10's code is its runs' identity, error messages
        # not): what it says offline, and that an explicit --download failed beside files already complete
        raise DataNotFound(
            f"""{
                f"{name}: --download failed ({reason}); {data_dir / CIFAR_FOLDER}/ holds all six batches already: "
                "leave out --download to read them"
                if name == "CIFAR-10" and all((data_dir / CIFAR_FOLDER / n).is_file() for n in CIFAR_BATCHES)
                else f"{name} not found in {data_dir / CIFAR_FOLDER}/ (need data_batch_1..5 and test_batch; missing "
                f"{', '.join(n for n in CIFAR_BATCHES if not (data_dir / CIFAR_FOLDER / n).is_file())})"
                if name == "CIFAR-10"
                else f"{name} is not in {data_dir}/"
            }{
                ""
                if name == "CIFAR-10" and all((data_dir / CIFAR_FOLDER / n).is_file() for n in CIFAR_BATCHES)
                else f"; the download failed ({reason}): pass --data-dir DIR holding "
                f"{CIFAR_FOLDER + '/' if name == 'CIFAR-10' else 'the files'}, or retry --download when online"
            }{
                f"; {data_dir} holds the batches itself: pass its parent, {data_dir.resolve().parent}"
                if name == "CIFAR-10" and any((data_dir / n).is_file() for n in CIFAR_BATCHES)
                else ""
            }"""
        ) from None


def _remove_empty(data_dir: Path, created: list[Path], before: set[Path]) -> None:
    """A failed download leaves nothing behind: the empty folders it made (torchvision's MNIST/raw too) go."""
    for root, _, _ in os.walk(data_dir, topdown=False):
        if Path(root) not in before:
            with contextlib.suppress(OSError):
                Path(root).rmdir()  # only if empty
    for p in created:
        with contextlib.suppress(OSError):
            p.rmdir()


# --- CIFAR-10: the python batches (cifar-10-batches-py) ---------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def _cifar_paths(data_dir: Path) -> list[Path]:
    return [data_dir / CIFAR_FOLDER / n for n in CIFAR_BATCHES]


def load_cifar10(
    data_dir: str | Path = "data", download: bool | None = None, val_size: int = 5_000, split_seed: int = 1
) -> Dataset:
    """CIFAR-10 as in the assignment: a seeded shuffle (seed 1) of the 50,000 training images, the
    first 5,000 are the validation set, the rest the training pool; test = the 10,000 test images."""
    data_dir = Path(data_dir)
    folder = data_dir / CIFAR_FOLDER
    paths = _cifar_paths(data_dir)
    have = lambda: all(p.is_file() for p in paths)  # noqa: E731
    if download or (download is None and not have()):
        _download(_fetch_cifar10, "CIFAR-10", data_dir)
    if not have():
        missing = ", ".join(p.name for p in paths if not p.is_file())
        raise DataNotFound(  # (said, not searched for: a loader change would make every run a new one, AlexNet's too)
            f"CIFAR-10 not found in {folder}/ (need data_batch_1..5 and test_batch; missing {missing}): "
            f"pass --data-dir DIR holding {CIFAR_FOLDER}/, or --download when online"
            f"""{
                f"; {data_dir} holds the batches itself: pass its parent, {data_dir.resolve().parent}"
                if any((data_dir / n).is_file() for n in CIFAR_BATCHES)
                else ""
            }"""
        )

    def read() -> Dataset:
        parts = [read_cifar_batch(p) for p in paths[:5]]
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        tx, ty = read_cifar_batch(paths[5])
        if not 0 < val_size < len(y):
            raise MLHWError(
                f"{folder}: data_batch_1..5 hold {len(y):,} training images, too few for CIFAR-10's "
                f"{val_size:,}-image validation split: it needs at least {val_size + 2:,}, 2 left to train on (the "
                f"official files hold 50,000; the split is the assignment's and no option shrinks it: --train-fraction "
                f"takes a share of the images left after it)"
            )
        perm = np.random.RandomState(split_seed).permutation(len(y))
        val, pool = perm[:val_size], perm[val_size:]
        return Dataset(
            "cifar10",
            Split(x[pool], y[pool]),
            Split(tx, ty),
            Split(x[val], y[val]),
            10,
            f"CIFAR-10 python batches in {folder}"
            + (
                ""
                if (len(y), len(ty)) == (50_000, 10_000)
                else f" (not the official files: {len(y):,} training and {len(ty):,} test images, not 50,000, 10,000)"
            ),
        )

    md5s = lambda _: [_file_md5(p) for p in paths]  # noqa: E731
    return _stamped("cifar10", paths, _cifar_options(val_size, split_seed), read, md5s)


def _cifar_options(val_size: int, split_seed: int) -> str:
    return f"val_size={val_size} split_seed={split_seed}"


DATASETS = {"digits": lambda data_dir, download: load_digits_data(), "mnist": load_mnist, "cifar10": load_cifar10}


def load(name: str, data_dir: str | Path = "data", download: bool | None = None) -> Dataset:
    """A dataset by name, read strictly (see the readers above): MLHWError or DataNotFound otherwise.

    Files this process has read already, unchanged since (path, size, mtime), are not read again: the dataset
    read then is returned (datasets are never modified). `reproduce` checks the files before any run exists
    and its first run then reads them: once, not twice (0.3 s for MNIST or CIFAR-10)."""
    if name not in DATASETS:
        raise MLHWError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if name != "digits" and Path(data_dir).exists() and not Path(data_dir).is_dir():  # not "MNIST not found in it"
        raise MLHWError(f"--data-dir {data_dir} is a file, not a folder (the one holding {name}'s files)")
    key = _loaded_key(name, Path(data_dir), download)
    if key is not None and key in _last_loaded:
        return _last_loaded[key]
    data = DATASETS[name](data_dir, download)
    if data._origin is not None:  # read from files that did not change while being read
        for other in [k for k, d in _last_loaded.items() if d.name == data.name or k == data._origin[0]]:
            del _last_loaded[other]  # one dataset per name: a process holds at most one copy of each
        _last_loaded[data._origin[0]] = data
    return data


def _loaded_key(name: str, data_dir: Path, download: bool | None) -> str | None:
    """The source key of what `load` would read now, or None when that is not known without reading."""
    source = _source_of(name, data_dir, download)
    if source is None:
        return None
    try:
        return _source_key(name, _stamps(source[0]), source[1])
    except OSError:
        return None


# --- fingerprints without loading (the cache itself: mlhw.fingerprint_cache) ---------------------

_last_loaded: dict[str, Dataset] = {}  # source key -> the dataset `load` read from it last (one per dataset name)


def _source_of(name: str, data_dir: Path, download: bool | None) -> tuple[list[Path], str] | None:
    """The files `load(name, data_dir, download)` would read and its options, or None when that is
    not known without loading (a download is asked for, or the files are absent)."""
    if download is True:
        return None
    if name == "digits":
        paths, options = _digits_source()
        return (paths, options) if paths else None
    if name == "mnist":
        found = _mnist_source(data_dir)
        return (found[1], found[0]) if found else None
    if name == "cifar10":
        paths = _cifar_paths(data_dir)
        return (paths, _cifar_options(5_000, 1)) if all(p.is_file() for p in paths) else None
    return None


def files_present(names, data_dir: str | Path = "data") -> bool:
    """Whether the files of every dataset in `names` are where `load` would read them (found, not read)."""
    return all(_source_of(n, Path(data_dir), False) is not None for n in names)


def dataset_fingerprint(
    name: str, data_dir: str | Path = "data", download: bool | None = False, steps: Sequence[Step | str] = ()
) -> str:
    """The fingerprint of `derive(load(name, data_dir, download), steps)`, from the cache when the
    dataset's files (path, size, mtime) are unchanged since it was last computed: then nothing is
    read, and neither torch nor scikit-learn is imported. On a miss the dataset is loaded (numpy
    only), strictly checked, hashed and cached. Raises what `load` and `derive` raise."""
    norm = _norm_steps(steps)
    key = _loaded_key(name, Path(data_dir), download) if name in DATASETS else None
    if key is not None:
        fp = fpcache.get(fpcache.key(key, norm))
        if fp is not None:
            return fp
    return derive(load(name, data_dir, download), norm).fingerprint()  # misses in a row read the files once


def check_dataset(name: str, data_dir: str | Path = "data", download: bool | None = False) -> str:
    """Pre-flight validation of a dataset's files, before any run exists: reads them with the strict
    readers and returns the dataset's fingerprint. Files unchanged since they last passed (the
    fingerprint cache knows them) are not read again. Raises DataNotFound when the files are absent
    (and `download` does not fetch them), MLHWError with one line naming the file otherwise."""
    return dataset_fingerprint(name, data_dir, download)


def channel_stats(data: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation constants: CIFAR-10 uses the assignment's; others, the training set's own."""
    if data.name == "cifar10":
        return CIFAR_MEAN, CIFAR_STD
    x = unit_float(data.train.x)
    return tuple(x.mean(axis=(0, 2, 3)).tolist()), tuple(np.maximum(x.std(axis=(0, 2, 3)), 1e-6).tolist())
