"""Every figure mlhw draws: plain functions from per-epoch rows, one group of runs (one per seed) per line, to a PNG.

Input shape, shared by every figure::

    series = [
        ("lr=0.1", [seed0_rows, seed1_rows, seed2_rows]),   # a label and, per seed, its per-epoch rows
        ...
    ]
    seed0_rows = [{"epoch": 0, "train_loss": 2.3, "train_acc": 0.11, ...}, {"epoch": 1, ...}, ...]

(A group given as one list of rows instead of a list of seeds is read as a single seed.)

What a panel shows, per group: the mean over seeds at each epoch (a solid line) and the min-max range over
seeds (a shaded band); a single seed is drawn as its own line, without a band. A seed *diverges* at the first
epoch where any of the figure's metrics is NaN or infinite (or that its rows flag `diverged`): from that epoch on
it is left out of every panel's mean and band, its own thin line goes on dashed through every finite value it
has, and an x marks the epoch it diverged at (the epoch the report's text names): on its value there, or at the
panel's top edge when that value is not finite. The legend says n and how many seeds diverged ("lr=100 (n=3,
diverged in 2/3 seeds)"), and its title says what the line, the band and the x are. A missing value (key absent
or None) is a gap, not divergence.

A group of the assignment keeps its colour and marker in every figure and profile (`series_style`): a learning
rate by its place in the assignment's list of rates, a CNN variant by its place in the assignment's variants,
never by its position among the groups drawn; any other label (a user's grid) takes a slot that no other group of
its figure has (`figure_styles`). Markers on long curves are drawn every few epochs,
at epochs that differ from one group to the next, and a diverged seed's own line lies under every mean line, so
that two groups on the same values (lr 10 at chance and lr 100 after diverging) both stay visible.

A figure of a single epoch draws markers only (hollow, each group a little to one side of the epoch, the min-max
over seeds as a bar), and the legend shows markers. No panel's y range is narrower than `MIN_SPAN_ACC` (an
accuracy), `MIN_SPAN_REL` of its largest value (a loss) or a factor of `MIN_RATIO_LOG` (a log axis), so that a
difference of a thousandth is not blown up to the panel's full height. A figure's accuracy panels share one y range
(training and test accuracy on one scale). Each panel's y label says what it measured on which split: the MLP's
training loss is its whole training set's after each epoch, AlexNet's the mean over the epoch's images as it trained.

Figures are built on `matplotlib.figure.Figure` (no pyplot state) and written by `save`: atomically (a temporary
file in the same folder, then a rename) and world-readable (0644 less the umask).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI, servers, the device machine
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from mlhw.labels import WITH_BN_DROPOUT, lr_label, variant_title  # noqa: E402
from mlhw.layout import umask  # noqa: E402
from mlhw.reference import CNN_VARIANTS, MLP_SWEEP_LRS  # noqa: E402

# tab10 without its grey and olive (index 7 and 8): every colour stays visible on white and in a band.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
# one marker per slot, none of them an x (the x marks divergence)
MARKERS = ["o", "s", "^", "D", "v", "P", "<", ">"]
MIN_SPAN_ACC = 0.1  # an accuracy panel spans at least 10 points
MIN_SPAN_REL = 0.1  # any other panel at least a tenth of its largest value
MIN_RATIO_LOG = 1.25  # a log panel's top at least 1.25 times its bottom
MARKERS_PER_LINE = 8  # a curve longer than 15 epochs: about this many markers, not one per epoch
BAND = "min-max"  # what the shaded band is: the range over seeds at each epoch
# (metric key, panel title, y-axis label). The two parts' "training loss" are not the same measurement: the MLP's is
# the network evaluated on its whole training set after each epoch (epoch 0: before any step), AlexNet's the mean over
# the images of the epoch of each one's loss in the step that trained on it (training mode: Dropout on where the model
# has it; each batch's loss weighted by its size, cnn.py), as the assignment
# asks of each; the y label says which.
LR_SWEEP_PANELS = (
    ("train_acc", "training accuracy", "accuracy on the whole training set"),
    ("train_loss", "training loss", "cross-entropy, whole training set"),
    ("test_acc", "test accuracy", "accuracy on the test set"),
)
CNN_PANELS = (
    ("train_loss", "training loss", "cross-entropy while training, mean over the epoch"),
    ("val_acc", "validation accuracy", "accuracy on the validation set"),
)
EPOCH_LABEL = "epoch"
EPOCH_ZERO_LABEL = "epoch (0: before training)"  # where a figure draws epoch 0, the untrained network


# --- the numbers a panel draws ------------------------------------------------------------------------------------


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)


def _seeds(runs) -> list[list[dict]]:
    """A group's runs as a list of seeds; one list of rows (the old single-run shape) is one seed."""
    runs = list(runs)
    if runs and isinstance(runs[0], dict):
        return [runs]
    return [list(r) for r in runs]


def divergence_epoch(rows: Sequence[dict], keys: Sequence[str]) -> int | None:
    """The first epoch at which any of `keys` is NaN or infinite, or that the run itself flags `diverged`
    (mlhw.divergence: a finite loss far above chance counts too); None: the seed did not diverge."""
    for r in sorted(rows, key=lambda r: r["epoch"]):
        if r.get("diverged"):
            return r["epoch"]
        for k in keys:
            v = r.get(k)
            if v is not None and not _finite(v):
                return r["epoch"]
    return None


@dataclass
class SeedCurve:
    epochs: np.ndarray  # the epochs drawn (before divergence, value present)
    values: np.ndarray
    diverged_at: int | None  # the epoch of the first non-finite value of any of the figure's metrics


@dataclass
class GroupStats:
    """One group's numbers for one metric: per epoch, the mean, min and max over the seeds not yet diverged."""

    epochs: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: np.ndarray  # how many seeds each epoch's numbers are over
    seeds: list[SeedCurve]

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def diverged(self) -> int:
        return sum(s.diverged_at is not None for s in self.seeds)


def group_stats(seeds: Sequence[Sequence[dict]], key: str, divergence_keys: Sequence[str] = ()) -> GroupStats:
    """Mean, min and max of `key` over seeds at each epoch. A seed is cut at its divergence epoch (the first epoch
    where `key` or any of `divergence_keys` is non-finite) and counts at no epoch from then on."""
    keys = [key, *[k for k in divergence_keys if k != key]]
    curves = []
    for rows in seeds:
        d = divergence_epoch(rows, keys)
        # the seed's own curve keeps every finite value (a diverged loss can stay finite: it is drawn dashed);
        # the mean and band below use it only before its divergence epoch
        pts = sorted((r["epoch"], float(r[key])) for r in rows if _finite(r.get(key)))
        curves.append(
            SeedCurve(np.array([e for e, _ in pts], dtype=int), np.array([v for _, v in pts], dtype=float), d)
        )
    epochs = np.array(sorted({int(e) for c in curves for e in c.epochs}), dtype=int)
    table = np.full((len(curves), len(epochs)), np.nan)
    index = {e: i for i, e in enumerate(epochs)}
    for s, c in enumerate(curves):
        for e, v in zip(c.epochs, c.values):
            if c.diverged_at is None or e < c.diverged_at:
                table[s, index[int(e)]] = v
    count = np.isfinite(table).sum(axis=0)
    with warnings.catch_warnings():  # an epoch where every seed has diverged is NaN, on purpose: no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(table, axis=0) if len(epochs) else np.array([])
        low = np.nanmin(table, axis=0) if len(epochs) else np.array([])
        high = np.nanmax(table, axis=0) if len(epochs) else np.array([])
    return GroupStats(epochs, mean, low, high, count, curves)


# --- how a group looks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    slot: int  # where its markers start on a long curve (so that two groups' markers fall on different epochs)


# the assignment's learning rates (Part 1) and CNN variants (Part 2), each by its place in the assignment's list
SLOTS = {lr_label(lr): i for i, lr in enumerate(MLP_SWEEP_LRS)} | {
    title: i
    for i, (v, cfg) in enumerate(CNN_VARIANTS.items())
    for title in (variant_title(v), *([variant_title(v) + WITH_BN_DROPOUT] if cfg["batchnorm"] else []))
}


def series_style(label: str) -> Style:
    """A group's colour and marker, the same in every figure and profile whatever else is drawn beside it: a rate
    of the assignment's sweep ('lr=0.1') or one of its CNN variants ('Adam lr=5e-5') by its place in that list,
    any other label by its CRC-32 (colour and marker picked apart). `figure_styles` keeps the groups of one
    figure apart."""
    slot = SLOTS.get(label)
    if slot is not None:
        return _slot_style(slot)
    h = zlib.crc32(label.encode())
    return Style(PALETTE[h % len(PALETTE)], MARKERS[(h // len(PALETTE)) % len(MARKERS)], h)


def _slot_style(slot: int) -> Style:
    return Style(PALETTE[slot % len(PALETTE)], MARKERS[slot % len(MARKERS)], slot)


def figure_styles(labels: Sequence[str]) -> list[Style]:
    """The styles of one figure's groups: the assignment's rates and variants keep their own slots; any other
    label (a user's lr=0.05) takes the first slot no other group of the figure has, in the order drawn, so that
    no two groups share a colour (a hash alone gave lr=0.05 the colour and marker of lr=0.01)."""
    taken = {SLOTS[label] % len(PALETTE) for label in labels if label in SLOTS}
    out = []
    for label in labels:
        if label in SLOTS:
            out.append(_slot_style(SLOTS[label]))
            continue
        free = next((i for i in range(len(PALETTE)) if i not in taken), None)
        if free is None:  # more groups than colours: the hash's pick
            out.append(series_style(label))
            continue
        taken.add(free)
        out.append(_slot_style(free))
    return out


def _min_span(ax, key: str) -> None:
    """Widen the panel's y range, around its centre, to at least `MIN_SPAN_ACC` (an accuracy) or `MIN_SPAN_REL` of
    its largest value (`MIN_RATIO_LOG` on a log axis): a difference of 0.001 in a loss of 2.3 must not fill the
    panel. An accuracy's range is kept within [0, 1] where it was, a loss's above 0."""
    lo, hi = ax.get_ylim()
    if ax.get_yscale() == "log":
        if lo > 0 and hi / lo < MIN_RATIO_LOG:
            mid = math.sqrt(lo * hi)
            ax.set_ylim(mid / math.sqrt(MIN_RATIO_LOG), mid * math.sqrt(MIN_RATIO_LOG))
        return
    accuracy = key.endswith("acc")
    need = MIN_SPAN_ACC if accuracy else MIN_SPAN_REL * max(abs(lo), abs(hi))
    if hi - lo >= need:
        return
    mid = (lo + hi) / 2
    new_lo, new_hi = mid - need / 2, mid + need / 2
    floor, ceil = min(lo, 0.0), (max(hi, 1.0) if accuracy else math.inf)
    if new_lo < floor:
        new_lo, new_hi = floor, floor + need
    elif new_hi > ceil:
        new_lo, new_hi = ceil - need, ceil
    ax.set_ylim(new_lo, new_hi)


def _share_accuracy_range(axes) -> None:
    """One y range for a figure's accuracy panels, the union of theirs: Part 1 (b)'s training and test accuracy
    were drawn on different ranges (on MNIST 100% at the top of one, 80% its top label in the other), so that the gap
    between them, what a reader compares the two panels for, could not be seen from one panel to the next."""
    if len(axes) < 2:
        return
    limits = [ax.get_ylim() for ax in axes]
    lo, hi = min(lo for lo, _ in limits), max(hi for _, hi in limits)
    for ax in axes:
        ax.set_ylim(lo, hi)


# --- drawing ------------------------------------------------------------------------------------------------------


def group_label(label: str, stats: GroupStats) -> str:
    """The legend entry of a group: 'lr=0.1 (n=3)', 'lr=100 (n=3, diverged in 2/3 seeds)', and for one seed
    'lr=100 (n=1, diverged at epoch 4)'."""
    n, k = stats.n, stats.diverged
    if k and n == 1:
        return f"{label} (n=1, diverged at epoch {stats.seeds[0].diverged_at})"
    if k:
        return f"{label} (n={n}, diverged in {k}/{n} seeds)"
    return f"{label} (n={n})"


def legend_title(ns: Sequence[int], any_diverged: bool, single: bool = False) -> str:
    """What the line and the band (in a figure of one epoch: a marker and a bar) and the x are."""
    many = any(n > 1 for n in ns)
    line, band = ("marker", "bar") if single else ("line", "band")
    if not many:
        text = f"one seed per {line}"
    else:
        sizes = sorted(set(ns))
        n = str(sizes[0]) if len(sizes) == 1 else "n"
        text = f"{line}: mean of {n} seeds, {band}: {BAND} over seeds"
    if any_diverged:
        text += (
            "\nx: the epoch a seed diverged at (loss non-finite, or far above chance and not falling): on its value, "
            "or on the top edge if that is not finite"
        )
        after = [] if single else ["a diverged seed's own line dashed"]
        if many:
            after.append(f"mean and {band} over the seeds not yet diverged")
        if after:
            text += "\n" + "; ".join(after)
    return text


def _markevery(slot: int, n_epochs: int):
    """Every epoch on a short curve; on a long one every few epochs, starting at an epoch set by the group's slot,
    so that groups on the same values show their markers side by side rather than on top of each other."""
    if n_epochs <= 15:
        return None
    step = math.ceil(n_epochs / MARKERS_PER_LINE)
    return (slot % step, step)


def _divergence_marker(ax, curve: SeedCurve, color: str, gid: str, shift: float = 0.0) -> None:
    """The x at the epoch `curve` diverged at: on its value there, or on the panel's top edge (x in data, y in
    axes coordinates, not clipped) when that value is missing, not finite or not drawable on a log axis."""
    at = curve.diverged_at
    value = curve.values[curve.epochs == at]
    style = dict(ls="none", marker="x", ms=9, mew=2.2, color=color, gid=gid, zorder=4)
    if len(value) and (ax.get_yscale() != "log" or value[0] > 0):
        ax.plot([at + shift], value[:1], **style)
    else:
        ax.plot([at + shift], [1.0], transform=ax.get_xaxis_transform(), clip_on=False, **style)


def _dodge(n_groups: int, single: bool) -> list[float]:
    """In a figure of one epoch, each group's markers a little to the side of the epoch (at most 0.3 of an epoch
    between the outermost), so that two groups on the same value are both seen; none otherwise."""
    if not single or n_groups < 2:
        return [0.0] * n_groups
    step = min(0.12, 0.3 / (n_groups - 1))
    return [(k - (n_groups - 1) / 2) * step for k in range(n_groups)]


def draw_curves(
    series: Sequence[tuple[str, Sequence]],
    panels: Sequence[tuple[str, ...]],
    title: str,
    log_keys: Sequence[str] = (),
) -> Figure:
    """The figure, not yet saved: one panel per (metric key, panel title[, y-axis label]), one line (and band) per
    group. The accuracy panels of one figure share their y range: training and test accuracy on one scale.

    Artists carry a gid for tests and tools: 'mean:<label>' (the mean line, or the single seed's line),
    'band:<label>', 'seed:<label>:<i>' (a diverged seed's own line) and 'diverged:<label>:<i>' (its x marker).
    """
    groups = [(label, _seeds(runs)) for label, runs in series]
    styles = figure_styles([label for label, _ in groups])
    panels = [(p[0], p[1], p[2] if len(p) > 2 else "") for p in panels]
    keys = [k for k, _, _ in panels]
    shown = sorted(
        {e for _, seeds in groups for rows in seeds for e in (r.get("epoch") for r in rows) if e is not None}
    )
    # one epoch: a line would be a dot, so markers only (and in the legend), hollow and side by side (`_dodge`)
    single = len(shown) == 1
    ls, ms = ("none", 9) if single else ("-", 6)
    fig = Figure(figsize=(5.0 * len(panels), 4.9), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    handles, names, ns, any_diverged = [], [], [], False
    for ax, (key, panel_title, ylabel) in zip(axes, panels):
        if key in log_keys:
            ax.set_yscale("log")  # before drawing: a divergence marker is placed by the scale
        for (label, seeds), style, shift in zip(groups, styles, _dodge(len(groups), single)):
            st = group_stats(seeds, key, keys)
            many = st.n > 1
            mark = dict(marker=style.marker, mec="white", mew=0.6, markevery=_markevery(style.slot, len(shown)))
            if single:
                mark |= dict(mfc="none", mec=style.color, mew=2.0)
            if many and len(st.epochs) and single:  # a band one epoch wide is invisible: a bar from min to max
                ax.vlines(st.epochs + shift, st.low, st.high, color=style.color, alpha=0.35, lw=6, gid=f"band:{label}")
            elif many and len(st.epochs):
                ax.fill_between(st.epochs, st.low, st.high, color=style.color, alpha=0.18, lw=0, gid=f"band:{label}")
            ax.plot(st.epochs + shift, st.mean, color=style.color, lw=2.0, ls=ls, ms=ms, gid=f"mean:{label}", **mark)
            for i, c in enumerate(st.seeds):
                if c.diverged_at is None:
                    continue
                before = c.epochs < c.diverged_at
                if (many or not before.all()) and len(c.epochs):
                    ax.plot(
                        c.epochs + shift,
                        c.values,
                        color=style.color,
                        lw=1.0,
                        ls="none" if single else "--",
                        alpha=0.85,
                        ms=5,
                        zorder=1.9,  # under every group's mean line (2): the means stay in sight where they meet
                        gid=f"seed:{label}:{i}",
                        **(mark | {"mec": style.color}),  # no white edge: it would eat so small a marker
                    )
                _divergence_marker(ax, c, style.color, f"diverged:{label}:{i}", shift)
            if ax is axes[0]:
                # the legend shows what the group is drawn as: its marker (alone, in a figure of one epoch), and a
                # dashed line where every seed diverged (the seeds' own lines are then most of what is drawn)
                gone = st.n > 0 and st.diverged == st.n and not single
                sample = mark | {"markevery": None}
                handles.append(Line2D([], [], color=style.color, lw=2.0, ls="--" if gone else ls, ms=ms, **sample))
                names.append(group_label(label, st))
                ns.append(st.n)
                any_diverged |= st.diverged > 0
        ax.set_title(panel_title)
        ax.set_xlabel(EPOCH_ZERO_LABEL if shown and shown[0] == 0 else EPOCH_LABEL)
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(shown) and shown[-1] - shown[0] < 2:  # a locator would pick fractional ticks on so short a range
            ax.set_xticks(shown)
            ax.set_xlim(shown[0] - 0.5, shown[-1] + 0.5)
        _min_span(ax, key)
        if key.endswith("acc"):  # in percent, as every table and finding gives accuracies (the data stay 0-1)
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
        ax.grid(alpha=0.3)
    _share_accuracy_range([ax for ax, (key, _, _) in zip(axes, panels) if key.endswith("acc")])
    if handles:
        ncol = min(len(handles), 3 if max(len(n) for n in names) > 24 else 6)
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncol=ncol,
            fontsize=9,
            title=legend_title(ns, any_diverged, single),
            title_fontsize=9,
            frameon=False,
        )
    fig.suptitle(title)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` to `path` atomically (a temporary file in the same folder, then a rename), mode 0644 less the
    umask, so that a reader never sees half a file and others on a shared machine can read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        os.chmod(tmp, 0o644 & ~umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def draw_lr_sweep(series, title: str = "MLP learning-rate sweep") -> Figure:
    """The write-up's Figure 2, unsaved: training accuracy, training loss (log scale) and test accuracy per epoch."""
    return draw_curves(series, LR_SWEEP_PANELS, title, log_keys=("train_loss",))


def lr_sweep_figure(series, path, title: str = "MLP learning-rate sweep") -> Path:
    """The write-up's Figure 2: training accuracy, training loss (log scale) and test accuracy per epoch, one group of
    seeds per learning rate (label it with `lr_label`)."""
    return save(draw_lr_sweep(series, title), path)


def draw_cnn_curves(series, title: str = "AlexNet learning curves") -> Figure:
    """Part 2, unsaved: training loss and validation accuracy per epoch, one group of seeds per variant."""
    return draw_curves(series, CNN_PANELS, title)


def cnn_curves_figure(series, path, title: str = "AlexNet learning curves") -> Path:
    """Part 2: training loss and validation accuracy per epoch, one group of seeds per variant (label it with
    `variant_title`)."""
    return save(draw_cnn_curves(series, title), path)
