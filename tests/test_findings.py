"""Findings on hand-made run records whose answers are known, and the statistics against independent formulas."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from mlhw import findings as F
from mlhw.findings.part2 import _verdict_clause as verdict_clause
from mlhw.reference import CNN_REFERENCE, MLP_FULL_TEST_ACC


def welch_by_hand(a, b, confidence=0.95):
    """mean(b) - mean(a) with the Welch-Satterthwaite df and Student's t quantile, written out."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    d = b.mean() - a.mean()
    return d, d - half, d + half, df


# --- the statistics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.50, 0.52, 0.49], [0.61, 0.63, 0.60]),
        ([0.50, 0.60, 0.40], [0.52, 0.58, 0.45, 0.61]),
        ([1.0, 1.0, 1.1], [3.0, 2.0, 7.0, 1.0, 4.0]),
    ],
)
def test_welch_interval_matches_the_hand_formula_and_scipy(a, b):
    d = F.welch_difference(a, b, "val_loss")  # (a loss: an accuracy's interval is clipped to [-1, 1])
    diff, lo, hi, df = welch_by_hand(a, b)
    assert d.diff == pytest.approx(diff, abs=1e-12)
    assert (d.low, d.high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    assert d.df == pytest.approx(df, rel=1e-9)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_separated_groups_give_an_interval_excluding_zero_with_the_right_sign():
    low, high = [0.50, 0.52, 0.49], [0.61, 0.63, 0.60]
    up = F.welch_difference(low, high, "val_acc", ("SGD", "Adam"))
    assert up.verdict == "second higher" and up.low > 0 and up.diff == pytest.approx(0.11)
    down = F.welch_difference(high, low, "val_acc", ("Adam", "SGD"))
    assert down.verdict == "first higher" and down.high < 0 and down.diff == pytest.approx(-0.11)
    s = F.difference_sentence(up)
    assert "+11.0 points" in s and "higher for Adam" in s and "95% CI" in s


def test_an_accuracy_interval_stays_within_the_possible_differences():
    """The digits report's Part 2 (b): Adam 0.005 (34%, 41%, 86%) vs Adam 5e-5 (99% x 3) gave [-24.7, +114.7]."""
    d = F.welch_difference([0.338, 0.414, 0.858], [0.987, 0.9871, 0.9869], "test_acc")
    ci = stats.ttest_ind([0.987, 0.9871, 0.9869], [0.338, 0.414, 0.858], equal_var=False).confidence_interval()
    assert ci.high > 1 and d.high == 1.0 and d.low == pytest.approx(ci.low) and d.verdict == "not distinguishable"
    assert "+100.0]" in F.difference_sentence(d)


def test_overlapping_groups_are_not_distinguishable():
    d = F.welch_difference([0.50, 0.60, 0.40], [0.52, 0.58, 0.45], "test_acc")
    assert d.low < 0 < d.high and d.verdict == "not distinguishable"
    assert "not distinguishable with n=3 vs 3" in F.difference_sentence(d)


def test_a_clean_split_that_t_cannot_confirm_is_said_with_the_rank_tests_probability():
    """Digits' Adam 5e-5 above 0.005 in every seed read 'not distinguishable' alone: a student would take it that the
    rate does not matter. The split is said, with its exact rank-test probability (scipy's Mann-Whitney as oracle)."""
    from scipy.stats import mannwhitneyu

    low, high = [0.45, 0.62, 0.85], [0.98, 0.9846, 0.98]
    d = F.welch_difference(low, high, "val_acc", ("Adam lr=0.005", "Adam lr=5e-5"))
    assert d.verdict == "not distinguishable" and d.above == "second"
    assert d.split_p == pytest.approx(mannwhitneyu(high, low, alternative="two-sided", method="exact").pvalue)
    clause = verdict_clause(d, "validation accuracy")
    assert clause.endswith(
        "though every run of Adam lr=5e-5 is above every run of Adam lr=0.005 (so clean a split comes by chance "
        "with probability 0.10 at 3 vs 3)"
    )
    five = F.welch_difference([0.1, 0.5, 0.2, 0.6, 0.3], [0.7, 0.99, 0.8, 0.95, 0.61], "val_acc")
    assert five.split_p == pytest.approx(2 / 252)  # distinguishable by t here: no note needed, but the split is kept
    mixed = F.welch_difference([0.5, 0.6, 0.4], [0.52, 0.58, 0.45], "val_acc")  # interleaved: nothing to add
    assert mixed.above is None and "though" not in verdict_clause(mixed, "validation accuracy")


def test_a_split_in_both_accuracies_gives_its_probability_once():
    def rec(v, lr, seed, val, test, loss):
        hist = [{"epoch": 1, "train_loss": loss, "train_acc": 0.5, "val_acc": val}]
        return {
            "variant": v,
            "optimizer": "adam",
            "lr": lr,
            "batchnorm": True,
            "dropout": True,
            "seed": seed,
            "dataset": "digits",
            "val_acc": val,
            "test_acc": test,
            "train_loss": loss,
            "history": hist,
        }

    runs = [
        rec("adam-0.005", 0.005, s, v, t, 1 + s / 10)
        for s, (v, t) in enumerate([(0.45, 0.4), (0.62, 0.6), (0.85, 0.8)])
    ]
    runs += [
        rec("adam-5e-05", 5e-5, s, v, t, 0.1) for s, (v, t) in enumerate([(0.98, 0.97), (0.985, 0.975), (0.98, 0.971)])
    ]
    answer = F.part2_pair(runs, "b").answer
    assert answer.count("though every run of Adam lr=5e-5 is above every run of Adam lr=0.005") == 2, answer
    assert answer.count("probability 0.10 at 3 vs 3") == 1, answer


def test_one_run_has_no_interval_and_says_so():
    d = F.welch_difference([0.5], [0.6, 0.62, 0.61], "val_acc")
    assert d.low is None and d.high is None and d.verdict == "no interval" and "n=1" in d.note
    assert "n=1: no interval" in F.difference_sentence(d)


def test_zero_variance_on_both_sides_is_a_point_not_nan():
    d = F.welch_difference([0.1] * 4, [0.3] * 4, "val_acc")
    assert d.low == d.high == pytest.approx(0.2) and d.verdict == "second higher" and "no spread" in d.note
    assert d.split_p == pytest.approx(2 / 70)  # the exact rank test at 4 vs 4 decides, where t has no spread
    # 2 vs 2 (or 3 vs 3) runs that agree within each side: a clean split with probability 2/6 (2/20) by chance,
    # which is no evidence (two collapsed runs a side, each predicting one class, once read as "better"); the
    # rule Part 2 (c) applies to its epoch counts
    for n, p in ((2, 2 / 6), (3, 2 / 20)):
        few = F.welch_difference([0.1] * n, [0.3] * n, "val_acc")
        assert few.verdict == "not distinguishable" and few.split_p == pytest.approx(p)
        assert f"probability {p:.2f} at {n} vs {n}" in F.difference_sentence(few)
    same = F.welch_difference([0.1, 0.1], [0.1, 0.1], "val_acc")
    assert same.verdict == "identical" and same.diff == 0
    # zero variance on one side only: Welch is defined (df = n - 1 of the other side)
    one = F.welch_difference([0.1, 0.1, 0.1], [0.3, 0.35, 0.32], "val_acc")
    diff, lo, hi, df = welch_by_hand([0.1, 0.1, 0.1], [0.3, 0.35, 0.32])
    assert one.df == pytest.approx(2.0) and one.low == pytest.approx(lo)


def test_non_finite_values_give_no_interval():
    d = F.welch_difference([1.0, math.inf, 2.0], [0.5, 0.6, 0.7], "train_loss")
    assert d.verdict == "no interval" and "non-finite" in d.note


def test_epochs_to_reach_is_the_first_epoch_at_or_above_the_level():
    hist = [{"epoch": e, "val_acc": a} for e, a in enumerate([0.1, 0.4, 0.55, 0.5, 0.7], start=1)]
    assert F.epochs_to_reach(hist, "val_acc", 0.55) == 3
    assert F.epochs_to_reach(hist, "val_acc", 0.1) == 1
    assert F.epochs_to_reach(hist, "val_acc", 0.71) is None  # not reached
    assert F.epochs_to_reach([{"epoch": 1, "val_acc": float("nan")}], "val_acc", 0.0) is None


def test_chance_is_within_the_margin_of_one_over_n_classes():
    assert F.is_chance(0.1) and F.is_chance(0.149) and F.is_chance(0.03) and F.is_chance(float("nan"))
    assert not F.is_chance(0.151) and not F.is_chance(0.6, n_classes=2) and F.is_chance(0.3, n_classes=2)


# --- Part 1 (b) -----------------------------------------------------------------------------------------


def mlp_run(lr, accs, seed=8, losses=None, diverged_epoch=None, with_divergence=True):
    """An MLP record: epoch 0 = before training, then one accuracy per epoch."""
    losses = losses or [1.0] * len(accs)
    hist = [
        {"epoch": e, "train_acc": a, "train_loss": lo, "test_acc": a - 0.01}
        for e, (a, lo) in enumerate(zip(accs, losses))
    ]
    rec = {"lr": lr, "seed": seed, "dataset": "digits", "history": hist} | {
        k: hist[-1][k] for k in ("train_acc", "train_loss", "test_acc")
    }
    if with_divergence:
        rec["diverged_epoch"] = diverged_epoch
    return rec


def test_part1bs_learning_level_is_a_share_of_the_best_rates_mean_not_of_its_best_run():
    """The level of "learns" is a share of the best learning rate's mean final training accuracy over its seeds: by
    hand, lr 0.1 ends at 0.98 and 0.85 (mean 0.915), lr 1 at 0.92 twice (mean 0.92), so the best is 0.92 and the
    level 0.9 x 0.92 = 0.828, which lr 0.1's 0.85 run reaches. Taking the best single run (0.98: level 0.882, which
    0.85 misses) passed every test. The level itself counts (>=): at learns_fraction 0.5 of 0.8, 0.4 learns."""
    records = [
        mlp_run(0.1, [0.1, 0.5, 0.98], seed=1),
        mlp_run(0.1, [0.1, 0.5, 0.85], seed=2),
        mlp_run(1.0, [0.1, 0.5, 0.92], seed=1),
        mlp_run(1.0, [0.1, 0.5, 0.92], seed=2),
    ]
    ev = F.part1b(records).evidence
    assert ev["best_mean_final_train_acc"] == pytest.approx(0.92, abs=1e-15)
    assert ev["learns_level"] == pytest.approx(0.828, abs=1e-15)
    assert [(r["outcome"], r["epoch"]) for r in ev["rates"]["0.1"]["runs"]] == [("learns", 2), ("learns", 2)]
    assert F.classify_run(mlp_run(0.1, [0.1, 0.3, 0.4]), 0.8, learns_fraction=0.5) == ("learns", 2)


def test_the_rules_edges_belong_to_the_side_their_docstrings_say():
    """Closed edges, with numbers exact in binary: an accuracy at chance + margin is chance (1/4 + 1/4 = 0.5, 'within
    margin of chance'); a write-up number on the edge of mean +- 2 std is within (1, 2, 3: mean 2, std 1, interval
    [0, 4]). Strict comparisons at either edge passed every test."""
    assert F.is_chance(0.5, n_classes=4, margin=0.25) and not F.is_chance(0.5 + 2**-20, n_classes=4, margin=0.25)
    for reference in (0.0, 4.0):
        chk = F.reference_check([1.0, 2.0, 3.0], reference)
        assert (chk["low"], chk["high"], chk["within"]) == (0.0, 4.0, True)
    assert F.reference_check([1.0, 2.0, 3.0], 4.0 + 2**-20)["within"] is False


def test_part1b_classifies_each_rate_with_its_epoch():
    nan = float("nan")
    records = [
        # learns: reaches 0.9 * 0.98 = 0.882 at epoch 3
        mlp_run(0.1, [0.1, 0.6, 0.85, 0.95, 0.97, 0.98, 0.98]),
        # learns slowly: far below, still gaining in its last 5 epochs
        mlp_run(0.001, [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4]),
        # stalls: stuck at 0.5 from epoch 2 (no gain over its last 5 epochs)
        mlp_run(0.01, [0.1, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.501, 0.5, 0.5]),
        # collapses: at chance from epoch 4 on
        mlp_run(10, [0.1, 0.4, 0.5, 0.3, 0.1, 0.09, 0.1]),
        # stalls on a noisy curve: swings around 0.6 from epoch 4, where it first came within a point of its best
        mlp_run(1, [0.1, 0.4, 0.6, 0.5, 0.645, 0.55, 0.65, 0.5, 0.58, 0.6]),
        # diverges at epoch 2, found from the history (no diverged_epoch key)
        mlp_run(
            100, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], losses=[2, 5, nan, nan, nan, nan, nan], with_divergence=False
        ),
    ]
    f = F.part1b(records)
    rates = f.evidence["rates"]
    assert rates["0.1"]["runs"][0] == {"seed": 8, "outcome": "learns", "epoch": 3}
    assert rates["0.001"]["outcome"] == "learns slowly"
    assert rates["0.01"]["runs"][0]["outcome"] == "stalls" and rates["0.01"]["runs"][0]["epoch"] == 2
    assert rates["10"]["runs"][0] == {"seed": 8, "outcome": "collapses", "epoch": 4}
    assert rates["1"]["runs"][0] == {"seed": 8, "outcome": "stalls", "epoch": 4}  # was "from epoch 9", the last
    assert rates["100"]["runs"][0] == {"seed": 8, "outcome": "diverges", "epoch": 2}
    assert "lr 100 diverges at epoch 2" in f.answer and "lr 10 collapses from epoch 4" in f.answer
    assert "lr 0.1 learns by epoch 3" in f.answer
    assert [r["learning rate"] for r in f.table] == ["0.001", "0.01", "0.1", "1", "10", "100"]
    # the threshold first, then what it is a share of (the best rate's mean, here lr 0.1's 98%): "90% of the best
    # rate's mean (88.20%)" read as if 88.20% were the mean
    learns = next(d for d in f.details if d.startswith("*learns*"))
    assert "reaches 88.20%, 90% of the best rate's mean (98.00%)" in learns


def test_part1b_a_run_shorter_than_the_window_lags_rather_than_stalls_or_learns_slowly():
    """Real MNIST, 2 epochs: lr 0.01 at 7.9% -> 68.4% -> 71.9% (still rising 3.5 points) was said to stall, and lr 1
    at 10.2% -> 28.8% -> 32.5% to learn slowly: a trend over 3 points, one of them the untrained network. Below the
    learning level after fewer epochs than the window, a run lags; with the window's epochs it is judged."""
    best = 0.95
    assert F.classify_run(mlp_run(0.01, [0.079, 0.684, 0.719]), best) == ("lags", 2)
    assert F.classify_run(mlp_run(1, [0.102, 0.288, 0.325]), best) == ("lags", 2)
    assert F.classify_run(mlp_run(0.1, [0.1, 0.9, 0.95]), best) == ("learns", 1)  # short, but at the level: learns
    assert F.classify_run(mlp_run(10, [0.1, 0.1, 0.1]), best)[0] == "collapses"  # at chance: said at any length
    six = [0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # epochs 0-6: a window of 5 epochs after its first point, flat
    assert F.classify_run(mlp_run(0.01, six), best) == ("stalls", 1)
    # the epochs it trained decide, not the points of its curve (a history without epoch 0 is no shorter run)
    assert F.classify_run(mlp_run(0.01, [0.3, 0.35, 0.4, 0.45, 0.5]) | {"epochs": 5}, best)[0] == "learns slowly"
    assert F.classify_run(mlp_run(0.01, [0.3, 0.5, 0.5]) | {"epochs": 2}, best) == ("lags", 2)
    # a run without its per-epoch history (older runs): no curve to judge, whatever its epochs
    assert F.classify_run(mlp_run(0.01, [0.3, 0.5]) | {"epochs": 30, "history": []}, best) == ("no curve", None)
    f = F.part1b([mlp_run(0.01, [0.079, 0.684, 0.719]), mlp_run(0.1, [0.1, 0.9, 0.95])])
    assert "lr 0.01 lags after epoch 2" in f.answer
    assert any(d.startswith("*lags*: below that after fewer than 5 epochs") for d in f.details), f.details


def test_part1b_reports_mixed_seeds_as_counts():
    records = [
        mlp_run(0.1, [0.1, 0.9, 0.95], seed=8),
        mlp_run(1, [0.1, 0.9, 0.94], seed=8),
        mlp_run(1, [0.1, 0.5, 0.1], seed=9),
        mlp_run(1, [0.1, 0.92, 0.95], seed=10),
    ]
    f = F.part1b(records)
    assert f.evidence["rates"]["1"]["outcome"] == "mixed"
    assert f.evidence["rates"]["1"]["counts"] == {"learns": 2, "collapses": 1}
    assert "learns by epoch 1 in 2/3 runs, collapses from epoch 2 in 1/3 runs" in f.answer


# --- Part 1 (c) -----------------------------------------------------------------------------------------


def test_part1c_compares_with_the_seed_only_on_mnist():
    recs = [{"dataset": "mnist", "seed": s, "test_acc": a} for s, a in zip((8, 9, 10), (0.940, 0.945, 0.935))]
    f = F.part1c(recs)
    chk = f.evidence["reference_check"]
    assert chk["reference"] == MLP_FULL_TEST_ACC and chk["within"] is True
    assert chk["low"] == pytest.approx(0.94 - 2 * 0.005) and chk["high"] == pytest.approx(0.94 + 2 * 0.005)
    assert "94.00% ± 0.50% (n=3)" in f.answer
    assert "0.03 points below our mean and within our runs' mean ± 2 std [93.00%, 95.00%]: a run like ours" in f.answer
    far = F.part1c([{"dataset": "mnist", "test_acc": a} for a in (0.90, 0.901, 0.899)])
    assert far.evidence["reference_check"]["within"] is False
    assert "3.97 points above our mean and outside our runs' mean ± 2 std [89.80%, 90.20%]: far higher" in far.answer
    near = F.part1c([{"dataset": "mnist", "test_acc": a} for a in (0.944, 0.947, 0.950)])  # 2.5 std away
    assert "outside our runs' mean ± 2 std [94.10%, 95.30%]: a little lower than a run here" in near.answer
    digits = F.part1c([{"dataset": "digits", "test_acc": 0.96}])
    assert digits.evidence["compared_with_reference"] is False and "not compared" in digits.answer
    assert "dataset=digits (the assignment's: mnist)" in digits.answer
    one = F.part1c([{"dataset": "mnist", "test_acc": 0.95}])
    assert one.evidence["reference_check"]["within"] is None and "n=1, no spread" in one.answer
    # the write-up's number in percent everywhere, the question too; "the seed" is a random seed only
    assert one.question.endswith("beside the write-up's 93.97%") and "the write-up reported 93.97%" in one.answer
    assert "seed" not in one.answer + one.question


def test_part1c_compares_with_the_seed_only_at_the_assignments_settings():
    """MNIST, but 10,000 images for 5 epochs: the write-up's 93.97% (50,000 images, 30 epochs) is not its reference."""
    recs = [{"dataset": "mnist", "seed": s, "test_acc": 0.9, "epochs": 5, "train_size": 10000} for s in (8, 9)]
    f = F.part1c(recs)
    assert f.evidence["compared_with_reference"] is False and "outside" not in f.answer
    assert "epochs=5 (the assignment's: 30)" in f.answer and "train_size=10000 (the assignment's: None)" in f.answer
    full = [r | {"epochs": 30, "train_size": None, "hidden": [40], "lr": 0.1, "batch_size": 10} for r in recs]
    assert F.part1c(full).evidence["compared_with_reference"] is True
    assert F.off_reference([{"dataset": "cifar10", "width": 0.5, "epochs": 10}], "cnn") == [
        "width=0.5 (the assignment's: 1.0)"
    ]


def test_runs_on_files_that_are_not_the_official_ones_are_not_compared_with_the_write_up():
    """Synthetic MNIST or CIFAR-10 files (the tests' tiny ones, benchmarks/gpu_paper.sh's random pixels) at the
    assignment's settings: `mlp train` said the write-up's 93.97% does not apply, while REPORT.md put it beside
    chance accuracy as 'far higher than a run here typically gives' and gave the tables a reference column."""
    full = {"dataset": "mnist", "epochs": 30, "train_size": None, "hidden": [40], "lr": 0.1, "batch_size": 10}
    fake = [full | {"seed": s, "test_acc": 0.1, "dataset_files": "not the official files"} for s in (8, 9)]
    f = F.part1c(fake)
    assert f.evidence["compared_with_reference"] is False and "outside" not in f.answer
    assert "dataset_files=not the official files (the assignment's: official)" in f.answer
    real = [r | {"dataset_files": "official", "test_acc": 0.94 + 0.001 * i} for i, r in enumerate(fake)]
    assert F.part1c(real).evidence["compared_with_reference"] is True
    assert F.off_reference(real[:1] + fake[1:], "mlp") == [
        "dataset_files=not the official files in 1 of 2 runs (the assignment's: official)"
    ]
    recs = [
        cnn_run(v, s, [0.1, 0.1], dataset="cifar10") | {"dataset_files": "not the official files"}
        for v in ("sgd-0.005", "adam-5e-05")
        for s in range(2)
    ]
    f = F.part2_pair(recs, "a")
    compared = [d for d in f.details if "write-up" in d and not d.startswith("Not compared with the write-up")]
    assert "reference_checks" not in f.evidence and not compared
    # the write-up's answer is named as not compared (as Part 1 (c)'s is above), saying why
    assert any("differ in dataset_files=not the official files" in d for d in f.details)


# --- Part 2 ---------------------------------------------------------------------------------------------


def cnn_run(variant, seed, val_curve, test_acc=None, train_loss=1.0, dataset="digits"):
    hist = [{"epoch": e, "train_loss": train_loss, "train_acc": v, "val_acc": v} for e, v in enumerate(val_curve, 1)]
    return {
        "variant": variant,
        "seed": seed,
        "dataset": dataset,
        "val_acc": val_curve[-1],
        "test_acc": val_curve[-1] if test_acc is None else test_acc,
        "train_loss": train_loss,
        "diverged_epoch": None,
        "history": hist,
    }


def test_part2a_separated_variants_name_the_better_one():
    recs = [cnn_run("sgd-0.005", s, [0.3, 0.5 + 0.01 * s], train_loss=1.0 + 0.01 * s) for s in range(3)]
    recs += [cnn_run("adam-5e-05", s, [0.5, 0.7 + 0.01 * s], train_loss=0.5 + 0.01 * s) for s in range(3)]
    f = F.part2_pair(recs, "a")
    assert f.evidence["val_acc"]["diff"] == pytest.approx(0.2)
    assert f.evidence["val_acc"]["ci_low"] > 0 and f.evidence["train_loss"]["ci_high"] < 0
    assert "Adam lr=5e-5 better in validation accuracy (higher by 20.0 points)" in f.answer
    assert "Adam lr=5e-5 better in final training loss (lower by 0.5000)" in f.answer  # lower loss is better
    assert any(d.startswith("Final training loss") and d.endswith("lower for Adam lr=5e-5.") for d in f.details)
    assert "Neither variant collapsed" in f.answer
    # digits: no comparison with the CIFAR-10 numbers (the write-up's answer is named as not compared, for context)
    assert not any("write-up's" in d for d in f.details if not d.startswith("Not compared with the write-up"))


def test_part2_off_reference_names_the_write_ups_answer_as_not_compared():
    """On digits the Part 2 findings never said what the write-up found (Part 1 (c) names its 93.97%, 'not
    compared'): a reader of the default reproduction could not tell that the write-up's Adam lr 0.005 ended at chance
    (13.44%) where digits' does not. The answer is given for context, named as not compared, with what differs."""
    pair = {
        "a": ("sgd-0.005", "adam-5e-05", "+13.2 points of validation accuracy (61.89% vs 48.70%)"),
        "b": ("adam-0.005", "adam-5e-05", "+48.5 points of validation accuracy (61.89% vs 13.44%)"),
        "c": ("adam-5e-05-plain", "adam-5e-05", "+1.3 points of validation accuracy (61.89% vs 60.62%)"),
    }
    for part, (first, second, seeds_answer) in pair.items():
        recs = [cnn_run(first, s, [0.3, 0.5 + 0.01 * s]) | {"width": 0.5} for s in range(3)]
        recs += [cnn_run(second, s, [0.5, 0.7 + 0.01 * s]) | {"width": 0.5} for s in range(3)]
        f = F.part2c(recs) if part == "c" else F.part2_pair(recs, part)
        note = [d for d in f.details if d.startswith("Not compared with the write-up")]
        assert len(note) == 1, f.details
        assert "dataset=digits (the assignment's: cifar10); width=0.5 (the assignment's: 1.0)" in note[0]
        assert "For context only: The write-up (CIFAR-10, one run each):" in note[0] and seeds_answer in note[0]
        assert "reference_checks" not in f.evidence  # named, never set beside as a comparison
        on_cifar = [r | {"dataset": "cifar10", "width": 1.0} for r in recs]
        g = F.part2c(on_cifar) if part == "c" else F.part2_pair(on_cifar, part)
        assert not any(d.startswith("Not compared") for d in g.details)  # compared instead


def test_the_write_ups_test_accuracies_are_said_to_come_from_imagenet_normalised_inputs():
    """The assignment: the original test loader normalised with ImageNet's statistics, 'the project uses one
    normalisation and documents the difference'. README.md did; REPORT.md, which shows and compares the write-up's
    test accuracies, never said that they were measured on differently normalised inputs."""
    from mlhw.reference import CNN_TEST_NORMALISATION_NOTE as NOTE

    assert "ImageNet's statistics" in NOTE
    assert NOTE in F.part2_pair([], "a").answer and NOTE in F.part2c([]).answer  # not reproduced: the seed's answer
    digits = [cnn_run(v, s, [0.3, 0.5 + 0.01 * s]) for v in ("sgd-0.005", "adam-5e-05") for s in range(2)]
    assert any(NOTE in d for d in F.part2_pair(digits, "a").details)  # named as not compared
    cifar = [r | {"dataset": "cifar10"} for r in digits]
    details = F.part2_pair(cifar, "a").details
    assert any("test accuracy: the write-up's" in d for d in details) and NOTE in details  # compared


def test_part2b_collapse_to_chance_and_overlap():
    recs = [cnn_run("adam-0.005", s, [0.1, a]) for s, a in enumerate((0.10, 0.12, 0.09))]
    recs += [cnn_run("adam-5e-05", s, [0.1, a]) for s, a in enumerate((0.11, 0.60, 0.13))]
    f = F.part2_pair(recs, "b")
    assert f.evidence["chance"]["adam-0.005"] == {"collapsed": 3, "never_left": 3, "n": 3, "diverged": 0}
    assert f.evidence["chance"]["adam-5e-05"]["collapsed"] == 2
    # at chance from the first epoch to the last: it never learned, it did not collapse (ci's 1-epoch AlexNets read so)
    assert "Adam lr=0.005 never left chance (validation accuracy within 5 points of 10.00%) in 3/3 runs" in f.answer
    learned_then_fell = [cnn_run("adam-0.005", s, [0.5, a]) for s, a in enumerate((0.10, 0.12, 0.60))]
    g = F.part2_pair(learned_then_fell + recs[3:], "b")
    assert g.evidence["chance"]["adam-0.005"] == {"collapsed": 2, "never_left": 0, "n": 3, "diverged": 0}
    assert "Adam lr=0.005 collapsed to chance (validation accuracy within 5 points of 10.00%) in 2/3 runs" in g.answer
    assert f.evidence["val_acc"]["verdict"] == "not distinguishable"
    # the difference stays in the headline, with scipy's Welch interval: a gap of 17.7 points is not "nothing"
    diff, lo, hi, _ = welch_by_hand([0.10, 0.12, 0.09], [0.11, 0.60, 0.13])
    assert (
        f"validation accuracy Adam lr=5e-5 − Adam lr=0.005 = {100 * diff:+.1f} points, not distinguishable with "
        f"n=3 vs 3 (95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}])" in f.answer
    )


def test_part2_reference_numbers_on_cifar10():
    ref = CNN_REFERENCE["adam-5e-05"]["val_acc"]
    recs = [cnn_run("sgd-0.005", s, [0.3, 0.48 + 0.01 * s], dataset="cifar10") for s in range(3)]
    recs += [cnn_run("adam-5e-05", s, [0.5, ref - 0.01 + 0.01 * s], dataset="cifar10") for s in range(3)]
    f = F.part2_pair(recs, "a")
    checks = f.evidence["reference_checks"]
    assert checks["adam-5e-05"]["val_acc"]["within"] is True
    assert checks["sgd-0.005"]["val_acc"]["within"] is True  # 0.487 within 0.49 +- 0.02
    assert any("the write-up's 61.89% lies within" in d for d in f.details)


def test_part2_missing_variant_is_not_reproduced_and_the_seeds_answer_is_given():
    f = F.part2_pair([cnn_run("adam-5e-05", 0, [0.5])], "a")
    assert "not reproduced" in f.answer and f.evidence["missing"] == ["sgd-0.005"]
    # the assignment's table: Adam 61.89% / 62.49% / 0.6086, SGD 48.7% / 49.91% / 1.1383; independent 58.9, 47.7
    assert (
        "The write-up (CIFAR-10, one run each): Adam lr=5e-5 − SGD lr=0.005 = +13.2 points of validation accuracy "
        "(61.89% vs 48.70%), +12.6 of test accuracy, final training loss -0.5297; an independent solution: +11.2"
    ) in f.answer
    b = F.part2_pair([], "b").answer
    assert "Adam lr=5e-5 − Adam lr=0.005 = +48.5 points of validation accuracy (61.89% vs 13.44%)" in b
    c = F.part2c([]).answer
    assert "+1.3 points of validation accuracy (61.89% vs 60.62%), +0.6 of test accuracy (its table gives no" in c
    assert "needs per-epoch curves" in c
    assert "the question compares" not in f.answer + b + c  # nothing else ran: nothing to tell apart


def test_part2_answer_names_the_variants_a_grid_ran_instead_of_the_questions():
    """A grid of sgd-0.005 and adam-0.005 made a table of those two; the answer said only 'No runs of adam-5e-05',
    which read as a contradiction of the table beside it."""
    recs = [cnn_run(v, s, [0.3, 0.4]) for v in ("sgd-0.005", "adam-0.005") for s in range(2)]
    f = F.part2_pair(recs, "a")
    assert f.answer.startswith(
        "No finished run of Adam lr=5e-5 in the store: not reproduced here (the question compares SGD lr=0.005 "
        "with Adam lr=5e-5; this suite ran SGD lr=0.005, Adam lr=0.005). The write-up (CIFAR-10, one run each):"
    )
    assert "sgd-0.005" not in f.answer  # the variants in the assignment's words, as the tables name them
    c = F.part2c([cnn_run("adam-0.005", 0, [0.3, 0.4])]).answer
    assert "(the question compares Adam lr=5e-5, no BN/Dropout with Adam lr=5e-5; this suite ran Adam lr=0.005)" in c


def test_part2c_is_about_speed_with_per_seed_epochs():
    # the weaker variant's (no BN+Dropout) mean final val acc 0.7467: level 0.672, which both reach. BN reaches it at
    # epochs 2, 2, 3; plain at 5, 6, 7.
    bn_curves = [[0.5, 0.75, 0.78, 0.8, 0.8, 0.8, 0.8], [0.6, 0.73, 0.8, 0.8, 0.8, 0.8, 0.8]]
    bn_curves += [[0.4, 0.6, 0.721, 0.8, 0.8, 0.8, 0.8]]
    plain_curves = [[0.2, 0.3, 0.4, 0.5, 0.721, 0.74, 0.75], [0.2, 0.3, 0.4, 0.5, 0.6, 0.73, 0.74]]
    plain_curves += [[0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.75]]
    recs = [cnn_run("adam-5e-05", s, c) for s, c in enumerate(bn_curves)]
    recs += [cnn_run("adam-5e-05-plain", s, c) for s, c in enumerate(plain_curves)]
    f = F.part2c(recs)
    sp = f.evidence["speed"]
    assert sp["level"] == pytest.approx(0.9 * (0.75 + 0.74 + 0.75) / 3) and sp["level_of"] == "weaker"
    assert [x["epochs"] for x in sp["per_seed"]["adam-5e-05"]] == [2, 2, 3]
    assert [x["epochs"] for x in sp["per_seed"]["adam-5e-05-plain"]] == [5, 6, 7]
    assert sp["diff"] == pytest.approx(7 / 3 - 6) and "ci_low" not in sp  # epoch counts: ranks, not Welch's t
    # every run with before every run without, at 3 vs 3: the rank test's least p, 0.10, decides nothing (Welch's t
    # said Yes here, while the same split with runs that never got there, a stronger effect, could only be undecided)
    assert sp["rank_p"] == pytest.approx(0.1) and sp["with_later_share"] == 0
    # epoch counts read as counts: the runs' own epochs, then the means and their difference
    assert f.answer.startswith("Undecided with n=3 vs 3:")
    assert "in 2, 2, 3 epochs with BN+Dropout vs 5, 6, 7 epochs without (mean 2.33 vs 6: difference -3.67 epochs)" in (
        f.answer
    )
    assert "±" not in f.answer.split(";")[0]
    assert "every run with BN+Dropout got there before every run without" in f.answer
    assert "4 runs a side could decide" in f.answer
    more = recs + [cnn_run("adam-5e-05", 3, bn_curves[0]), cnn_run("adam-5e-05-plain", 3, plain_curves[1])]
    g = F.part2c(more)
    assert g.answer.startswith("Yes:") and "exact rank test p = 0.03 at 4 vs 4" in g.answer  # 2 / C(8, 4)
    tied = [cnn_run("adam-5e-05", s, bn_curves[0]) for s in range(4)]  # epoch 2 in every run, not "2.00 ± 0.00"
    h = F.part2c(tied + [r for r in more if r["variant"].endswith("plain")])
    assert (
        "in 2 epochs in every run (n=4) with BN+Dropout vs 5, 6, 6, 7 epochs without (mean 2 vs 6: difference -4 "
        in h.answer
    )
    assert "2.00" not in h.answer and "± 0.00" not in h.answer
    assert f.table[0] == {
        "seed": 0,
        "epochs to 67.20% with BN+Dropout": 2,
        "epochs to 67.20% without": 5,
    }
    # the final accuracies are there too
    assert f.evidence["val_acc"]["verdict"] == "second higher"
    assert any(d.startswith("Validation accuracy: BN+Dropout − no BN+Dropout") for d in f.details)


def test_part2c_not_reached_is_counted_not_averaged():
    recs = [cnn_run("adam-5e-05", s, [0.5, 0.8, 0.8]) for s in range(3)]
    recs += [cnn_run("adam-5e-05-plain", s, [0.1, 0.12, 0.11]) for s in range(3)]  # never leaves chance
    f = F.part2c(recs)
    sp = f.evidence["speed"]
    assert sp["verdict"] == "censored" and sp["reached"] == {"adam-5e-05-plain": 0, "adam-5e-05": 3}
    assert sp["level_of"] == "better" and sp["level"] == pytest.approx(0.72)  # 90% of 0.8: the weaker has no level
    assert "ci_low" not in sp
    assert "reached in 3/3 runs with BN+Dropout vs 0/3 without" in f.answer
    # a clean split of 3 runs a side comes by chance with probability 0.10: named, not taken for an answer
    assert f.answer.startswith("Undecided with n=3 vs 3: ") and "though every run with BN+Dropout got there" in f.answer
    assert all(r[k] == "not reached" for r in f.table for k in r if "without" in k)
    # a weaker variant that learns, to 0.4: the level is 90% of that, both reach it, and the epochs are compared
    # (the better's 0.72, the rule before, was out of its reach: "not reached" restated the final accuracies)
    learns = recs[:3] + [cnn_run("adam-5e-05-plain", s, [0.2, 0.3, 0.4]) for s in range(3)]
    g = F.part2c(learns)
    assert (
        g.evidence["speed"]["level"] == pytest.approx(0.36) and g.evidence["speed"]["reached"]["adam-5e-05-plain"] == 3
    )
    assert (
        "they reach 36.00% validation accuracy (90% of the weaker variant's mean final 40.00%) in 1 epoch in every run "
        "(n=3) with BN+Dropout vs 3 epochs in every run (n=3) without" in g.answer
    )
    mixed = [cnn_run("adam-5e-05", s, c) for s, c in enumerate(([0.5, 0.8], [0.5, 0.6]))]
    mixed += [cnn_run("adam-5e-05-plain", s, c) for s, c in enumerate(([0.5, 0.8], [0.5, 0.6]))]
    assert F.part2c(mixed).answer.startswith("Undecided")


def test_part2c_a_clean_split_with_runs_that_never_got_there_is_an_answer():
    """digits on an AMD EPYC: BN+Dropout reached the level at epochs 3, 3, 3 and the runs without at 9, never,
    never. It read "Undecided ... 3/3 vs 1/3 ... no interval" (only "none without" counted), while every run with got
    there 6 epochs before any run without. A run that never got there is later than any that did (every run trains
    as many epochs): the exact permutation test applies. Its probability decides as a 95% interval would: 0.10 at
    3 vs 3 is named ("though ..."), as (a) and (b) name a clean split; 0.029 at 4 vs 4 is a Yes."""
    fast = [0.2, 0.9, 0.9, 0.9, 0.9]  # at the level from epoch 2
    slow = ([0.2, 0.2, 0.2, 0.2, 0.85], [0.1] * 5, [0.1] * 5, [0.1] * 5)  # epoch 5, then never (at chance)
    recs = [cnn_run("adam-5e-05", s, fast) for s in range(3)]
    recs += [cnn_run("adam-5e-05-plain", s, c) for s, c in enumerate(slow[:3])]
    f = F.part2c(recs)
    assert f.evidence["speed"]["level"] == pytest.approx(0.9 * 0.35)  # 90% of the weaker's mean final, 35%
    assert f.answer.startswith("Undecided with n=3 vs 3: ") and "reached in 3/3 runs with BN+Dropout vs 1/3" in f.answer
    assert "(within the epochs trained: epochs 2, 2, 2 with vs 5, -, - without)" in f.answer
    assert (
        ", though every run with BN+Dropout got there before every run without (so clean a split comes by chance "
        "with probability 0.10 at 3 vs 3; 4 runs a side could decide)." in f.answer
    )
    assert f.evidence["speed"]["with_later_share"] == 0 and f.evidence["speed"]["rank_p"] == pytest.approx(2 / 20)
    four = recs[:3] + [cnn_run("adam-5e-05", 3, fast)] + recs[3:] + [cnn_run("adam-5e-05-plain", 3, slow[3])]
    g = F.part2c(four)
    assert g.answer.startswith("Yes: ") and "exact rank test p = 0.03 at 4 vs 4" in g.answer, g.answer  # 2 / C(8, 4)
    swap = {"adam-5e-05": "adam-5e-05-plain", "adam-5e-05-plain": "adam-5e-05"}
    h = F.part2c([r | {"variant": swap[r["variant"]]} for r in four])
    assert (
        h.answer.startswith("No, rather the opposite: ") and "every run without BN+Dropout got there before" in h.answer
    )
    # interleaved: one run with BN+Dropout later than one without: no clean split, undecided with its p
    recs[0] = cnn_run("adam-5e-05", 0, [0.3] * 5)
    mixed = F.part2c(recs).answer
    assert mixed.startswith("Undecided with n=3 vs 3: ") and "though" not in mixed and "rank test p = 0.40" in mixed
    # a run without its history is not a run that never got there
    recs[0] = cnn_run("adam-5e-05", 0, fast) | {"history": []}
    unknown = F.part2c(recs)
    assert unknown.answer.startswith("Undecided: 1 run(s) have no per-epoch history (history.csv)")
    assert unknown.table == []  # its run would read "not reached" there: unknown is not never


def test_part2c_one_run_a_side_or_a_level_at_chance_decides_nothing():
    """ci's AlexNet: one run a side, the best final validation accuracy 15.38%. Reaching 90% of it (13.85%) is
    within 5 points of chance, and one run a side says nothing of a variant: no "rather the opposite"."""
    one = [cnn_run("adam-5e-05", 0, [0.5, 0.8]), cnn_run("adam-5e-05-plain", 0, [0.5, 0.6])]
    f = F.part2c(one)
    assert f.answer.startswith("Undecided with one run a side: they reach 54.00% ")  # both reach it: epochs 2, 2
    three = [cnn_run("adam-5e-05", s, [0.5, 0.8]) for s in range(3)] + [cnn_run("adam-5e-05-plain", 0, [0.5, 0.6])]
    assert F.part2c(three).answer.startswith("Undecided with one run without BN+Dropout: ")
    censored = [cnn_run("adam-5e-05", 0, [0.5, 0.8]), cnn_run("adam-5e-05-plain", 0, [0.1, 0.1])]  # one never learns
    g = F.part2c(censored)
    assert g.answer.startswith("Undecided with one run a side: ") and "reached in 1/1 runs with BN+Dropout" in g.answer
    at_chance = [cnn_run("adam-5e-05", 0, [0.1, 0.1]), cnn_run("adam-5e-05-plain", 0, [0.1, 0.1538])]
    at_chance += [cnn_run("adam-5e-05", 1, [0.1, 0.1]), cnn_run("adam-5e-05-plain", 1, [0.1, 0.1538])]
    f = F.part2c(at_chance)
    assert f.evidence["speed"]["verdict"] == "no learning"
    # the better variant ended 5.4 points above chance (the margin is 5): it learned, barely; 90% of it did not
    assert f.answer.startswith(
        "Undecided: the better variant ends only 5.4 points above chance: the level to reach, 13.84% "
    ), f.answer
    assert f.table == [] and g.table  # no table of epochs to a level that is no learning: it would contradict it


def test_part2c_no_distinguishable_speed():
    recs = [cnn_run("adam-5e-05", s, c) for s, c in enumerate(([0.8, 0.8], [0.5, 0.8], [0.8, 0.8]))]
    recs += [cnn_run("adam-5e-05-plain", s, c) for s, c in enumerate(([0.5, 0.8], [0.8, 0.8], [0.5, 0.8]))]
    f = F.part2c(recs)
    assert f.evidence["speed"]["verdict"] == "compared" and f.evidence["speed"]["rank_p"] == 1
    assert f.answer.startswith("Undecided with n=3 vs 3") and "exact rank test p = 1.00 at 3 vs 3" in f.answer


# --- all of it, rendered --------------------------------------------------------------------------------


def test_build_findings_renders_every_question():
    recs = {
        "mlp_lr_sweep": [mlp_run(0.1, [0.1, 0.9, 0.95]), mlp_run(100, [0.1, 0.1, 0.1])],
        "mlp_full": [{"dataset": "digits", "test_acc": 0.96, "seed": 8}],
        "cnn_optimizers": [cnn_run(v, s, [0.5, 0.7]) for v in ("sgd-0.005", "adam-5e-05") for s in range(2)],
    }
    fs = F.build_findings(recs)
    assert [f.part for f in fs] == ["1b", "1c", "2a", "2b", "2c"]
    assert "not reproduced" in fs[3].answer and "not reproduced" in fs[4].answer
    assert [f.part for f in F.build_findings(recs, include_missing=False)] == ["1b", "1c", "2a"]
    md = F.to_markdown(fs)
    assert md.startswith("## Findings") and "| learning rate | outcome |" in md
    assert all(f.question in md for f in fs)
    text = F.to_text(fs)
    assert "Part 1 (b)" in text and "*" not in text
    json.dumps([f.to_dict() for f in fs])  # evidence is plain data

    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(F.to_rich(fs))
    assert "Part 2 (a)" in console.export_text()


def test_a_findings_question_is_never_cut_at_any_width():
    """At 80 columns rich cut a panel's border title mid-word ('which optimizer trains AlexN'): a question too long
    for the border is the panel's first line, wrapped; one that fits stays in the border."""
    import re

    from rich.console import Console

    recs = {"cnn_optimizers": [cnn_run(v, s, [0.5, 0.7]) for v in ("sgd-0.005", "adam-5e-05") for s in range(2)]}
    fs = F.build_findings(recs, include_missing=False)
    question = fs[0].question
    assert len(question) > 74  # too long for an 80-column border: the case at hand
    for width in (60, 80, 200):
        console = Console(record=True, width=width)
        console.print(F.to_rich(fs))
        text = console.export_text()
        flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
        assert question in flat, (width, text)
        assert max(map(len, text.splitlines())) <= width
    assert "╭─ Part 2 (a)" in text  # at 200 columns, in the border


def test_part2c_when_neither_variant_learns_there_is_no_speed_to_compare():
    recs = [cnn_run(v, s, [0.1, 0.11]) for v in ("adam-5e-05", "adam-5e-05-plain") for s in range(2)]
    f = F.part2c(recs)
    assert f.evidence["speed"]["verdict"] == "no learning" and f.answer.startswith("Undecided: neither variant learned")
    assert "never left chance" in f.answer


def test_divergence_from_history_follows_the_one_rule():
    """Without a diverged_epoch tag, a history is judged by mlhw.divergence: a finite loss above 10 ln 10
    diverges; epoch 0 (before any step, N(0, 1) weights) is never judged."""
    accs = [0.1] * 5
    big = 10 * math.log(10) + 1
    assert F.diverged_epoch(mlp_run(100, accs, losses=[big, 2, big, 2, 2], with_divergence=False)) == 2
    assert F.diverged_epoch(mlp_run(100, accs, losses=[big, 2, 2, 2, 2], with_divergence=False)) is None
    assert F.diverged_epoch(mlp_run(100, accs, losses=[1, 2, 2, 2, 2], diverged_epoch=3)) == 3
    # a slow start: above the threshold after epoch 1 but falling from epoch 0 on (the training loop's verdict)
    slow = [35.7, 29.2, 24.7, 21.0, 18.0]
    assert F.diverged_epoch(mlp_run(0.001, accs, losses=slow, diverged_epoch=None)) is None
    assert F.diverged_epoch(mlp_run(0.001, accs, losses=slow, with_divergence=False)) is None


# Two real curves: MNIST, 10,000 / 5,000, 30 epochs, seed 8 (the paper profile). lr 1 is flat at 27% +- 5 from
# epoch 9 on; lr 0.01 still climbs 0.15 point an epoch and ends at 87.55%, just below the level 87.67%.
MNIST_LR1 = [0.0792, 0.2058, 0.2002, 0.2051, 0.2027, 0.2043, 0.2132, 0.2286, 0.2198, 0.295, 0.282, 0.2548, 0.2506]
MNIST_LR1 += [0.1736, 0.2683, 0.3093, 0.296, 0.2868, 0.2804, 0.3049, 0.2675, 0.2797, 0.2659, 0.276, 0.2554, 0.1917]
MNIST_LR1 += [0.243, 0.262, 0.2717, 0.2136, 0.2564]
MNIST_LR001 = [0.0792, 0.6835, 0.7186, 0.7424, 0.7703, 0.7838, 0.795, 0.7953, 0.8085, 0.8125, 0.8213, 0.8283]
MNIST_LR001 += [0.8353, 0.8233, 0.8346, 0.8446, 0.8464, 0.8475, 0.8556, 0.8513, 0.8559, 0.8632, 0.8614, 0.8615]
MNIST_LR001 += [0.8629, 0.8677, 0.8706, 0.8713, 0.8758, 0.8768, 0.8755]


def test_a_flat_noisy_curve_stalls_and_a_slow_climb_learns_slowly():
    """The end-point rule (last minus fifth-last >= 1 point) called MNIST's flat lr 1 'learns slowly' (+4.2 by
    chance) and its still-climbing lr 0.01 'stalls' (+0.8); the trend over the last third does not."""
    best = 0.9741  # lr 0.1's mean final training accuracy there
    assert MNIST_LR1[-1] - MNIST_LR1[-6] >= 0.01 and MNIST_LR001[-1] - MNIST_LR001[-6] < 0.01  # the old rule's view
    assert F.classify_run(mlp_run(1.0, MNIST_LR1), best) == ("stalls", 15)  # its best, 30.93%
    assert F.classify_run(mlp_run(0.01, MNIST_LR001), best) == ("learns slowly", None)
    rng = np.random.default_rng(0)
    flat = [[0.27 + 0.05 * rng.standard_normal() for _ in range(31)] for _ in range(20)]
    assert sum(F.still_rising(c) for c in flat) <= 2  # a 2-standard-error slope: rare on noise
    assert all(F.still_rising([0.5 + 0.002 * e + 0.002 * rng.standard_normal() for e in range(31)]) for _ in range(20))
    assert not F.still_rising([0.5 + 0.0003 * e for e in range(31)])  # steady but under 1 point over 10 epochs
    assert F.still_rising([0.2, 0.25]) and not F.still_rising([0.2, 0.205])  # two points: their difference


def test_an_interval_cut_to_100_points_says_so():
    """Welch's interval for a difference of accuracies can pass beyond ±1 with 3 seeds (digits' Adam lr 0.005: the
    upper end +114.7 points); it is cut to what accuracies can differ by, and the sentence says so."""
    first, second = [0.858, 0.414, 0.338], [0.9867, 0.98, 0.99]
    _, lo, hi, _ = welch_by_hand(first, second)
    assert hi > 1.0
    d = F.welch_difference(first, second, "test_acc", ("Adam lr=0.005", "Adam lr=5e-5"))
    assert d.clipped and d.high == 1.0 and d.low == pytest.approx(lo)
    assert f"[{100 * lo:+.1f}, +100.0], cut at ±100 points, Welch df" in F.difference_sentence(d)
    assert not F.welch_difference([0.5, 0.6, 0.55], [0.6, 0.7, 0.65], "test_acc").clipped


def test_the_rank_test_is_mann_whitneys_exact_test_and_takes_runs_that_never_got_there():
    """Against scipy's exact Mann-Whitney U (no ties), and by hand where runs that never reached a level tie at inf
    (a clean split gives split_probability)."""
    from scipy.stats import mannwhitneyu

    from mlhw.stats import rank_test, split_probability

    rng = np.random.default_rng(1)
    for n1, n2 in ((2, 3), (3, 3), (4, 5), (5, 5)):
        x, y = rng.random(n1).tolist(), (rng.random(n2) + 0.3).tolist()
        ref = mannwhitneyu(x, y, alternative="two-sided", method="exact")
        p, u = rank_test(x, y)
        assert p == pytest.approx(ref.pvalue) and u == pytest.approx(ref.statistic / (n1 * n2))
    # with ties (epoch counts, inf for never), against every deal counted one by one
    import itertools

    def brute(x, y):
        pooled, n1 = list(x) + list(y), len(x)

        def u(group):
            rest = [j for j in range(len(pooled)) if j not in group]
            return sum((pooled[i] > pooled[j]) + 0.5 * (pooled[i] == pooled[j]) for i in group for j in rest)

        deals = list(itertools.combinations(range(len(pooled)), n1))
        far = abs(u(tuple(range(n1))) - n1 * len(y) / 2) - 1e-9
        return sum(abs(u(g) - n1 * len(y) / 2) >= far for g in deals) / len(deals)

    inf = math.inf
    for _ in range(30):
        x = rng.choice([1, 2, 3, 4, inf], size=rng.integers(1, 6)).tolist()
        y = rng.choice([2, 3, 5, inf], size=rng.integers(1, 6)).tolist()
        assert rank_test(x, y)[0] == pytest.approx(brute(x, y)), (x, y)
    # 15 runs a side: counted by rank sums, not deal by deal (C(30, 15) = 155 million deals)
    assert rank_test(list(range(15)), list(range(15, 30)))[0] == pytest.approx(2 / math.comb(30, 15))
    assert rank_test([3, 3, 3], [9, inf, inf])[0] == pytest.approx(split_probability([3, 3, 3], [9, inf, inf]))
    assert rank_test([3, 3], [inf, inf, inf]) == (pytest.approx(1 / 10), 0)
    assert rank_test([2, 2], [2, 2]) == (1.0, 0.5)  # all tied: nothing to tell


def test_split_probability_is_the_exact_permutation_probability():
    """Without ties it is Mann-Whitney's exact two-sided p at U = 0 (scipy); with ties at the boundary one extreme
    can be impossible: epochs 3, 3 against three runs that never reached the level (inf) can split one way only."""
    from scipy.stats import mannwhitneyu

    from mlhw.stats import split_probability

    rng = np.random.default_rng(0)
    for n1, n2 in ((2, 2), (3, 3), (2, 5), (5, 5)):
        low, high = sorted(rng.random(n1)), sorted(1 + rng.random(n2))
        exact = mannwhitneyu(low, high, alternative="two-sided", method="exact").pvalue
        assert split_probability(low, high) == pytest.approx(exact) == pytest.approx(2 / math.comb(n1 + n2, n1))
    inf = math.inf
    assert split_probability([3, 3], [inf, inf, inf]) == pytest.approx(1 / 10)  # by hand: 1 deal of C(5, 2)
    assert split_probability([3, 3, 3], [9, inf, inf]) == pytest.approx(2 / 20)  # both extremes possible
    assert split_probability([1, 2], [2, 3]) == 0  # groups that touch: no deal of these values splits cleanly


def test_the_spread_of_a_difference_is_the_sample_standard_deviation():
    """Over seeds, the spread is the sample standard deviation (n - 1), as the tables' std: statistics.stdev is the
    oracle (a population std, n, passed every other test)."""
    import statistics

    from mlhw.stats import mean_std, welch_difference

    first, second = [0.91, 0.93, 0.96], [0.80, 0.86, 0.85, 0.90]
    d = welch_difference(first, second)
    assert d.std_first == pytest.approx(statistics.stdev(first), rel=1e-12)
    assert d.std_second == pytest.approx(statistics.stdev(second), rel=1e-12)
    assert mean_std(second)["std"] == pytest.approx(statistics.stdev(second), rel=1e-12)
    assert mean_std([0.5])["std"] is None and math.isnan(welch_difference([0.5], second).std_first)


def test_groups_that_touch_are_not_a_clean_split_and_the_split_probability_is_a_count_of_deals():
    """a = [1, 2], b = [2, 3] share the value 2: neither lies wholly above the other. split_probability against every
    deal of the pooled values counted one by one (itertools), ties and inf included."""
    import itertools

    from mlhw.stats import split_probability, welch_difference

    touching = welch_difference([1.0, 2.0], [2.0, 3.0], "val_loss")
    assert touching.above is None and touching.split_p is None
    apart = welch_difference([1.0, 2.0], [2.5, 3.0], "val_loss")
    assert apart.above == "second" and apart.split_p == pytest.approx(2 / 6)

    def brute(x, y):
        pooled = list(x) + list(y)
        deals = list(itertools.combinations(range(len(pooled)), len(x)))
        clean = 0
        for group in deals:
            a = [pooled[i] for i in group]
            b = [pooled[i] for i in range(len(pooled)) if i not in group]
            clean += max(a) < min(b) or max(b) < min(a)
        return clean / len(deals)

    rng = np.random.default_rng(2)
    for _ in range(40):
        x = rng.choice([1.0, 2.0, 3.0, math.inf], size=rng.integers(1, 5)).tolist()
        y = rng.choice([2.0, 3.0, 4.0, math.inf], size=rng.integers(1, 5)).tolist()
        assert split_probability(x, y) == pytest.approx(brute(x, y), abs=1e-15), (x, y)
    assert split_probability([1, 2], [2, 3]) == brute([1, 2], [2, 3]) == 0


def test_p_text_gives_two_decimals_and_one_significant_digit_below_one_percent():
    from mlhw.stats import p_text

    assert p_text(2 / 252) == "0.008"  # 0.0079...: one significant digit below 0.01
    assert p_text(0.0999) == "0.10"  # two decimals from 0.01 on, rounded
    assert p_text(0.01) == "0.01" and p_text(0.0099) == "0.01" and p_text(1.0) == "1.00"
    assert p_text(2 / math.comb(10, 5)) == "0.008" and p_text(2 / math.comb(30, 15)) == "1e-08"


def test_welch_difference_takes_its_confidence_level():
    """At 90%: scipy's interval for mean(second) - mean(first) at 0.9, narrower than at 95%."""
    a, b = [0.50, 0.60, 0.40, 0.55], [0.52, 0.68, 0.65]
    d = F.welch_difference(a, b, "val_loss", confidence=0.9)
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert (d.low, d.high) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    _, lo, hi, _ = welch_by_hand(a, b, 0.9)
    assert (d.low, d.high) == (pytest.approx(lo, rel=1e-9), pytest.approx(hi, rel=1e-9))
    wide = F.welch_difference(a, b, "val_loss")
    assert wide.low < d.low < d.high < wide.high and d.confidence == 0.9


# --- oracles for mutants the suite let through (hand mutation testing of findings, round 2) --------------------


def test_a_collapse_is_dated_from_the_first_trained_epoch_at_chance_never_from_the_untrained_network():
    """At chance in every epoch: 'collapses from epoch 1' (the first epoch after a step), not from epoch 0, the
    untrained network. A history without epoch 0 (a CNN's) collapses from its first epoch, 1, not its second."""
    at_chance = mlp_run(10, [0.1, 0.1, 0.1, 0.1])  # epochs 0-3
    assert F.classify_run(at_chance, 0.9) == ("collapses", 1)
    no_epoch_0 = at_chance | {"history": at_chance["history"][1:]}  # epochs 1-3
    assert F.classify_run(no_epoch_0, 0.9) == ("collapses", 1)
    fell = mlp_run(10, [0.1, 0.6, 0.1, 0.1])  # learned at epoch 1, at chance from epoch 2
    assert F.classify_run(fell, 0.9) == ("collapses", 2)


def test_a_stall_is_dated_from_the_first_epoch_within_the_gain_of_its_best_the_edge_included():
    """Numbers exact in binary: best 0.5, gain 0.25, so 'within gain of its best' is >= 0.25, which epoch 1 is exactly.
    Flat at 0.5 for its last 6 epochs (no rise), below the learning level 0.9 x 1.0: it stalls from epoch 1."""
    run = mlp_run(0.01, [0.125, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert F.classify_run(run, 1.0, gain=0.25) == ("stalls", 1)


def test_part1b_gives_the_range_of_epochs_its_runs_learned_by():
    """Two seeds of one rate reach the level (0.9 x 0.95 = 0.855) at epochs 1 and 2: 'learns by epoch 1-2', not the
    first run's epoch alone."""
    f = F.part1b([mlp_run(0.1, [0.1, 0.9, 0.95], seed=1), mlp_run(0.1, [0.1, 0.5, 0.95], seed=2)])
    assert f.answer == "lr 0.1 learns by epoch 1-2."


@pytest.mark.parametrize(
    "kind, name, value, said",
    [
        ("mlp", "hidden", [100], "hidden=[100] (the assignment's: [40])"),
        ("mlp", "epochs", 5, "epochs=5 (the assignment's: 30)"),
        ("mlp", "batch_size", 20, "batch_size=20 (the assignment's: 10)"),
        ("mlp", "lr", 0.5, "lr=0.5 (the assignment's: 0.1)"),
        ("mlp", "train_size", 1000, "train_size=1000 (the assignment's: None)"),
        ("mlp", "test_size", 500, "test_size=500 (the assignment's: None)"),
        ("cnn", "epochs", 5, "epochs=5 (the assignment's: 10)"),
        ("cnn", "batch_size", 32, "batch_size=32 (the assignment's: 64)"),
        ("cnn", "width", 0.5, "width=0.5 (the assignment's: 1.0)"),
        ("cnn", "image_size", 67, "image_size=67 (the assignment's: 227)"),
        ("cnn", "train_fraction", 0.5, "train_fraction=0.5 (the assignment's: 0.1)"),
        ("cnn", "momentum", 0.9, "momentum=0.9 (the assignment's: 0.0)"),
    ],
)
def test_a_run_off_the_assignments_setting_in_any_one_field_is_not_compared_with_the_write_up(kind, name, value, said):
    """The write-up's numbers were measured at the assignment's settings (Part 1: [40] hidden, 30 epochs, batch 10, lr
    0.1, the whole MNIST; Part 2: CIFAR-10, 10 epochs, batch 64, the paper's AlexNet at 227 px on 10% of the pool,
    no momentum). A run that differs in any one of them is another measurement: named, not compared."""
    at_reference = {
        "mlp": {"dataset": "mnist", "hidden": [40], "epochs": 30, "batch_size": 10, "lr": 0.1, "train_size": None}
        | {"test_size": None},
        "cnn": {"dataset": "cifar10", "epochs": 10, "batch_size": 64, "width": 1.0, "image_size": 227}
        | {"train_fraction": 0.1, "momentum": 0.0},
    }[kind]
    assert F.off_reference([at_reference], kind) == []
    assert F.off_reference([at_reference | {name: value}], kind) == [said]
    if kind == "mlp":
        recs = [at_reference | {name: value, "seed": s, "test_acc": 0.94 + 0.001 * s} for s in (8, 9)]
        f = F.part1c(recs)
        assert f.evidence["compared_with_reference"] is False and said in f.answer


def test_a_run_without_its_curve_that_ends_at_chance_is_not_said_to_have_never_left_it():
    """'Never left chance' is a fact of a curve: a run at chance with no per-epoch history (an older run without
    history.csv) collapsed (it ended there), but whether it ever left chance is not known."""
    recs = [cnn_run("adam-0.005", s, [0.5, 0.1]) | {"history": []} for s in range(2)]
    recs += [cnn_run("adam-5e-05", s, [0.5, 0.6 + 0.01 * s]) for s in range(2)]
    f = F.part2_pair(recs, "b")
    assert f.evidence["chance"]["adam-0.005"] == {"collapsed": 2, "never_left": 0, "n": 2, "diverged": 0}
    assert "never left chance" not in f.answer


def test_runs_that_never_left_chance_are_not_also_said_to_have_collapsed():
    """At chance at every epoch in 3 of 3 runs: 'never left chance in 3/3 runs', and no 'collapsed to chance in 3/3
    runs' beside it (the same runs said twice, the second time wrongly)."""
    recs = [cnn_run("adam-0.005", s, [0.1, a]) for s, a in enumerate((0.10, 0.12, 0.09))]
    recs += [cnn_run("adam-5e-05", s, [0.5, 0.6 + 0.01 * s]) for s in range(3)]
    f = F.part2_pair(recs, "b")
    assert "Adam lr=0.005 never left chance" in f.answer and "collapsed to chance" not in f.answer
    c = F.part2c([cnn_run("adam-5e-05-plain", s, [0.1, 0.1]) for s in range(2)] + recs[3:5])
    assert "never left chance" in c.answer and "collapsed to chance" not in c.answer


def test_part2c_measures_speed_at_a_level_beyond_chance_when_the_weaker_variant_ends_just_above_it():
    """The runs without BN+Dropout end at 16%, 1 point above chance + margin (15%); 90% of that, 14.4%, is at chance:
    no level of learning. The level is then 90% of the better variant's 80%, 72%, which BN+Dropout reaches at epoch 2
    and the others never: a speed to compare, not 'no learning'."""
    recs = [cnn_run("adam-5e-05", s, [0.5, 0.8]) for s in range(3)]
    recs += [cnn_run("adam-5e-05-plain", s, [0.1, 0.16]) for s in range(3)]
    sp = F.part2c(recs).evidence["speed"]
    assert sp["level_of"] == "better" and sp["level"] == pytest.approx(0.72)
    assert sp["verdict"] == "censored" and sp["reached"] == {"adam-5e-05-plain": 0, "adam-5e-05": 3}


def test_part2c_runs_that_reach_the_level_at_the_same_epoch_are_no_clean_split():
    """BN+Dropout reaches the level at epochs 1, 2, 3, the runs without at 3, 4, 5: its third run is not before the
    others' first (both at epoch 3), so not 'every run with BN+Dropout got there before every run without'."""

    def at(epoch):  # 0.8 from `epoch` on, of 5 epochs: every run ends at 0.8, the level is 0.72
        return [0.5] * (epoch - 1) + [0.8] * (6 - epoch)

    recs = [cnn_run("adam-5e-05", s, at(e)) for s, e in enumerate((1, 2, 3))]
    recs += [cnn_run("adam-5e-05-plain", s, at(e)) for s, e in enumerate((3, 4, 5))]
    f = F.part2c(recs)
    assert [x["epochs"] for x in f.evidence["speed"]["per_seed"]["adam-5e-05"]] == [1, 2, 3]
    assert [x["epochs"] for x in f.evidence["speed"]["per_seed"]["adam-5e-05-plain"]] == [3, 4, 5]
    assert f.answer.startswith("Undecided with n=3 vs 3: ") and "every run with BN+Dropout got there" not in f.answer


def test_runs_of_a_grid_beside_the_questions_field_are_answered_per_setting_not_pooled_as_seeds():
    # `--set mlp_full.grid.hidden=[40,80]`: the table gives each width a row; the finding pooled the four runs as
    # seeds of one network ('91.40% ± 1.42% (n=4)', and 'differ in hidden=[80]' of all of them)
    recs = [
        {"kind": "mlp", "dataset": "digits", "hidden": [h], "seed": s, "test_acc": a}
        for h, accs in ((40, (0.90, 0.92)), (80, (0.94, 0.96)))
        for s, a in zip((8, 9), accs)
    ]
    (f,) = [x for x in F.build_findings({"mlp_full": recs}, include_missing=False) if x.part == "1c"]
    assert "n=4" not in f.answer and "93.00%" not in f.answer
    assert "**hidden=[40]**: Test accuracy 91.00% ± 1.41% (n=2)" in f.answer
    assert "**hidden=[80]**: Test accuracy 95.00% ± 1.41% (n=2)" in f.answer
    assert f.evidence["varies"] == ["hidden"] and set(f.evidence["settings"]) == {"hidden=[40]", "hidden=[80]"}
    # Part 1 (b): per rate and width, its rows labelled by the width
    sweep = [
        mlp_run(lr, [0.1, 0.5, acc], seed=s) | {"kind": "mlp", "hidden": [h]}
        for lr in (0.1, 1)
        for h, acc in ((40, 0.9), (80, 0.6))
        for s in (8, 9)
    ]
    (b,) = [x for x in F.build_findings({"mlp_lr_sweep": sweep}, include_missing=False) if x.part == "1b"]
    assert [(r["hidden"], r["learning rate"]) for r in b.table] == [
        ("[40]", "0.1"),
        ("[40]", "1"),
        ("[80]", "0.1"),
        ("[80]", "1"),
    ]
    assert sum(d.startswith("*diverges*") for d in b.details) == 1  # a definition every setting shares, once
    # seeds alone differing: the answer as before, no 'differ in'
    plain = [r for r in recs if r["hidden"] == [40]]
    assert F.build_findings({"mlp_full": plain}, include_missing=False)[0].answer == F.part1c(plain).answer


def test_part2_runs_of_two_widths_are_compared_within_each_width():
    recs = [
        cnn_run(v, s, [0.5, base + 0.01 * s]) | {"kind": "cnn", "width": w}
        for w, gap in ((0.125, 0.0), (0.25, 0.3))
        for v, base in (("sgd-0.005", 0.4), ("adam-5e-05", 0.4 + gap))
        for s in range(3)
    ]
    (a,) = [x for x in F.build_findings({"cnn_optimizers": recs}, include_missing=False) if x.part == "2a"]
    assert a.evidence["varies"] == ["width"]
    assert a.evidence["settings"]["width=0.125"]["val_acc"]["diff"] == pytest.approx(0.0)
    assert a.evidence["settings"]["width=0.25"]["val_acc"]["diff"] == pytest.approx(0.3)
