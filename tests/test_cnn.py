"""AlexNet's structure, the device pipeline, the CIFAR-10 reader and the training loop."""

import numpy as np
import pytest
import torch
from helpers import write_cifar_batches
from torch import nn

from mlhw import data as datalib
from mlhw.cnn import AlexNet, DeviceSplit, count_parameters, feature_size, train_cnn
from mlhw.config import CNNConfig
from mlhw.errors import MLHWError
from mlhw.topology import MIN_IMAGE_SIZE

TINY = dict(width=0.125, image_size=67, epochs=2, batch_size=32)


def test_paper_parameter_counts_and_shapes():
    with_bn, plain = AlexNet(), AlexNet(batchnorm=False, dropout=False)
    assert count_parameters(with_bn) == 58_325_066
    assert count_parameters(plain) == 58_322_314
    assert feature_size(227) == 6 and with_bn.classifier[2].in_features == 9216
    x = torch.randn(2, 3, 227, 227)
    assert with_bn.eval()(x).shape == (2, 10) and plain.eval()(x).shape == (2, 10)


def test_switches_and_width():
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert {nn.BatchNorm2d, nn.Dropout} <= kinds(AlexNet())
    assert not {nn.BatchNorm2d, nn.Dropout} & kinds(AlexNet(batchnorm=False, dropout=False))
    assert nn.Dropout not in kinds(AlexNet(dropout=False)) and nn.BatchNorm2d in kinds(AlexNet(dropout=False))
    small = AlexNet(n_classes=3, in_channels=1, width=0.25, image_size=67)
    convs = [m.out_channels for m in small.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [24, 64, 96, 96, 64] and small(torch.randn(4, 1, 67, 67)).shape == (4, 3)


def test_minimum_image_size_is_named():
    assert MIN_IMAGE_SIZE == 67 and feature_size(66) == 0 and feature_size(67) == 1
    with pytest.raises(MLHWError, match="--image-size 66 is too small.*minimum is 67 px"):
        AlexNet(image_size=66)


def test_eval_is_deterministic_train_is_not():
    torch.manual_seed(0)
    m = AlexNet(width=0.125, image_size=67)
    x = torch.randn(8, 3, 67, 67)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))  # dropout


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adam", 1e-3)])
def test_a_few_steps_on_a_fixed_batch_reduce_the_loss(optimizer, lr):
    """Gradients reach every layer of the model and mlhw's optimizer (fused Adam on the CPU) takes them: a layer cut
    from the graph, or an optimizer given no parameters, would leave the loss where it was."""
    from mlhw.cnn import make_optimizer

    torch.manual_seed(0)
    m = AlexNet(width=0.125, image_size=67, dropout=False)
    x, y = torch.randn(16, 3, 67, 67), torch.randint(0, 10, (16,))
    opt = make_optimizer(CNNConfig(optimizer=optimizer, lr=lr), m.parameters())
    first = [p.detach().clone() for p in m.parameters()]
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    moved = [not torch.equal(a, b) for a, b in zip(first, m.parameters())]
    assert all(moved), f"{moved.count(False)} parameter tensors never moved"


def test_cifar_reader_split_and_normalisation(tmp_path):
    batches = write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=20, n_test=15)
    d = datalib.load_cifar10(tmp_path, download=False, val_size=10)
    assert d.sizes() == {"train": 90, "val": 10, "test": 15}
    x = np.concatenate([b["data"] for b in batches[:5]]).reshape(-1, 3, 32, 32)
    y = np.concatenate([b["labels"] for b in batches[:5]])
    perm = np.random.RandomState(1).permutation(100)  # the assignment's seed-1 shuffle
    np.testing.assert_array_equal(d.val.x, x[perm[:10]])
    np.testing.assert_array_equal(d.train.y, y[perm[10:]])
    np.testing.assert_array_equal(d.test.x.reshape(15, -1), batches[5]["data"])
    assert d.train.x.dtype == np.uint8
    assert datalib.channel_stats(d) == (datalib.CIFAR_MEAN, datalib.CIFAR_STD)
    split = DeviceSplit(d.test, torch.device("cpu"), datalib.CIFAR_MEAN, datalib.CIFAR_STD, 32)
    got, labels = split.batch(torch.arange(15))
    expected = (d.test.x / 255.0 - np.array(datalib.CIFAR_MEAN)[:, None, None]) / np.array(datalib.CIFAR_STD)[
        :, None, None
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert got.is_contiguous(memory_format=torch.channels_last) and labels.tolist() == d.test.y.tolist()
    assert datalib.train_fraction(d, 0.1).sizes()["train"] == 9


def test_too_few_training_images_for_the_validation_split_says_how_many_it_needs(tmp_path):
    """A few hundred synthetic images were refused as 'too few' without the number needed: the split's size and 2
    left to train on (train_fraction's own least)."""
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=2, n_test=3)  # 10 training images
    with pytest.raises(MLHWError) as err:
        datalib.load_cifar10(tmp_path, download=False, val_size=10)
    assert "hold 10 training images, too few for CIFAR-10's 10-image validation split: it needs at least 12," in str(
        err.value
    )
    d = datalib.load_cifar10(tmp_path, download=False, val_size=8)  # exactly the least it asks for
    assert d.sizes() == {"train": 2, "val": 8, "test": 3}
    assert datalib.train_fraction(d, 1.0).sizes()["train"] == 2


def test_a_data_dir_naming_the_batches_own_folder_is_told_to_pass_its_parent(tmp_path):
    """`--data-dir .../cifar-10-batches-py` (the folder holding data_batch_1..5 and test_batch) said 'CIFAR-10 not
    found', listing the very files in it, and nothing more. It now says to pass the parent. (Not read from there:
    a change to the loader's code would make every run a new one, AlexNet's GPU-hours included.)"""
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder, per_batch=20, n_test=15)
    with pytest.raises(datalib.DataNotFound) as err:
        datalib.load_cifar10(folder, download=False, val_size=10)
    assert str(err.value).endswith(f"; {folder} holds the batches itself: pass its parent, {tmp_path.resolve()}")
    assert datalib.load_cifar10(tmp_path, download=False, val_size=10).sizes()["test"] == 15
    with pytest.raises(datalib.DataNotFound) as err:
        datalib.load_cifar10(tmp_path / "nothing", download=False)
    assert "holds the batches itself" not in str(err.value)


def test_an_offline_default_download_still_says_what_is_missing_and_where(tmp_path, monkeypatch):
    """Without --download or --no-download a CIFAR-10 folder that is not complete is downloaded, and offline that
    failed with 'CIFAR-10 is not in DIR/', nothing more: a --data-dir naming the batches' own folder (all six files
    in it) or a folder missing test_batch alone read as if nothing were there. It now says what --no-download says,
    and why the download did not help."""

    def offline(data_dir):
        raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(datalib, "_fetch_cifar10", offline)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder, per_batch=20, n_test=15)
    with pytest.raises(datalib.DataNotFound) as err:
        datalib.load_cifar10(folder)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"CIFAR-10 not found in {folder}/cifar-10-batches-py/ (need ")
    assert "; the download failed (<urlopen error [Errno -2] Name or service not known>): pass --data-dir" in msg
    assert msg.endswith(f"; {folder} holds the batches itself: pass its parent, {tmp_path.resolve()}")
    (folder / "test_batch").unlink()
    with pytest.raises(datalib.DataNotFound) as err:
        datalib.load_cifar10(tmp_path)
    assert f"CIFAR-10 not found in {folder}/ (need data_batch_1..5 and test_batch; missing test_batch); the " in str(
        err.value
    )
    assert "holds the batches itself" not in str(err.value)


def test_an_explicit_download_that_fails_beside_complete_files_says_they_are_there(tmp_path, monkeypatch):
    """--download offline, with all six batches in place, said 'CIFAR-10 is not in DIR/; the download failed': the
    files were there, and only the forced download had failed."""

    def offline(data_dir):
        raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(datalib, "_fetch_cifar10", offline)
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=20, n_test=15)
    with pytest.raises(datalib.DataNotFound) as err:
        datalib.load_cifar10(tmp_path, download=True)
    assert str(err.value) == (
        "CIFAR-10: --download failed (<urlopen error [Errno -2] Name or service not known>); "
        f"{tmp_path}/cifar-10-batches-py/ holds all six batches already: leave out --download to read them"
    )
    assert len(datalib.load_cifar10(tmp_path, val_size=10).train) == 90  # and without it, they are read


def test_cifar_reader_rejects_bad_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder, per_batch=5, n_test=5)
    import pickle

    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"images": []}, f)
    with pytest.raises(MLHWError, match="data_batch_3: not a CIFAR-10 python batch"):
        datalib.load_cifar10(tmp_path, download=False, val_size=2)
    with pytest.raises(datalib.DataNotFound, match="--data-dir"):
        datalib.load_cifar10(tmp_path / "nothing", download=False)


def test_resize_keeps_a_constant_image_constant():
    s = datalib.Split(np.full((2, 1, 8, 8), 0.5, np.float32), np.array([0, 1]))
    x, _ = DeviceSplit(s, torch.device("cpu"), (0.25,), (0.5,), 67).batch(torch.arange(2))
    assert x.shape == (2, 1, 67, 67) and torch.allclose(x, torch.full_like(x, 0.5))


@pytest.fixture(scope="module")
def digits():
    return datalib.with_validation(datalib.load_digits_data())


def test_same_seed_same_metrics_on_cpu(digits):
    cfg = CNNConfig(**TINY)
    a = train_cnn(cfg, digits, "cpu", precision="fp32")
    b = train_cnn(cfg, digits, "cpu", precision="fp32")
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.test_acc == b.test_acc
    assert len(a.history) == 2 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]
    assert set(a.history[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "images_per_s"}
    # on a CPU: fused Adam (fast and the same arithmetic), no CUDA graphs, evaluation in chunks of 256
    assert (a.precision, a.optimizer_impl, a.cuda_graphs, a.eval_batch) == ("fp32", "fused", False, 256)


def test_nan_stops_the_run_cleanly(digits):
    res = train_cnn(
        CNNConfig(**TINY | {"epochs": 3}, optimizer="sgd", lr=1e12, batchnorm=False, dropout=False),
        digits,
        "cpu",
        precision="fp32",
    )
    assert res.diverged_epoch == 1 and len(res.history) == 1
    assert not np.isfinite(res.history[0]["train_loss"])


def test_digits_validation_is_carved_from_the_pool(digits):
    assert digits.sizes() == {"train": 1167, "val": 130, "test": 500}


def test_a_last_batch_of_one_image_is_skipped_under_batchnorm(digits):
    """65 training images, batch 64: the last batch holds one image, on which BatchNorm cannot train (torch
    raises 'Expected more than 1 value per channel'); it is skipped and the epoch's mean is over the 64 trained."""
    import dataclasses

    data = dataclasses.replace(digits, train=digits.train.take(np.arange(65)))
    res = train_cnn(CNNConfig(**TINY | {"epochs": 1, "batch_size": 64}), data, "cpu", precision="fp32")
    assert np.isfinite(res.history[0]["train_loss"]) and 0.0 <= res.history[0]["train_acc"] <= 1.0
    # the fraction of 64 images: a multiple of 1/64, not of 1/65
    assert (res.history[0]["train_acc"] * 64) == pytest.approx(round(res.history[0]["train_acc"] * 64), abs=1e-9)
    plain = train_cnn(CNNConfig(**TINY | {"epochs": 1}, batchnorm=False, dropout=False), data, "cpu", "fp32")
    assert np.isfinite(plain.history[0]["train_loss"])  # without BatchNorm the single image trains


def test_warm_up_runs_the_real_step_on_a_few_images_and_leaves_the_generators(digits, monkeypatch):
    """mlhw.cnn.warm_up (a GPU worker's, before its first unit) trains the config's own model through train_cnn: two
    full batches (the graph's capture and a replay) and a partial one, of the dataset's own images, one epoch; it
    leaves torch's generator where it was, so a run after it is the run without it."""
    import mlhw.cnn as cnn

    cfg = CNNConfig(**TINY)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    alone = train_cnn(cfg, digits, "cpu", precision="fp32")
    torch.set_rng_state(before)
    cnn.warm_up(cfg, digits, "cpu", "fp32")
    assert torch.equal(torch.get_rng_state(), before)
    after = train_cnn(cfg, digits, "cpu", precision="fp32")
    assert [r["train_loss"] for r in after.history] == [r["train_loss"] for r in alone.history] != []
    assert after.test_acc == alone.test_acc

    seen = []
    real = cnn.train_cnn
    monkeypatch.setattr(
        cnn, "train_cnn", lambda c, d, dev, p, comp: seen.append((c, d, dev, p, comp)) or real(c, d, dev, p)
    )
    cnn.warm_up(cfg, digits, "cpu", "fp32")
    [(c, d, dev, p, comp)] = seen
    assert comp is False  # compiled only under reproduce --compile: test_a_compiled_warm_up_...
    assert c.epochs == 1 and {k: getattr(c, k) for k in TINY if k != "epochs"} == {
        k: v for k, v in TINY.items() if k != "epochs"
    }
    assert (c.optimizer, c.lr, c.batchnorm, c.dropout) == (cfg.optimizer, cfg.lr, cfg.batchnorm, cfg.dropout)
    bs = cfg.batch_size
    assert 2 * bs < len(d.train) < 3 * bs and d.image_shape == digits.image_shape and d.n_classes == digits.n_classes
    assert (d.train.x == digits.train.x[: len(d.train)]).all() and len(d.val) >= 1 and len(d.test) >= 1
    assert (dev, p) == (torch.device("cpu"), "fp32")


@pytest.mark.parametrize("batchnorm, trained", [(True, 64), (False, 65)])
def test_images_per_second_counts_the_images_trained(digits, batchnorm, trained):
    """65 training images in batches of 64: BatchNorm skips the last batch of one image (64 trained per epoch),
    without it all 65 train. images/s x the epoch's seconds is that count, every epoch."""
    import dataclasses

    few = digits.val.take(np.arange(8))
    data = dataclasses.replace(digits, train=digits.train.take(np.arange(65)), val=few, test=few)
    cfg = CNNConfig(**TINY | {"epochs": 2, "batch_size": 64}, batchnorm=batchnorm, dropout=False)
    res = train_cnn(cfg, data, "cpu", precision="fp32")
    assert len(res.history) == 2
    for row in res.history:
        assert row["images_per_s"] * row["epoch_seconds"] == pytest.approx(trained, rel=1e-9)


def test_a_fractional_width_rounds_every_layer_to_the_nearest_channel():
    """Width 0.3: 96, 256, 384, 384, 256 channels -> 28.8, 76.8, 115.2, 115.2, 76.8 -> 29, 77, 115, 115, 77; 4096
    hidden -> 1228.8 -> 1229. The parameter count, by hand from the topology (227 px: a 6 x 6 map after the convs)."""
    model = AlexNet(width=0.3, batchnorm=True, dropout=True)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in convs] == [
        (29, 3, 11, 11),
        (77, 29, 5, 5),
        (115, 77, 3, 3),
        (115, 115, 3, 3),
        (77, 115, 3, 3),
    ]
    assert [tuple(m.weight.shape) for m in linears] == [(1229, 77 * 6 * 6), (1229, 1229), (10, 1229)]
    conv = (
        (29 * 3 * 121 + 29) + (77 * 29 * 25 + 77) + (115 * 77 * 9 + 115) + (115 * 115 * 9 + 115) + (77 * 115 * 9 + 77)
    )
    batchnorm = 2 * (29 + 77 + 115 + 115 + 77)  # a weight and a bias per channel
    dense = (1229 * 2772 + 1229) + (1229 * 1229 + 1229) + (10 * 1229 + 10)
    assert count_parameters(model) == conv + batchnorm + dense == 5_277_993


def test_compile_trains_the_full_batches_compiled_and_the_last_partial_one_on_the_eager_modules(digits, monkeypatch):
    """--compile: torch.compile's network takes the full batches (on a GPU, in the captured step: 23,489 img/s
    against 19,095 on an H200); the last, partial batch goes through the eager modules, since its other shape
    would compile the network again (25-30 s). A stand-in for torch.compile sees each batch it is given; with it
    the run is the eager run, number for number."""
    seen = []

    def stand_in(model):
        def forward(x):
            seen.append(len(x))
            return model(x)

        return forward

    cfg = CNNConfig(**TINY)
    plain = train_cnn(cfg, digits, "cpu", precision="fp32")
    monkeypatch.setattr(torch, "compile", stand_in)
    compiled = train_cnn(cfg, digits, "cpu", precision="fp32", compile=True)
    n, bs = len(digits.train), cfg.batch_size
    assert n % bs and set(seen) == {bs} and len(seen) == cfg.epochs * (n // bs)
    assert compiled.history[0]["images_per_s"] > 0 and [h["train_loss"] for h in compiled.history] == [
        h["train_loss"] for h in plain.history
    ]
    assert (compiled.test_loss, compiled.test_acc) == (plain.test_loss, plain.test_acc)


def test_a_compiled_warm_up_leaves_the_first_run_nothing_to_compile(digits, monkeypatch):
    """reproduce --compile: a GPU worker's warm-up compiles the network (25-31 s on an H200) so that its first run
    does not, in its first epoch. torch._dynamo (here with its eager backend: the tracing and the guards without
    Inductor's minutes) keeps the graph for the process: the run's new model of the same config takes it, and
    compiles nothing more. The oracle is dynamo's own count of the graphs it traced; a warm-up without `compile`
    leaves the run its graph to trace."""
    import functools

    import torch._dynamo
    from torch._dynamo.utils import counters

    import mlhw.cnn as cnn

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    cfg = CNNConfig(**TINY | {"epochs": 1})

    def graphs_of_the_run(warm_compiled: bool) -> tuple[int, int]:
        torch._dynamo.reset()
        counters.clear()
        cnn.warm_up(cfg, digits, "cpu", "fp32", compile=warm_compiled)
        warmed = counters["stats"]["unique_graphs"]
        train_cnn(cfg, digits, "cpu", precision="fp32", compile=True)
        return warmed, counters["stats"]["unique_graphs"] - warmed

    try:
        assert graphs_of_the_run(warm_compiled=True) == (1, 0)
        assert graphs_of_the_run(warm_compiled=False) == (0, 1)
    finally:
        torch._dynamo.reset()
