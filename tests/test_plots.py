"""The figures: what each line and band is, divergence, ticks, labels, and how the file is written."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.ticker import MaxNLocator

from mlhw import labels, plots
from mlhw.reference import CNN_VARIANTS

KEYS = ("train_acc", "train_loss", "test_acc")


def rows(values: dict[str, list[float]], start: int = 0) -> list[dict]:
    n = len(next(iter(values.values())))
    return [{"epoch": start + i, **{k: v[i] for k, v in values.items()}} for i in range(n)]


def sweep_rows(rng, n_epochs=6, start=0) -> list[dict]:
    return rows({k: list(rng.uniform(0.1, 1.0, n_epochs)) for k in KEYS}, start)


def artist(ax, gid):
    found = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def legend(fig):
    (leg,) = fig.legends
    return leg.get_title().get_text(), [t.get_text() for t in leg.get_texts()]


def marker_at(ax, line):
    """A one-point line's position: x in data coordinates, y in axes coordinates (1.0: the panel's top edge), once
    the axes' limits are settled (matplotlib autoscales lazily: get_xlim/get_ylim settle them)."""
    ax.get_xlim(), ax.get_ylim()
    display = line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
    (x, _), (_, y) = ax.transData.inverted().transform(display)[0], ax.transAxes.inverted().transform(display)[0]
    return x, y


def band_limits(coll, epochs):
    """The band's lower and upper edge at each epoch, read from the polygon fill_between drew."""
    xy = coll.get_paths()[0].vertices
    lo, hi = [], []
    for e in epochs:
        ys = xy[np.isclose(xy[:, 0], e), 1]
        lo.append(ys.min())
        hi.append(ys.max())
    return np.array(lo), np.array(hi)


def test_mean_line_and_min_max_band_equal_numpy_over_seeds():
    rng = np.random.default_rng(0)
    seeds = [sweep_rows(rng) for _ in range(3)]
    other = [sweep_rows(rng) for _ in range(2)]
    fig = plots.draw_lr_sweep([("lr=0.1", seeds), ("lr=1", other)], "t")
    for ax, key in zip(fig.axes, KEYS):
        for label, group in (("lr=0.1", seeds), ("lr=1", other)):
            table = np.array([[r[key] for r in s] for s in group])
            line = artist(ax, f"mean:{label}")
            np.testing.assert_array_equal(line.get_xdata(), np.arange(6))
            np.testing.assert_allclose(line.get_ydata(), table.mean(axis=0), rtol=1e-12)
            lo, hi = band_limits(artist(ax, f"band:{label}"), range(6))
            np.testing.assert_allclose(lo, table.min(axis=0), rtol=1e-12)
            np.testing.assert_allclose(hi, table.max(axis=0), rtol=1e-12)
    title, texts = legend(fig)
    assert texts == ["lr=0.1 (n=3)", "lr=1 (n=2)"]
    assert "band: min-max" in title and "mean of n seeds" in title


def test_legend_title_names_the_seed_count_and_the_band():
    rng = np.random.default_rng(1)
    fig = plots.draw_lr_sweep([(labels.lr_label(lr), [sweep_rows(rng) for _ in range(3)]) for lr in (0.1, 1)], "t")
    title, _ = legend(fig)
    assert title.startswith("line: mean of 3 seeds, band: min-max over seeds")
    assert "diverged" not in title


def test_a_single_seed_is_its_own_line_without_a_band():
    rng = np.random.default_rng(2)
    (seed,) = [sweep_rows(rng)]
    fig = plots.draw_lr_sweep([("lr=0.1", [seed])], "t")
    ax = fig.axes[0]
    np.testing.assert_array_equal(artist(ax, "mean:lr=0.1").get_ydata(), [r["train_acc"] for r in seed])
    assert not ax.collections
    assert legend(fig) == ("one seed per line", ["lr=0.1 (n=1)"])
    # the old single-run shape (one list of rows) is read as one seed
    fig2 = plots.draw_lr_sweep([("lr=0.1", seed)], "t")
    np.testing.assert_array_equal(fig2.axes[0].lines[0].get_ydata(), artist(ax, "mean:lr=0.1").get_ydata())


def test_a_diverged_seed_leaves_the_mean_with_an_x_at_its_divergence_epoch_and_a_dashed_line():
    rng = np.random.default_rng(3)
    seeds = [sweep_rows(rng, 8) for _ in range(3)]
    # seed 1's loss becomes inf at epoch 3 and NaN after: its accuracies (still finite) are cut there too
    for r in seeds[1][3:]:
        r["train_loss"] = math.inf if r["epoch"] == 3 else math.nan
    fig = plots.draw_lr_sweep([("lr=100", seeds)], "t")
    for ax, key in zip(fig.axes, KEYS):
        table = np.array([[r[key] for r in s] for s in seeds])
        table[1, 3:] = np.nan
        mean = artist(ax, "mean:lr=100")
        np.testing.assert_array_equal(mean.get_xdata(), np.arange(8))
        np.testing.assert_allclose(mean.get_ydata(), np.nanmean(table, axis=0), rtol=1e-12)
        np.testing.assert_allclose(mean.get_ydata()[3:], table[[0, 2], 3:].mean(axis=0), rtol=1e-12)
        lo, hi = band_limits(artist(ax, "band:lr=100"), range(8))
        np.testing.assert_allclose(lo, np.nanmin(table, axis=0), rtol=1e-12)
        np.testing.assert_allclose(hi, np.nanmax(table, axis=0), rtol=1e-12)
        seed_line = artist(ax, "seed:lr=100:1")  # dashed: every finite value of its own, after divergence too
        assert seed_line.get_linestyle() == "--"
        finite = [(r["epoch"], r[key]) for r in seeds[1] if math.isfinite(r[key])]
        np.testing.assert_array_equal(seed_line.get_xdata(), [e for e, _ in finite])
        np.testing.assert_allclose(seed_line.get_ydata(), [v for _, v in finite])
        # the x sits at the epoch of divergence (3), not at the last value before it (2): on the accuracy there,
        # and on the loss panel's top edge, the loss being infinite
        marker = artist(ax, "diverged:lr=100:1")
        assert marker.get_marker() == "x"
        x, y = marker_at(ax, marker)
        assert x == pytest.approx(3)
        if key == "train_loss":
            assert y == pytest.approx(1.0) and not marker.get_clip_on()
        else:
            np.testing.assert_allclose(marker.get_ydata(), [seeds[1][3][key]])
            assert 0 < y < 1
        # the seeds that stayed finite get no marker and no own line
        assert not [a for a in ax.lines if a.get_gid() in ("diverged:lr=100:0", "seed:lr=100:2")]
    title, texts = legend(fig)
    assert texts == ["lr=100 (n=3, diverged in 1/3 seeds)"]
    assert "not yet diverged" in title and "x: the epoch a seed diverged at" in title and "top edge" in title


def test_a_group_that_diverges_in_every_seed_stops_where_the_last_seed_stops():
    seeds = [rows({k: [1.0, 2.0, 3.0, math.nan, math.nan] for k in KEYS}), rows({k: [1.0, math.nan] for k in KEYS})]
    fig = plots.draw_lr_sweep([("lr=100", seeds)], "t")
    mean = artist(fig.axes[1], "mean:lr=100")
    np.testing.assert_array_equal(mean.get_xdata(), [0, 1, 2])
    np.testing.assert_allclose(mean.get_ydata(), [1.0, 2.0, 3.0])
    for ax in fig.axes:  # every value NaN from the divergence on: each x on its panel's top edge, at that epoch
        assert marker_at(ax, artist(ax, "diverged:lr=100:1")) == pytest.approx((1, 1.0))
        assert marker_at(ax, artist(ax, "diverged:lr=100:0")) == pytest.approx((3, 1.0))
    assert legend(fig)[1] == ["lr=100 (n=2, diverged in 2/2 seeds)"]
    single = plots.draw_lr_sweep([("lr=100", seeds[:1])], "t")
    assert legend(single)[1] == ["lr=100 (n=1, diverged at epoch 3)"]  # the legend and the x name the same epoch
    np.testing.assert_array_equal(artist(single.axes[0], "diverged:lr=100:0").get_xdata(), [3])


def test_a_missing_value_is_a_gap_not_divergence():
    seeds = [rows({"train_loss": [2.0, 1.0, 0.5], "val_acc": [0.1, 0.2, 0.3]}, start=1) for _ in range(2)]
    del seeds[0][1]["val_acc"]
    seeds[1][1]["val_acc"] = None
    fig = plots.draw_cnn_curves([("Adam lr=5e-5", seeds)], "t")
    acc = artist(fig.axes[1], "mean:Adam lr=5e-5")
    np.testing.assert_array_equal(acc.get_xdata(), [1, 3])
    assert legend(fig)[1] == ["Adam lr=5e-5 (n=2)"]


def test_epoch_ticks_are_integers():
    rng = np.random.default_rng(4)
    fig = plots.draw_cnn_curves(
        [("SGD lr=0.005", [rows({"train_loss": [2, 1, 0.5], "val_acc": [0.1, 0.2, 0.3]}, 1)])], "t"
    )
    fig.canvas.draw()
    for ax in fig.axes:
        assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    fig = plots.draw_lr_sweep([("lr=0.1", [sweep_rows(rng, 31) for _ in range(3)])], "t")
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    assert fig.axes[1].get_yscale() == "log" and fig.axes[0].get_yscale() == "linear"


def test_accuracy_axes_read_in_percent_as_the_tables_do():
    """The tables and findings give accuracies in percent ('96.33%'), the figures' axes read 0.2 ... 1.0. The drawn
    values stay fractions (the band and mean tests read them): only the tick labels change."""
    rng = np.random.default_rng(5)
    fig = plots.draw_lr_sweep([("lr=0.1", [sweep_rows(rng, 5) for _ in range(2)])], "t")
    cnn = plots.draw_cnn_curves(
        [("SGD lr=0.005", [rows({"train_loss": [2, 1, 0.5], "val_acc": [0.1, 0.2, 0.3]}, 1)])], "t"
    )
    for f in (fig, cnn):
        f.canvas.draw()
        for ax in f.axes:
            pairs = [(tick, lab.get_text()) for tick, lab in zip(ax.get_yticks(), ax.get_yticklabels())]
            labels = [lab for _, lab in pairs if lab]
            accuracy = "accuracy" in ax.get_title()
            assert labels and all(lab.endswith("%") for lab in labels) == accuracy, (ax.get_title(), labels)
            if accuracy:  # each label says its tick's value: 0.2 -> 20%
                for tick, lab in pairs:
                    assert float(lab.rstrip("%").replace("−", "-")) == pytest.approx(100 * tick), (tick, lab)


def test_labels_in_the_assignments_words():
    assert labels.variant_title("adam-5e-05-plain") == "Adam lr=5e-5, no BN/Dropout"
    assert labels.variant_title("sgd-0.005") == "SGD lr=0.005"
    assert labels.variant_title("adam-5e-05") == "Adam lr=5e-5"
    assert labels.variant_title("adam-0.005") == "Adam lr=0.005"
    assert labels.variant_title("something-else") == "something-else"
    titles = [labels.variant_title(v) for v in CNN_VARIANTS]
    assert len(set(titles)) == len(titles) and not set(titles) & set(CNN_VARIANTS)
    assert [labels.lr_label(x) for x in (0.001, 0.01, 0.1, 1, 10, 100, 5e-5)] == [
        "lr=0.001",
        "lr=0.01",
        "lr=0.1",
        "lr=1",
        "lr=10",
        "lr=100",
        "lr=5e-5",
    ]
    seeds = [rows({"train_loss": [2.0, 1.0], "val_acc": [0.1, 0.2]}, 1) for _ in range(3)]
    pair = ["adam-5e-05-plain", "adam-5e-05"]
    fig = plots.draw_cnn_curves([(labels.variant_title(v), seeds) for v in pair], "Part 2 (c)")
    assert legend(fig)[1] == ["Adam lr=5e-5, no BN/Dropout (n=3)", "Adam lr=5e-5 (n=3)"]
    # a variant keeps its colour from one part's figure to the next
    other = plots.draw_cnn_curves([(labels.variant_title(v), seeds) for v in ["sgd-0.005", "adam-5e-05"]], "Part 2 (a)")
    c = artist(fig.axes[0], "mean:Adam lr=5e-5").get_color()
    assert artist(other.axes[0], "mean:Adam lr=5e-5").get_color() == c


def test_colours_stay_visible_on_white():
    from matplotlib.colors import to_rgb

    for color in plots.PALETTE:
        r, g, b = to_rgb(color)
        assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.75, color  # no faint yellow or light grey


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_figures_are_written_whole_and_world_readable(tmp_path, umask_022):
    rng = np.random.default_rng(5)
    path = plots.lr_sweep_figure([("lr=0.1", [sweep_rows(rng) for _ in range(3)])], tmp_path / "f" / "sweep.png", "t")
    assert path == tmp_path / "f" / "sweep.png"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    seeds = [rows({"train_loss": [2.0, 1.0], "val_acc": [0.1, 0.2]}, 1) for _ in range(2)]
    cnn = plots.cnn_curves_figure([("SGD lr=0.005", seeds)], tmp_path / "f" / "cnn.png", "t")
    assert stat.S_IMODE(cnn.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["cnn.png", "sweep.png"]  # no temporary left


def test_save_respects_the_umask_and_leaves_the_old_file_when_drawing_fails(tmp_path, umask_022):
    os.umask(0o077)
    path = plots.save(
        plots.draw_cnn_curves([("x", [rows({"train_loss": [1.0], "val_acc": [0.5]})])], "t"), tmp_path / "a.png"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    fig = plots.draw_cnn_curves([("x", [rows({"train_loss": [1.0], "val_acc": [0.5]})])], "t")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError):
        plots.save(fig, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_a_run_flagged_diverged_with_a_finite_loss_leaves_the_mean_at_its_flag():
    """mlhw.divergence also flags a finite loss far above chance: the row carries `diverged`, and the figure
    treats that epoch as the divergence (x at epoch 1 here, on the finite loss), the finite values going on dashed."""
    rng = np.random.default_rng(5)
    seeds = [sweep_rows(rng, 6) for _ in range(2)]
    for r in seeds[0][1:]:
        r["train_loss"], r["diverged"] = 50.0, True
    fig = plots.draw_lr_sweep([("lr=100", seeds)], "t")
    loss = fig.axes[1]
    np.testing.assert_allclose(artist(loss, "mean:lr=100").get_ydata()[1:], [r["train_loss"] for r in seeds[1][1:]])
    marker = artist(loss, "diverged:lr=100:0")
    np.testing.assert_array_equal(marker.get_xdata(), [1])
    np.testing.assert_array_equal(marker.get_ydata(), [50.0])
    np.testing.assert_array_equal(artist(loss, "seed:lr=100:0").get_xdata(), np.arange(6))
    assert legend(fig)[1] == ["lr=100 (n=2, diverged in 1/2 seeds)"]


def test_the_x_sits_at_the_epoch_the_report_says_a_run_diverged_at():
    """The report's text says 'lr 100 diverges at epoch 1' (the run's diverged_epoch); the x was drawn at epoch 0,
    the last value before. Records as report.figure_specs reads them: one flagged from epoch 1 (a finite loss far
    above chance), one whose loss is NaN from epoch 2."""
    from mlhw.report import curves

    rng = np.random.default_rng(6)
    flagged = {"history": sweep_rows(rng, 5), "diverged_epoch": 1}
    for h in flagged["history"][1:]:
        h["train_loss"] = 40.0 + h["epoch"]
    nan = {"history": sweep_rows(rng, 5), "diverged_epoch": 2}
    for h in nan["history"][2:]:
        h["train_loss"] = math.nan
    for recs, at in (([flagged], 1), ([nan], 2), ([flagged, nan], None)):
        fig = plots.draw_lr_sweep([("lr=100", [curves(r) for r in recs])], "t")
        for ax, key in zip(fig.axes, KEYS):
            for i, r in enumerate(recs):
                x, y = marker_at(ax, artist(ax, f"diverged:lr=100:{i}"))
                assert x == pytest.approx(r["diverged_epoch"])
                value = r["history"][r["diverged_epoch"]][key]
                if math.isfinite(value):  # on the value at that epoch (the loss of 41 too: a log axis holds it)
                    assert artist(ax, f"diverged:lr=100:{i}").get_ydata()[0] == value and 0 < y < 1
                else:
                    assert y == pytest.approx(1.0)
        if at is not None:
            assert legend(fig)[1] == [f"lr=100 (n=1, diverged at epoch {at})"]


def test_single_command_run_names_say_what_ran():
    """Five `mlhw mlp train` runs on digits and MNIST, 0 to 30 epochs, were all named 'mlp.c lr=0.1 seed=8'."""
    from mlhw.config import CNNConfig, MLPConfig

    assert labels.run_name("mlp.c", "lr=0.1", MLPConfig()) == "mlp.c · lr=0.1, seed 8 (digits, 30 epochs)"
    sub = MLPConfig(dataset="mnist", train_size=2000, test_size=1000, epochs=1)
    assert labels.data_note(sub) == "mnist 2000/1000, 1 epoch"
    assert labels.data_note(MLPConfig(train_size=300)) == "digits 300/all, 30 epochs"
    cifar = CNNConfig(dataset="cifar10")
    assert labels.data_note(cifar) == "cifar10 10%, 10 epochs"
    assert labels.cnn_title("adam", 5e-5, batchnorm=False, dropout=False) == labels.variant_title("adam-5e-05-plain")
    assert labels.cnn_title("sgd", 0.005, dropout=False) == "SGD lr=0.005, no Dropout"


# --- colours, markers and a figure of one epoch -----------------------------------------------------------------------


def style_of(fig, label):
    """(colour, marker) of a group's mean line in every panel, checked equal across panels and to its legend sample."""
    found = {(a.get_color(), a.get_marker()) for ax in fig.axes for a in ax.lines if a.get_gid() == f"mean:{label}"}
    assert len(found) == 1, found
    (leg,) = fig.legends
    names = [t.get_text().split(" (n=")[0] for t in leg.get_texts()]
    sample = leg.legend_handles[names.index(label)]
    assert (sample.get_color(), sample.get_marker()) in found
    return found.pop()


def pair_of(style):
    return style.color, style.marker


def marked_epochs(line) -> set:
    """The x values at which a line draws its marker (markevery: None, or (start, step))."""
    if line.get_marker() in (None, "", "None", "none", " "):
        return set()
    x = np.asarray(line.get_xdata())
    every = line.get_markevery()
    if every is None:
        return set(x.tolist())
    start, step = every
    return set(x[start::step].tolist())


def test_a_learning_rate_keeps_its_colour_and_marker_in_every_profile():
    """ci sweeps lr 0.01, 0.1 and 100; digits and paper all six rates. lr 0.1 was orange in ci and green in the
    others (the colour went by position among the curves drawn): now by the rate's place in the assignment's list."""
    rng = np.random.default_rng(7)
    lrs = [0.001, 0.01, 0.1, 1, 10, 100]
    full = plots.draw_lr_sweep([(labels.lr_label(lr), [sweep_rows(rng) for _ in range(3)]) for lr in lrs], "t")
    ci = plots.draw_lr_sweep([(labels.lr_label(lr), [sweep_rows(rng, 4)]) for lr in (0.01, 0.1, 100)], "t")
    alone = plots.draw_lr_sweep([("lr=100", [sweep_rows(rng)])], "t")
    styles = {lr: style_of(full, labels.lr_label(lr)) for lr in lrs}
    for lr in (0.01, 0.1, 100):
        assert style_of(ci, labels.lr_label(lr)) == styles[lr], lr
    assert style_of(alone, "lr=100") == styles[100]
    assert len({c for c, _ in styles.values()}) == 6 and len({m for _, m in styles.values()}) == 6
    assert "x" not in {m for _, m in styles.values()}  # the x means divergence
    # in the order of the list: the palette's first six
    assert [c for c, _ in styles.values()] == plots.PALETTE[:6]
    # a user's grid: the assignment's rates keep their styles, the others take what no group of the figure has
    # (by a hash alone, lr=0.05 was drawn exactly as lr=0.01, lr=0.003 as lr=0.1 and lr=0.2 as lr=100)
    grid = [0.003, 0.01, 0.05, 0.1, 0.2, 100]
    user = plots.draw_lr_sweep([(labels.lr_label(lr), [sweep_rows(rng)]) for lr in grid], "t")
    drawn = {lr: style_of(user, labels.lr_label(lr)) for lr in grid}
    assert len({c for c, _ in drawn.values()}) == 6 and len({m for _, m in drawn.values()}) == 6
    assert all(drawn[lr] == styles[lr] for lr in (0.01, 0.1, 100))


def test_a_cnn_variant_keeps_its_colour_beside_any_other_label():
    """Variants kept their colour only when every label of the figure was a variant: beside another label the
    whole figure went back to colours by position."""
    seeds = [rows({"train_loss": [2.0, 1.0], "val_acc": [0.1, 0.2]}, 1)]
    adam = labels.variant_title("adam-5e-05")
    pair = plots.draw_cnn_curves([(labels.variant_title("sgd-0.005"), seeds), (adam, seeds)], "t")
    mixed = plots.draw_cnn_curves([(adam, seeds), ("Adam lr=1e6", seeds)], "t")
    assert style_of(mixed, adam) == style_of(pair, adam)
    assert style_of(pair, adam) == pair_of(plots.series_style(adam))
    assert style_of(mixed, "Adam lr=1e6") != style_of(mixed, adam)
    titles = [labels.variant_title(v) for v in CNN_VARIANTS]
    assert len({plots.series_style(t).color for t in titles}) == len(titles)


def collapsed_and_diverged(rng, n_seeds, n_epochs=31):
    """lr 10 stalls at chance (finite loss 3.3); lr 100 is flagged diverged from epoch 1 and also sits at 10%."""
    out = {}
    for lr, loss in ((10, 3.3), (100, 40.0)):
        seeds = []
        for _ in range(n_seeds):
            acc = list(0.1 + rng.normal(0, 0.004, n_epochs))
            r = rows({"train_acc": acc, "train_loss": [20.0] + [loss] * (n_epochs - 1), "test_acc": acc})
            if lr == 100:
                for row in r[1:]:
                    row["diverged"] = True
            seeds.append(r)
        out[labels.lr_label(lr)] = seeds
    return out


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_lr_10_at_chance_and_lr_100_diverged_can_be_told_apart_where_they_overlap(n_seeds):
    """Both end at 10% accuracy: in the accuracy panels lr 10's mean line and lr 100's own (dashed) lines lie on
    each other. They differ in marker as well as colour, their markers fall on different epochs, and the mean line
    is drawn above the diverged seeds' lines, so that neither hides the other."""
    groups = collapsed_and_diverged(np.random.default_rng(8), n_seeds)
    fig = plots.draw_lr_sweep(list(groups.items()), "t")
    for ax in (fig.axes[0], fig.axes[2]):
        ten = artist(ax, "mean:lr=10")
        hundred = [artist(ax, f"seed:lr=100:{i}") for i in range(n_seeds)]
        assert marked_epochs(ten) and all(marked_epochs(h) for h in hundred)
        assert all(h.get_marker() != ten.get_marker() for h in hundred)
        assert all(h.get_color() != ten.get_color() for h in hundred)
        assert all(not marked_epochs(ten) & marked_epochs(h) for h in hundred)
        assert all(h.get_zorder() < ten.get_zorder() for h in hundred)
        assert all(h.get_linestyle() == "--" and ten.get_linestyle() == "-" for h in hundred)
    # the legend shows each marker; lr 100, drawn only as its seeds' dashed lines, shows a dashed sample
    (leg,) = fig.legends
    ten_h, hundred_h = leg.legend_handles
    assert ten_h.get_marker() == artist(fig.axes[0], "mean:lr=10").get_marker()
    assert hundred_h.get_marker() == artist(fig.axes[0], "seed:lr=100:0").get_marker()
    assert ten_h.get_linestyle() == "-" and hundred_h.get_linestyle() == "--"


def cnn_one_epoch(values: dict[str, tuple[float, float]], n_seeds=1):
    return [
        (labels.variant_title(v), [rows({"train_loss": [loss], "val_acc": [acc]}, 1) for _ in range(n_seeds)])
        for v, (loss, acc) in values.items()
    ]


def test_a_figure_of_one_epoch_draws_markers_and_does_not_magnify_a_tiny_difference():
    """ci's Part 2 runs one epoch: each variant was one dot, the legend showed line samples, and the loss axis
    spanned 2.3032-2.3046 (a difference of 0.0013 filling the panel)."""
    values = {"sgd-0.005": (2.3032, 0.1385), "adam-5e-05": (2.3046, 0.1)}
    fig = plots.draw_cnn_curves(cnn_one_epoch(values), "Part 2 (a)")
    (leg,) = fig.legends
    for handle in leg.legend_handles:
        assert handle.get_linestyle() == "None" and handle.get_marker() not in (None, "", "None")
    assert leg.get_title().get_text() == "one seed per marker"
    loss, acc = fig.axes
    for ax, k in ((loss, 0), (acc, 1)):
        lines = [artist(ax, f"mean:{labels.variant_title(v)}") for v in values]
        assert all(line.get_linestyle() == "None" and line.get_marker() not in ("", "None") for line in lines)
        xs = [line.get_xdata()[0] for line in lines]
        assert len(set(xs)) == 2 and all(abs(x - 1) < 0.25 for x in xs)  # side by side at epoch 1: both seen
        lo, hi = ax.get_ylim()
        assert all(lo < v[k] < hi for v in values.values())
    assert loss.get_ylim()[1] - loss.get_ylim()[0] >= 0.1 * 2.3046 - 1e-12
    assert acc.get_ylim()[1] - acc.get_ylim()[0] >= plots.MIN_SPAN_ACC - 1e-12
    # an accuracy near 1 is not pushed above 1 by the widening
    top = plots.draw_cnn_curves(cnn_one_epoch({"adam-5e-05": (0.05, 0.995), "sgd-0.005": (0.06, 0.999)}), "t")
    assert top.axes[1].get_ylim()[1] <= 1.0 + 1e-9 and top.axes[1].get_ylim()[0] < 0.995


def test_a_figure_of_one_epoch_shows_the_range_over_seeds_as_a_bar():
    """A band one epoch wide is not drawn at all: the min-max over seeds becomes a vertical bar."""
    series = [
        (
            labels.variant_title("sgd-0.005"),
            [rows({"train_loss": [2.3 + d], "val_acc": [0.1 + d]}, 1) for d in (0, 0.02)],
        )
    ]
    fig = plots.draw_cnn_curves(series, "t")
    bar = artist(fig.axes[1], "band:SGD lr=0.005")
    assert isinstance(bar, LineCollection)
    (segment,) = bar.get_segments()
    np.testing.assert_allclose(sorted(segment[:, 1]), [0.1, 0.12])
    assert legend(fig)[0] == "marker: mean of 2 seeds, bar: min-max over seeds"


def test_the_y_range_is_left_alone_where_it_is_wide_enough():
    rng = np.random.default_rng(9)
    series = [(labels.lr_label(lr), [sweep_rows(rng, 10) for _ in range(2)]) for lr in (0.1, 1)]
    fig = plots.draw_lr_sweep(series, "t")
    acc = fig.axes[0]
    values = [v for ax_line in acc.lines for v in ax_line.get_ydata()]
    lo, hi = acc.get_ylim()
    span = max(values) - min(values)
    assert hi - lo == pytest.approx(span * 1.1, rel=0.2)  # matplotlib's own margins, not widened
    assert all(line.get_linestyle() == "-" for line in acc.lines if line.get_gid().startswith("mean:"))
    # a log panel of nearly equal losses is widened too (to a factor of MIN_RATIO_LOG)
    flat = [("lr=0.1", [rows({"train_acc": [0.5, 0.5], "train_loss": [2.3032, 2.3046], "test_acc": [0.5, 0.5]})])]
    loss = plots.draw_lr_sweep(flat, "t").axes[1]
    lo, hi = loss.get_ylim()
    assert lo < 2.3032 < 2.3046 < hi and hi / lo > 1.2
    assert hi / lo >= plots.MIN_RATIO_LOG * (1 - 1e-9)


def test_part_2c_figure_names_both_curves_and_keeps_the_variants_colours(monkeypatch):
    """Part 2 (c)'s legend read "Adam lr=5e-5 (n=3)" beside "Adam lr=5e-5, no BN/Dropout (n=3)": the first did not
    say it is the one with BatchNorm + Dropout. It does now, in the colour that variant has in (a) and (b)."""
    from mlhw import report

    drawn = {}
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda series, path, title: drawn.update({title: series}))
    hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    rec = {"history": hist, "dataset": "digits"}
    done = {
        "cnn_batchnorm": [rec | {"variant": "adam-5e-05-plain"}, rec | {"variant": "adam-5e-05"}],
        "cnn_optimizers": [rec | {"variant": "sgd-0.005"}, rec | {"variant": "adam-5e-05"}],
    }
    for _, _, _, draw in report.figure_specs(done):
        draw("unused.png")
    labels_c = [label for label, _ in drawn["Part 2 (c): BatchNorm + Dropout on digits"]]
    labels_a = [label for label, _ in drawn["Part 2 (a): SGD vs Adam on digits"]]
    assert labels_c == ["Adam lr=5e-5, no BN/Dropout", "Adam lr=5e-5, with BN/Dropout"]
    assert labels_a == ["SGD lr=0.005", "Adam lr=5e-5"]  # (a) and (b) compare others: no such words there
    assert plots.figure_styles(labels_c)[1] == plots.figure_styles(labels_a)[1]  # one colour for one variant


def test_a_grid_beside_the_rate_or_variant_gets_a_curve_per_setting_not_a_mean_over_both(monkeypatch):
    """A profile's `grid: {lr: [...], hidden: [40, 80]}` drew one curve per rate, the mean of both widths with a
    band spanning them, where the table gives each width a row."""
    from mlhw import report

    drawn = {}
    monkeypatch.setattr(plots, "lr_sweep_figure", lambda series, path, title: drawn.update({"mlp": series}))
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda series, path, title: drawn.update({"cnn": series}))
    hist = [{"epoch": 0, "train_acc": 0.1, "train_loss": 2.3, "test_acc": 0.1}]
    mlp = [
        {"kind": "mlp", "dataset": "digits", "lr": lr, "hidden": [h], "seed": s, "history": hist}
        for lr in (0.1, 1.0)
        for h in (40, 80)
        for s in (8, 9)
    ]
    cnn_hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    cnn = [
        {"kind": "cnn", "dataset": "digits", "variant": v, "width": w, "seed": 0, "history": cnn_hist}
        for v in ("sgd-0.005", "adam-5e-05")
        for w in (0.125, 0.25)
    ]
    for _, _, _, draw in report.figure_specs({"mlp_lr_sweep": mlp, "cnn_optimizers": cnn}):
        draw("unused.png")
    assert [(label, len(runs)) for label, runs in drawn["mlp"]] == [
        ("lr=0.1, hidden=[40]", 2),
        ("lr=0.1, hidden=[80]", 2),
        ("lr=1, hidden=[40]", 2),
        ("lr=1, hidden=[80]", 2),
    ]
    assert [label for label, _ in drawn["cnn"]] == [
        "SGD lr=0.005, width=0.125",
        "SGD lr=0.005, width=0.25",
        "Adam lr=5e-5, width=0.125",
        "Adam lr=5e-5, width=0.25",
    ]


def test_each_panel_says_on_which_split_and_how_its_numbers_were_measured():
    """A grader reads the figures beside the assignment: Part 1 (b) asks for accuracy and loss "on the training set",
    Part 2 for the epoch's mean training loss. The panels were titled "training loss" alike with no y label, where the
    MLP's is its whole training set's after each epoch (epoch 0: the untrained network) and AlexNet's the mean of the
    epoch's mini-batches as it trained; and the MLP's x axis began at an unexplained epoch 0."""
    rng = np.random.default_rng(6)
    sweep = plots.draw_lr_sweep([("lr=0.1", [sweep_rows(rng, 4) for _ in range(2)])], "t")
    cnn = plots.draw_cnn_curves([("SGD lr=0.005", [rows({"train_loss": [2, 1], "val_acc": [0.1, 0.2]}, 1)])], "t")
    assert [(ax.get_title(), ax.get_ylabel()) for ax in sweep.axes] == [
        ("training accuracy", "accuracy on the whole training set"),
        ("training loss", "cross-entropy, whole training set"),
        ("test accuracy", "accuracy on the test set"),
    ]
    assert [(ax.get_title(), ax.get_ylabel()) for ax in cnn.axes] == [
        ("training loss", "cross-entropy while training, mean over the epoch"),
        ("validation accuracy", "accuracy on the validation set"),
    ]
    assert {ax.get_xlabel() for ax in sweep.axes} == {"epoch (0: before training)"}
    assert {ax.get_xlabel() for ax in cnn.axes} == {"epoch"}  # its first epoch is 1: nothing to explain


def test_a_figures_accuracy_panels_share_one_range():
    """Training accuracy near 100% and test accuracy near 65%: drawn each on its own range, both lines sat near the
    top of their panels and the gap between them (what the two panels are compared for) could not be seen."""
    train = [0.90, 0.95, 0.99, 1.0]
    test = [0.55, 0.60, 0.63, 0.65]
    seeds = [rows({"train_acc": train, "train_loss": [2.0, 1.0, 0.5, 0.2], "test_acc": test})]
    fig = plots.draw_lr_sweep([("lr=0.1", seeds)], "t")
    train_ax, loss_ax, test_ax = fig.axes
    assert train_ax.get_ylim() == test_ax.get_ylim()
    lo, hi = train_ax.get_ylim()
    assert lo <= 0.55 and hi >= 1.0
    assert loss_ax.get_ylim() != train_ax.get_ylim()  # the loss keeps its own (log) range


def test_the_reports_figures_say_when_their_mnist_or_cifar10_are_not_the_official_files(monkeypatch):
    """The tables' titles said 'on mnist (not the official MNIST files)' for runs on files of MNIST's format with other
    content (synthetic, a benchmark's), as `mlhw mlp sweep`'s figure does; the report's figures said 'on mnist' alone,
    claiming MNIST for a PNG that a write-up would paste without its table."""
    from mlhw import data, report

    drawn = {}
    monkeypatch.setattr(plots, "lr_sweep_figure", lambda series, path, title: drawn.update({path: title}))
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda series, path, title: drawn.update({path: title}))
    hist = [{"epoch": 0, "train_acc": 0.1, "train_loss": 2.3, "test_acc": 0.1}]
    mlp = [
        {"kind": "mlp", "dataset": "mnist", "dataset_files": data.NOT_OFFICIAL, "lr": lr, "seed": 8, "history": hist}
        for lr in (0.1, 1.0)
    ]
    cnn_hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    cnn = [
        {"kind": "cnn", "dataset": "cifar10", "dataset_files": f, "variant": v, "seed": 0, "history": cnn_hist}
        for v, f in (("sgd-0.005", data.NOT_OFFICIAL), ("adam-5e-05", data.OFFICIAL))
    ]
    for _, name, _, draw in report.figure_specs({"mlp_lr_sweep": mlp, "cnn_optimizers": cnn}):
        draw(name)
    assert drawn == {
        "mlp_lr_sweep.png": "Part 1 (b) on mnist (not the official MNIST files): one network per learning rate",
        "sgd_vs_adam.png": "Part 2 (a): SGD vs Adam on cifar10 (not the official CIFAR-10 files: 1 of 2 runs)",
    }
    # and where they are the official files (or digits), the title is as it was
    for r in mlp:
        r["dataset_files"] = data.OFFICIAL
    drawn.clear()
    for _, name, _, draw in report.figure_specs({"mlp_lr_sweep": mlp}):
        draw(name)
    assert drawn == {"mlp_lr_sweep.png": "Part 1 (b) on mnist: one network per learning rate"}


def test_the_reports_figure_captions_name_the_dataset_as_the_tables_headings_do():
    """REPORT.md headed each table 'Part 2 (a): SGD vs Adam on digits' and captioned the figure below it 'Part 2 (a):
    SGD vs Adam: training loss and validation accuracy per epoch': the caption, what a grader reads under the image
    (and the alt text where the image is not shown), did not say which data it was drawn from."""
    from mlhw import report

    hist = [{"epoch": 0, "train_acc": 0.1, "train_loss": 2.3, "test_acc": 0.1}]
    mlp = [{"kind": "mlp", "dataset": "digits", "lr": lr, "seed": 8, "history": hist} for lr in (0.1, 1.0)]
    cnn_hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    cnn = [
        {"kind": "cnn", "dataset": "digits", "variant": v, "seed": 0, "history": cnn_hist}
        for v in ("adam-5e-05-plain", "adam-5e-05")
    ]
    captions = {
        name: caption for _, name, caption, _ in report.figure_specs({"mlp_lr_sweep": mlp, "cnn_batchnorm": cnn})
    }
    assert captions == {
        "mlp_lr_sweep.png": "Part 1 (b) on digits: training accuracy, training loss and test accuracy per epoch",
        "batchnorm_dropout.png": "Part 2 (c): BatchNorm + Dropout on digits: training loss and validation accuracy "
        "per epoch",
    }


def test_the_reports_figures_say_what_their_runs_trained_on_and_for_how_long(monkeypatch):
    """A figure is opened alone (a parent run's artifact in the UI, a PNG in a write-up): the ci profile's 3-epoch
    sweep on 300 images was titled exactly as the digits profile's 30 epochs on 1,297. The sizes and epochs all its
    runs share are in its title; what differs between them is left to the legend and the tables."""
    from mlhw import report

    drawn = {}
    monkeypatch.setattr(plots, "lr_sweep_figure", lambda series, path, title: drawn.update({path: title}))
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda series, path, title: drawn.update({path: title}))
    hist = [{"epoch": 0, "train_acc": 0.1, "train_loss": 2.3, "test_acc": 0.1}]
    sizes = {"train": 1297, "test": 500}
    mlp = [
        {"kind": "mlp", "dataset": "digits", "lr": lr, "seed": 8, "epochs": 30, "sizes": sizes, "history": hist}
        for lr in (0.1, 1.0)
    ]
    cnn_hist = [{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}]
    cnn_sizes = {"train": 1097, "val": 200, "test": 500}
    cnn = [
        {"kind": "cnn", "dataset": "digits", "variant": v, "seed": 0, "epochs": e, "sizes": cnn_sizes,
         "history": cnn_hist}
        for v, e in (("sgd-0.005", 1), ("adam-5e-05", 1))
    ]  # fmt: skip
    for _, name, _, draw in report.figure_specs({"mlp_lr_sweep": mlp, "cnn_optimizers": cnn}):
        draw(name)
    assert drawn == {
        "mlp_lr_sweep.png": "Part 1 (b) on digits (1,297 train / 500 test, 30 epochs): one network per learning rate",
        "sgd_vs_adam.png": "Part 2 (a): SGD vs Adam on digits (1,097 train / 200 val, 1 epoch)",
    }
    mlp[1]["epochs"], mlp[1]["sizes"] = 3, {"train": 300, "test": 100}  # runs that differ: neither is the figure's
    drawn.clear()
    for _, name, _, draw in report.figure_specs({"mlp_lr_sweep": mlp}):
        draw(name)
    assert drawn == {"mlp_lr_sweep.png": "Part 1 (b) on digits: one network per learning rate"}
