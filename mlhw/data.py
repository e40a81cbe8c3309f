"""The data layer, shared by every part: embedded digits, MNIST and CIFAR-10, as arrays.

Every loader returns a `Dataset` of numpy arrays: images as (N, C, H, W), either uint8 in
0..255 or float32 already in [0, 1], and int64 labels. Models turn them into device tensors
once (`to_tensor`), and batches are index slices of those tensors: no DataLoader anywhere.

Real datasets are read from files in their official formats by the small readers below;
torchvision is used only to download (and checksum) the official archives.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlhw.errors import DataNotFound, MLHWError

DIGITS_TEST_SIZE = 500  # of load_digits' 1,797 images; the rest (1,297) is the training pool
DIGITS_SPLIT_SEED = 0  # fixed, so that every seed of every run is scored on the same test images
MNIST_TRAIN_POOL = 50_000  # train[:50000]; train[50000:] is the validation set (Nielsen's split)


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
    notes: list[str] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    @property
    def n_features(self) -> int:
        return int(np.prod(self.image_shape))

    def fingerprint(self) -> str:
        """Content hash of every split: two runs with equal fingerprints saw the same numbers."""
        if self._fingerprint is not None:  # hashing CIFAR-10 takes a while; a Dataset never changes
            return self._fingerprint
        h = hashlib.sha256(self.name.encode())
        for split in (self.train, self.val, self.test):
            if split is not None:
                h.update(np.ascontiguousarray(split.x).tobytes())
                h.update(np.ascontiguousarray(split.y).tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def sizes(self) -> dict[str, int]:
        out = {"train": len(self.train), "test": len(self.test)}
        if self.val is not None:
            out["val"] = len(self.val)
        return out


def unit_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]; float pixels are already there."""
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)


def subset(data: Dataset, train_size: int | None, test_size: int | None, seed: int) -> Dataset:
    """The assignment's subsets: `np.random.seed(seed)`, then `choice(..., replace=False)` on the
    training pool and then on the test set (same draws as the skeleton, without touching numpy's
    global generator)."""
    rng = np.random.RandomState(seed)
    train, test = data.train, data.test
    for name, size, pool in (("train-size", train_size, train), ("test-size", test_size, test)):
        if size is not None and size > len(pool):
            raise MLHWError(f"--{name} {size} is larger than {data.name}'s {name.split('-')[0]} pool ({len(pool)})")
    if train_size is not None:
        train = train.take(rng.choice(len(train), train_size, replace=False))
    if test_size is not None:
        test = test.take(rng.choice(len(test), test_size, replace=False))
    return Dataset(data.name, train, test, data.val, data.n_classes, data.source, list(data.notes))


# --- digits: the embedded default -------------------------------------------------------------


def load_digits_data() -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 real handwritten digits), pixels 0..16 -> [0, 1].
    Fixed split: a seed-0 permutation, the last 500 images are the test set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(y))
    tr, te = perm[:-DIGITS_TEST_SIZE], perm[-DIGITS_TEST_SIZE:]
    return Dataset(
        "digits",
        Split(x[tr], y[tr]),
        Split(x[te], y[te]),
        None,
        10,
        "sklearn.datasets.load_digits (embedded, 8x8)",
        ["ran on scikit-learn's 8x8 digits, not MNIST"],
    )


# --- MNIST: idx files (torchvision's layout) or Nielsen's mnist.pkl.gz --------------------------

MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (plain or .gz): magic 0x0000 | dtype 0x08 (uint8) | ndim, then big-endian
    uint32 dims, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise MLHWError(f"{path}: cannot be read ({err})") from None
    if len(raw) < 4:
        raise MLHWError(f"{path}: too short to be an idx file")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise MLHWError(f"{path}: not a uint8 idx file (magic {raw[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise MLHWError(f"{path}: expected {int(np.prod(dims))} values for shape {dims}, found {data.size}")
    return data.reshape(dims)


def _find(data_dir: Path, name: str) -> Path | None:
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _mnist_from_idx(data_dir: Path) -> Dataset | None:
    paths = {k: _find(data_dir, v) for k, v in MNIST_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    arr = {k: read_idx(p) for k, p in paths.items()}
    for part in ("train", "test"):
        if len(arr[f"{part}_x"]) != len(arr[f"{part}_y"]):
            raise MLHWError(f"{paths[part + '_x']}: {len(arr[part + '_x'])} images but {len(arr[part + '_y'])} labels")
    tx, ty = arr["train_x"][:, None], arr["train_y"].astype(np.int64)
    pool = min(MNIST_TRAIN_POOL, len(ty))
    return Dataset(
        "mnist",
        Split(tx[:pool], ty[:pool]),
        Split(arr["test_x"][:, None], arr["test_y"].astype(np.int64)),
        Split(tx[pool:], ty[pool:]) if pool < len(ty) else None,
        10,
        f"MNIST idx files in {paths['train_x'].parent}",
    )


def _mnist_from_pickle(path: Path) -> Dataset:
    """Nielsen's mnist.pkl.gz: ((train_x, train_y), (val_x, val_y), (test_x, test_y)), x float32
    (N, 784) already in [0, 1]."""
    with gzip.open(path, "rb") as f:
        train, val, test = pickle.load(f, encoding="latin1")

    def split(pair):
        x, y = pair
        return Split(np.asarray(x, np.float32).reshape(-1, 1, 28, 28), np.asarray(y, np.int64))

    return Dataset("mnist", split(train), split(test), split(val), 10, f"Nielsen pickle {path}")


def load_mnist(data_dir: str | Path = "data", download: bool | None = None) -> Dataset:
    """MNIST mapped onto the assignment: train = train[:50000], val = train[50000:], test = test.
    Reads `mnist.pkl.gz` when present, else the idx files; downloads through torchvision when
    `download` is True, or when it is None (auto) and the files are absent."""
    data_dir = Path(data_dir)
    pkl = data_dir / "mnist.pkl.gz"
    if pkl.is_file() and not download:
        return _mnist_from_pickle(pkl)
    found = None if download else _mnist_from_idx(data_dir)
    if found is None and download is not False:
        _download(_fetch_mnist, "MNIST", data_dir)
        found = _mnist_from_idx(data_dir)
    if found is None:
        raise DataNotFound(
            f"MNIST not found in {data_dir}/ (need mnist.pkl.gz or the 4 idx files): "
            f"pass --data-dir DIR where they are, or --download when online"
        )
    return found


def _fetch_mnist(data_dir: Path) -> None:
    from torchvision.datasets import MNIST  # checks the official archives' MD5 on download

    for train in (True, False):
        MNIST(str(data_dir), train=train, download=True)


def _fetch_cifar10(data_dir: Path) -> None:
    from torchvision.datasets import CIFAR10

    CIFAR10(str(data_dir), train=True, download=True)


def _download(fetch, name: str, data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fetch(data_dir)
    except Exception as err:  # network errors come in many types; the message says what to do
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DataNotFound(
            f"{name} is not in {data_dir}/ and the download failed ({reason}): "
            f"pass --data-dir DIR holding the files, or retry --download when online"
        ) from None


# --- CIFAR-10: the python batches (cifar-10-batches-py) ---------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch: a pickled dict with `data` (N, 3072) uint8, row-major 3x32x32, and `labels`."""
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    try:
        x, y = np.asarray(d["data"], np.uint8), np.asarray(d["labels"], np.int64)
    except (KeyError, TypeError):
        raise MLHWError(f"{path}: not a CIFAR-10 python batch (needs 'data' and 'labels')") from None
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise MLHWError(f"{path}: expected data (N, 3072) and N labels, got {x.shape} and {len(y)}")
    return x.reshape(-1, 3, 32, 32), y


def load_cifar10(
    data_dir: str | Path = "data", download: bool | None = None, val_size: int = 5_000, split_seed: int = 1
) -> Dataset:
    """CIFAR-10 as in the assignment: a seeded shuffle (seed 1) of the 50,000 training images, the
    first 5,000 are the validation set, the rest the training pool; test = the 10,000 test images."""
    data_dir = Path(data_dir)
    folder = data_dir / CIFAR_FOLDER
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    have = lambda: all((folder / n).is_file() for n in names)  # noqa: E731
    if download or (download is None and not have()):
        _download(_fetch_cifar10, "CIFAR-10", data_dir)
    if not have():
        raise DataNotFound(
            f"CIFAR-10 not found in {folder}/ (need data_batch_1..5 and test_batch): "
            f"pass --data-dir DIR holding {CIFAR_FOLDER}/, or --download when online"
        )
    parts = [read_cifar_batch(folder / n) for n in names[:5]]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    tx, ty = read_cifar_batch(folder / "test_batch")
    if not 0 < val_size < len(y):
        raise MLHWError(f"validation size {val_size} must be between 1 and {len(y) - 1}")
    perm = np.random.RandomState(split_seed).permutation(len(y))
    val, pool = perm[:val_size], perm[val_size:]
    return Dataset(
        "cifar10",
        Split(x[pool], y[pool]),
        Split(tx, ty),
        Split(x[val], y[val]),
        10,
        f"CIFAR-10 python batches in {folder}",
    )


DATASETS = {"digits": lambda data_dir, download: load_digits_data(), "mnist": load_mnist, "cifar10": load_cifar10}


def load(name: str, data_dir: str | Path = "data", download: bool | None = None) -> Dataset:
    if name not in DATASETS:
        raise MLHWError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name](data_dir, download)


def to_tensor(x: np.ndarray, device, dtype=None):
    """One host-to-device copy of a whole split; batches are index slices of the result."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    return t if dtype is None else t.to(dtype)


def with_validation(data: Dataset, fraction: float = 0.1, split_seed: int = 1) -> Dataset:
    """Give a dataset without a validation split one the way the assignment makes CIFAR-10's: a
    seeded shuffle (seed 1) of the training pool, the first `fraction` of it becomes validation."""
    if data.val is not None:
        return data
    perm = np.random.RandomState(split_seed).permutation(len(data.train))
    n_val = max(1, int(round(fraction * len(perm))))
    return Dataset(
        data.name,
        data.train.take(perm[n_val:]),
        data.test,
        data.train.take(perm[:n_val]),
        data.n_classes,
        data.source,
        list(data.notes),
    )


def train_fraction(data: Dataset, fraction: float) -> Dataset:
    """The first `fraction` of the (already shuffled) training pool: the same images for every
    variant and seed, so that runs differ only in what they are meant to compare."""
    if not 0 < fraction <= 1:
        raise MLHWError(f"train fraction must be in (0, 1] (got {fraction})")
    n = max(1, int(round(fraction * len(data.train))))
    return Dataset(
        data.name, data.train.take(np.arange(n)), data.test, data.val, data.n_classes, data.source, list(data.notes)
    )


def channel_stats(data: Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation constants: CIFAR-10 uses the assignment's; others, the training set's own."""
    if data.name == "cifar10":
        return CIFAR_MEAN, CIFAR_STD
    x = unit_float(data.train.x)
    return tuple(x.mean(axis=(0, 2, 3)).tolist()), tuple(np.maximum(x.std(axis=(0, 2, 3)), 1e-6).tolist())
