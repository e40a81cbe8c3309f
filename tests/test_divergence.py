"""The divergence rule (mlhw.divergence) and both training loops applying it."""

import math

import pytest
import torch

from mlhw import data as datalib
from mlhw.cnn import train_cnn
from mlhw.config import CNNConfig, MLPConfig
from mlhw.divergence import FACTOR, chance_loss, first_diverged, is_diverged, threshold
from mlhw.mlp import train_mlp


@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
def test_chance_loss_is_the_cross_entropy_of_a_uniform_prediction(n_classes):
    labels = torch.arange(n_classes)
    uniform = torch.nn.functional.cross_entropy(torch.zeros(n_classes, n_classes, dtype=torch.float64), labels)
    assert chance_loss(n_classes) == pytest.approx(uniform.item(), rel=1e-12)
    assert threshold(n_classes) == pytest.approx(FACTOR * uniform.item(), rel=1e-12)


def test_the_rule_non_finite_or_far_above_chance():
    limit = FACTOR * math.log(10)
    for loss in (float("nan"), float("inf"), -float("inf"), 1e28, math.nextafter(limit, math.inf)):
        assert is_diverged(loss, 10), loss
    for loss in (0.0, 2.2486, math.log(10), limit):  # 2.2486: the paper's Adam 0.005 row, a stall at chance
        assert not is_diverged(loss, 10), loss
    assert first_diverged([90.0, 3.0, 20.0, float("nan")], 10, start=1) == 3
    assert first_diverged([90.0, 3.0, 30.0, float("nan")], 10, start=1) == 2
    assert first_diverged([90.0, 3.0, 2.0], 10, start=1) is None
    assert first_diverged([float("nan")], 10) == 0


def test_a_loss_above_the_threshold_that_keeps_falling_is_a_slow_start():
    """lr 0.001 on 2,000 MNIST images, seed 8 (measured, / ln 10): 36.0, 16.4, 11.6, 9.1: above 10 ln 10 after
    epoch 1, falling every epoch; lr 100 on the same data: 36.0, 23.1, 24.4: flagged where it rose."""
    L = math.log(10)
    slow = [36.0 * L, 16.4 * L, 11.6 * L, 9.1 * L]
    assert first_diverged(slow, 10, start=1) is None
    assert first_diverged([36.0 * L, 23.1 * L, 24.4 * L], 10, start=1) == 2
    assert first_diverged([36.0 * L, 40.0 * L], 10, start=1) == 1  # rose from the initialisation at once
    assert first_diverged(slow + [10.5 * L], 10, start=1) == 4  # stopped falling while above the threshold
    assert first_diverged(slow + [float("nan")], 10, start=1) == 4  # non-finite: always
    assert not is_diverged(1e6, 10, descending=True) and is_diverged(float("inf"), 10, descending=True)


def test_mlp_lr_0_001_on_a_small_mnist_like_subset_is_not_flagged():
    """The MLP loop applies the same rule: a tiny training set (200 digits) at lr 0.001 stays above 10 ln 10 for
    several epochs from a high initialisation while falling; it is not diverged. lr 100 on it is."""
    d = datalib.subset(datalib.load_digits_data(), 200, 100, seed=11)
    res = {r.lr: r for r in train_mlp(MLPConfig(epochs=4, seed=0), d, [0.001, 100])}
    losses = [h["train_loss"] for h in res[0.001].history]
    assert losses[1] > threshold(10) and all(b < a for a, b in zip(losses, losses[1:]))  # the case in point
    assert res[0.001].diverged_epoch is None and res[100].diverged_epoch is not None


@pytest.fixture(scope="module")
def digits():
    return datalib.load_digits_data()


def test_mlp_sweep_flags_lr_100_only(digits):
    """Seed 0 starts far above chance (epoch-0 loss ~37.8 > 23): the initialisation is not a divergence.
    lr 100 is above 10 ln 10 from epoch 1 (measured 12.9-25.5 ln 10 over seeds 0-9); lr 10 stalls at chance."""
    rates = [0.001, 0.1, 10, 100]
    res = {r.lr: r for r in train_mlp(MLPConfig(epochs=3, seed=0), digits, rates)}
    assert res[0.1].history[0]["train_loss"] > threshold(10)
    assert [res[lr].diverged_epoch for lr in rates] == [None, None, None, 1]
    lr100 = res[100].history
    assert math.isfinite(lr100[1]["train_loss"]) and lr100[1]["train_loss"] > threshold(10)
    assert len(lr100) == 4  # the MLP keeps its diverged curve: every epoch is still recorded
    assert res[10].final["test_acc"] < 0.2 and res[10].final["train_loss"] < threshold(10)


TINY = dict(width=0.125, image_size=67, batch_size=64)


def test_cnn_adam_at_1e6_is_flagged_while_its_loss_is_finite():
    data = datalib.with_validation(datalib.load_digits_data())
    res = train_cnn(CNNConfig(**TINY, epochs=3, optimizer="adam", lr=1e6), data, "cpu", "fp32")
    loss = res.history[0]["train_loss"]
    assert res.diverged_epoch == 1 and len(res.history) == 1  # the run stops at the diverged epoch
    assert math.isfinite(loss) and loss > 1e20  # measured ~1e28: finite, so only the "far above chance" part catches it
    assert 0.0 <= res.test_acc <= 1.0  # the test pass still ran


def test_cnn_adam_0_005_stalling_near_chance_is_not_flagged():
    data = datalib.with_validation(datalib.load_digits_data())
    res = train_cnn(CNNConfig(**TINY, epochs=1, optimizer="adam", lr=0.005), data, "cpu", "fp32")
    assert res.diverged_epoch is None and res.history[0]["train_loss"] < 2 * math.log(10)


def test_a_loss_flat_above_the_threshold_is_not_a_slow_start():
    L = math.log(10)
    assert first_diverged([36 * L, 20 * L, 20 * L], 10, start=1) == 2
