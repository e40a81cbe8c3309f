"""Every figure mlhw draws: plain functions from per-epoch rows to a PNG file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI, servers, the device machine
import matplotlib.pyplot as plt  # noqa: E402


def curves_figure(
    series: Sequence[tuple[str, list[dict]]],
    panels: Sequence[tuple[str, str]],
    path: str | Path,
    title: str,
    log_keys: Sequence[str] = (),
) -> Path:
    """One panel per (metric key, panel title), one line per (label, history rows).

    A line that stops being finite (divergence) is drawn up to its last finite point and marked
    with an x there; its legend label says when it diverged, so the figure stays readable.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    colors = plt.cm.viridis([i / max(1, len(series) - 1) for i in range(len(series))])
    for ax, (key, panel_title) in zip(axes[0], panels):
        for (label, rows), color in zip(series, colors):
            xs = [r["epoch"] for r in rows]
            ys = [r.get(key, float("nan")) for r in rows]
            bad = next((i for i, v in enumerate(ys) if v is None or not math.isfinite(v)), None)
            shown = ys if bad is None else ys[:bad]
            name = label if bad is None else f"{label} (diverged at epoch {xs[bad]})"
            ax.plot(xs[: len(shown)], shown, color=color, label=name, lw=1.6)
            if bad is not None and bad > 0:
                ax.plot([xs[bad - 1]], [ys[bad - 1]], marker="x", color=color, ms=9, mew=2)
        ax.set_title(panel_title)
        ax.set_xlabel("epoch")
        if key in log_keys:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=9, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend under the panels
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def lr_sweep_figure(series, path, title="MLP learning-rate sweep") -> Path:
    """The seed's Figure 2: training accuracy, training loss and test accuracy per epoch."""
    return curves_figure(
        series,
        [("train_acc", "training accuracy"), ("train_loss", "training loss"), ("test_acc", "test accuracy")],
        path,
        title,
        log_keys=("train_loss",),
    )


def cnn_curves_figure(series, path, title="AlexNet learning curves") -> Path:
    """Part 2: mean training loss and validation accuracy per epoch, one line per variant."""
    return curves_figure(series, [("train_loss", "training loss"), ("val_acc", "validation accuracy")], path, title)
