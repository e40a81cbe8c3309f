"""Loaders against files of known content, written in the official formats."""

import numpy as np
import pytest
from helpers import write_cifar_batches, write_idx, write_mnist_idx, write_mnist_pickle

from mlhw import data
from mlhw.errors import DataNotFound, MLHWError


@pytest.fixture(autouse=True)
def _own_fingerprint_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLHW_CACHE_DIR", str(tmp_path / "fingerprint-cache"))


def test_digits_split_is_fixed_and_scaled():
    d = data.load_digits_data()
    assert (len(d.train), len(d.test)) == (1297, 500)
    assert d.train.x.shape[1:] == (1, 8, 8) and d.train.x.dtype == np.float32
    assert d.train.x.min() == 0.0 and d.train.x.max() == 1.0
    assert d.fingerprint() == data.load_digits_data().fingerprint()
    from sklearn.datasets import load_digits

    raw = load_digits()
    # every image comes from the bundled set, pixels 0..16 scaled by 1/16, labels kept
    first = np.where((raw.data / 16.0 == d.test.x[0].reshape(-1)).all(1))[0]
    assert len(first) >= 1 and raw.target[first[0]] == d.test.y[0]


def test_digits_read_from_its_csv_equal_scikit_learns_load_digits():
    """The CSV read directly (no scikit-learn import) against load_digits itself, the oracle: every pixel and
    label, and the split made from them."""
    from sklearn.datasets import load_digits

    path = data._digits_source()[0][0]
    pixels, target = data._digits_arrays(path)
    oracle = load_digits()
    assert pixels.dtype == oracle.data.dtype and np.array_equal(pixels, oracle.data)
    assert np.array_equal(target, oracle.target) and target.dtype.kind == "i"
    direct, through = data._read_digits(path), data._read_digits(None)
    for a, b in ((direct.train, through.train), (direct.test, through.test)):
        assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and a.y.dtype == b.y.dtype


def test_loading_digits_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys; from mlhw.data import load_digits_data; load_digits_data(); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def skeleton_subset_indices(n_train, n_test, train_size, test_size):
    """The course loader's draws, transcribed (its pools: 50,000 and 10,000): each subset only when smaller
    than its pool, each after `np.random.seed(8)` (the seed is a constant there; `seed` here)."""
    tr, te = np.arange(n_train), np.arange(n_test)
    if train_size < n_train:
        np.random.seed(SEED)
        tr = np.random.choice(n_train, train_size, replace=False)
    if test_size < n_test:
        np.random.seed(SEED)
        te = np.random.choice(n_test, test_size, replace=False)
    return tr, te


SEED = 8


@pytest.mark.parametrize("train_size,test_size", [(100, 40), (300, 40), (1297, 40), (100, 500)])
def test_subset_is_the_course_loaders_seeded_choice(train_size, test_size):
    d = data.load_digits_data()
    s = data.subset(d, train_size, test_size, seed=SEED)
    tr, te = skeleton_subset_indices(len(d.train), len(d.test), train_size, test_size)
    np.testing.assert_array_equal(s.train.y, d.train.y[tr])
    np.testing.assert_array_equal(s.train.x, d.train.x[tr])
    np.testing.assert_array_equal(s.test.x, d.test.x[te])
    np.testing.assert_array_equal(s.test.y, d.test.y[te])
    assert data.subset(d, train_size, test_size, seed=9).fingerprint() != s.fingerprint()


def test_the_test_subset_does_not_depend_on_the_training_size():
    d = data.load_digits_data()
    a, b = data.subset(d, 100, 40, seed=8), data.subset(d, 1000, 40, seed=8)
    np.testing.assert_array_equal(a.test.x, b.test.x)


def test_subset_larger_than_pool_is_an_error():
    with pytest.raises(MLHWError, match="train-size 5000 is larger"):
        data.subset(data.load_digits_data(), 5000, None, 8)


@pytest.mark.parametrize("layout", ["flat-gz", "torchvision-raw"])
def test_mnist_idx_maps_onto_the_assignment_split(tmp_path, layout):
    folder = tmp_path if layout == "flat-gz" else tmp_path / "MNIST" / "raw"
    tx, ty, sx, sy = write_mnist_idx(folder, 50_010, 12, gz=(layout == "flat-gz"), side=28)
    d = data.load_mnist(tmp_path, download=False)
    assert d.sizes() == {"train": 50_000, "val": 10, "test": 12}
    np.testing.assert_array_equal(d.train.x[:, 0], tx[:50_000])
    np.testing.assert_array_equal(d.val.x[:, 0], tx[50_000:])
    np.testing.assert_array_equal(d.val.y, ty[50_000:])
    np.testing.assert_array_equal(d.test.x[:, 0], sx)
    np.testing.assert_array_equal(d.test.y, sy)
    assert d.train.x.dtype == np.uint8
    np.testing.assert_allclose(data.unit_float(d.test.x[:1]), sx[:1, None] / 255.0, rtol=1e-7)


def test_mnist_pickle_is_read_as_is(tmp_path):
    (tx, ty), (vx, vy), (sx, sy) = write_mnist_pickle(tmp_path / "mnist.pkl.gz")
    d = data.load_mnist(tmp_path, download=False)
    assert d.sizes() == {"train": 30, "val": 10, "test": 20}
    np.testing.assert_array_equal(d.train.x.reshape(30, -1), tx)
    np.testing.assert_array_equal(d.val.y, vy)
    np.testing.assert_array_equal(d.test.x.reshape(20, -1), sx)
    assert d.image_shape == (1, 28, 28)


@pytest.mark.parametrize("split_seed", [None, 7])
def test_cifar10_is_a_seeded_shuffle_of_the_five_batches_in_order_its_first_part_validation(tmp_path, split_seed):
    """The assignment's CIFAR-10 split against the batches' known content: data_batch_1..5 concatenated in that
    order, a shuffle seeded with `split_seed` (1 by default), its first val_size images the validation set and
    the rest the training pool, in the shuffle's order; test_batch whole, in its order. The batches in another
    order, another seed, or the validation set taken from the end were seen only by a pinned fingerprint."""
    batches = write_cifar_batches(tmp_path / data.CIFAR_FOLDER, per_batch=7, n_test=4)
    seed = {} if split_seed is None else {"split_seed": split_seed}
    d = data.load_cifar10(tmp_path, download=False, val_size=5, **seed)
    x = np.concatenate([b["data"] for b in batches[:5]])
    y = np.concatenate([b["labels"] for b in batches[:5]])
    perm = np.random.RandomState(1 if split_seed is None else split_seed).permutation(35)
    assert d.sizes() == {"train": 30, "val": 5, "test": 4}
    for split, rows in ((d.val, perm[:5]), (d.train, perm[5:])):
        np.testing.assert_array_equal(split.x.reshape(len(rows), -1), x[rows])
        np.testing.assert_array_equal(split.y, y[rows])
    np.testing.assert_array_equal(d.test.x.reshape(4, -1), batches[5]["data"])
    assert d.test.y.tolist() == list(batches[5]["labels"]) and d.train.y.dtype == np.int64
    # a row is the red, green and blue planes, each 32 x 32 row-major: pixel (c, i, j) is column 1024 c + 32 i + j
    assert d.train.x.shape[1:] == (3, 32, 32) and d.train.x.dtype == np.uint8
    assert d.test.x[2, 1, 5, 9] == batches[5]["data"][2, 1024 + 32 * 5 + 9]


def test_validation_and_training_fractions_round_to_the_nearest_image():
    """with_validation and train_fraction take round(fraction x n) images, not its floor: 10% of digits' 1,297
    training images is 130 for validation (129.7), which a CNN run on digits sees. Every other test used a
    fraction of n that is a whole number, so a floor passed them all."""
    n = 47  # 10% is 4.7 images: 5, a floor gives 4
    pool = data.Split(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n) % 10)
    base = data.Dataset("digits", pool, data.Split(pool.x[:3], pool.y[:3]))
    assert len(data.with_validation(base, 0.1).val) == 5 and len(data.with_validation(base, 0.1).train) == 42
    assert len(data.train_fraction(base, 0.1).train) == 5 and len(data.train_fraction(base, 0.13).train) == 6
    assert len(data.with_validation(data.load_digits_data(), 0.1).val) == 130


def test_missing_mnist_offline_says_what_to_do(tmp_path):
    with pytest.raises(DataNotFound, match=r"--data-dir.*--download"):
        data.load_mnist(tmp_path, download=False)


def test_corrupt_idx_names_the_file(tmp_path):
    write_mnist_idx(tmp_path, 5, 5, side=28)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(MLHWError, match="train-images-idx3-ubyte.gz: cannot be read: not gzip data"):
        data.load_mnist(tmp_path, download=False)
    bad = tmp_path / "bad-idx"
    bad.write_bytes(b"\x00\x00\x0d\x01" + b"\x00" * 8)
    with pytest.raises(MLHWError, match="bad-idx"):
        data.read_idx(bad)
    write_idx(bad, np.zeros((3, 2, 2)))
    bad.write_bytes(bad.read_bytes()[:-1])  # truncated
    with pytest.raises(MLHWError, match="expected 12 values"):
        data.read_idx(bad)


def test_unknown_dataset():
    with pytest.raises(MLHWError, match="unknown dataset 'foo'"):
        data.load("foo")


def test_channel_stats_are_the_training_splits_own():
    """Outside CIFAR-10 the normalisation is the training split's per-channel mean and (population) std of pixels in
    [0, 1], with a floor of 1e-6 for a channel that does not vary; the test split, drawn otherwise, plays no part."""
    rng = np.random.RandomState(0)
    train = rng.randint(0, 128, (20, 3, 4, 4)).astype(np.uint8)
    train[:, 2] = 77  # a constant channel: std 0, floored
    test = rng.randint(128, 256, (10, 3, 4, 4)).astype(np.uint8)
    labels = lambda n: np.zeros(n, np.int64)  # noqa: E731
    d = data.Dataset("mnist", data.Split(train, labels(20)), data.Split(test, labels(10)), data.Split(test, labels(10)))
    mean, std = data.channel_stats(d)
    pixels = train.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, [pixels[:, c].mean() for c in range(3)], rtol=1e-6)
    np.testing.assert_allclose(std[:2], [pixels[:, c].std() for c in range(2)], rtol=1e-5)
    assert std[2] == pytest.approx(1e-6) and mean[2] == pytest.approx(77 / 255)


def test_cifar10_is_normalised_by_the_assignments_constants_not_its_own_statistics():
    """CIFAR-10's normalisation is the assignment's transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994,
    0.2010)), channel by channel (R, G, B), whatever the pixels: nothing else pinned those numbers, and a swap of
    two channels' constants passed every test."""
    rng = np.random.RandomState(0)
    split = data.Split(rng.randint(0, 256, (6, 3, 32, 32)).astype(np.uint8), np.zeros(6, np.int64))
    mean, std = data.channel_stats(data.Dataset("cifar10", split, split, split))
    assert mean == (0.4914, 0.4822, 0.4465) and std == (0.2023, 0.1994, 0.2010)
