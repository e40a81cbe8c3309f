"""What every finding shares: the `Finding`, the definitions' constants (see the package's docstring), run records'
numbers, and the sentences for a difference or a reference number."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlhw.divergence import first_diverged
from mlhw.labels import variant_title
from mlhw.stats import Difference, mean_std
from mlhw.tables import pct

CHANCE_MARGIN = 0.05
LEARNS_FRACTION = 0.9
STALL_WINDOW = 5
STALL_GAIN = 0.01
TREND_T = 2.0
SPEED_FRACTION = 0.9
SPREAD_STDS = 2.0

PART_QUESTIONS = {
    "a": "Part 2 (a): SGD (lr 0.005) vs Adam (lr 5e-05): which optimizer trains AlexNet better?",
    "b": "Part 2 (b): Adam with lr 0.005 vs lr 5e-05: what does the learning rate do?",
    "c": "Part 2 (c): do BatchNorm + Dropout accelerate learning (Adam, lr 5e-05)?",
}
REFERENCE_DATASETS = {"mlp": "mnist", "cnn": "cifar10"}
METRIC_NAMES = {"val_acc": "validation accuracy", "test_acc": "test accuracy", "train_loss": "final training loss"}


@dataclass
class Finding:
    """One question answered. `evidence` holds plain numbers (JSON-serialisable: floats, ints, None, str, and
    lists/dicts of them); `details` are further sentences; `table` optional rows (dicts) for a small table."""

    part: str  # "1b", "1c", "2a", "2b", "2c"
    question: str
    answer: str
    evidence: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    table: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def values_of(records: list[dict], key: str) -> list[float]:
    return [as_float(r.get(key)) for r in records]


def finite_only(xs) -> list[float]:
    return [x for x in xs if math.isfinite(x)]


def points(v: float | None, signed: bool = True) -> str:
    """A difference of accuracies in percentage points."""
    if v is None or not math.isfinite(v):
        return "-"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def num_str(v: float | None, signed: bool = False, digits: int = 3) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_mean_std(ms: dict, acc: bool = True) -> str:
    f = pct if acc else (lambda v: num_str(v, digits=4))
    s = f(ms["mean"])
    if ms.get("std") is not None and ms["n"] > 1:
        s += f" ± {f(ms['std'])}"
    return s + f" (n={ms['n']})"


def is_chance(acc: float, n_classes: int = 10, margin: float = CHANCE_MARGIN) -> bool:
    """Accuracy within `margin` of chance (1/n_classes) or below it; NaN counts as chance (no prediction)."""
    return not math.isfinite(acc) or acc <= 1.0 / n_classes + margin


def diverged_epoch(record: dict) -> int | None:
    """The record's `diverged_epoch` (set by the training loop), else mlhw.divergence's rule applied to its
    history's training losses (10 classes; epoch 0, before any step, never judged)."""
    if record.get("diverged_epoch") is not None:
        return int(record["diverged_epoch"])
    rows = record.get("history") or []
    first = next((i for i, r in enumerate(rows) if r.get("epoch", 0) >= 1), len(rows))
    # epoch 0 stays in the losses, so that a loss still falling from the initialisation is seen to fall
    i = first_diverged([as_float(r.get("train_loss")) for r in rows], 10, start=first)  # 10 classes in every dataset
    return None if i is None else int(rows[i]["epoch"])


def epochs_to_reach(history: list[dict], key: str, level: float) -> int | None:
    """The first epoch whose `key` is >= level; None when no epoch reaches it ("not reached")."""
    for row in history or []:
        v = as_float(row.get(key))
        if math.isfinite(v) and v >= level:
            return int(row["epoch"])
    return None


def seed_of(r: dict):
    return r.get("seed")


PART_C_LABELS = {"adam-5e-05": "BN+Dropout", "adam-5e-05-plain": "no BN+Dropout"}


def variant_label(v: str, part: str = "") -> str:
    """Part (c) compares BN+Dropout on and off (the rate is the same); elsewhere the variant's title."""
    if part == "c" and v in PART_C_LABELS:
        return PART_C_LABELS[v]
    return variant_title(v)


def dataset_of(records: list[dict]) -> str:
    ds = sorted({str(r.get("dataset")) for r in records if r.get("dataset") is not None})
    return ", ".join(ds) or "unknown"


# The fields that make a run the assignment's setting (the rest, seed and the CNN variant's optimizer, rate and
# BN/Dropout, are what the parts compare); the reference values are the config defaults on the reference dataset.
REFERENCE_FIELDS = {
    "mlp": ("hidden", "epochs", "batch_size", "lr", "train_size", "test_size"),
    "cnn": ("epochs", "batch_size", "width", "image_size", "train_fraction", "momentum"),
}


def off_reference(records: list[dict], kind: str) -> list[str]:
    """How the records differ from the setting the write-up's numbers were measured at ('epochs=5', 'dataset=digits');
    empty when every record is at that setting."""
    from mlhw.config import KINDS

    ref = KINDS[kind](dataset=REFERENCE_DATASETS[kind]).model_dump(mode="json")
    ref["dataset"] = REFERENCE_DATASETS[kind]
    out = []
    for name in ("dataset", *REFERENCE_FIELDS[kind]):
        seen = {json.dumps(r.get(name)) for r in records if name in r}
        if seen - {json.dumps(ref[name])}:
            values = sorted(json.loads(v) for v in seen if v != json.dumps(ref[name]))
            out.append(f"{name}={', '.join(str(v) for v in values)} (the assignment's: {ref[name]})")
    # Files in the official format with other content (synthetic, a benchmark's random pixels: the run's tag
    # mlhw.dataset_files) are no measurement of the write-up's setting, whatever the config: `mlp train` already
    # says the write-up's number "does not apply" to them (cli.mlp.reference_line); the report must not compare
    from mlhw.data import NOT_OFFICIAL, OFFICIAL

    other = sum(1 for r in records if r.get("dataset_files") == NOT_OFFICIAL)
    if other:
        some = "" if other == len(records) else f" in {other} of {len(records)} runs"
        out.append(f"dataset_files={NOT_OFFICIAL}{some} (the assignment's: {OFFICIAL})")
    return out


def use_reference(records: list[dict], kind: str, compare_reference: bool | None) -> bool:
    if compare_reference is not None:
        return compare_reference
    return bool(records) and not off_reference(records, kind)


def reference_check(ours: list[float], reference: float | None, k: float = SPREAD_STDS) -> dict:
    """Whether the write-up's single-run number lies within our mean +- k std (n >= 2)."""
    ms = mean_std(ours)
    out = {"reference": reference, "mean": ms["mean"], "std": ms["std"], "n": ms["n"], "within": None}
    if reference is None or not math.isfinite(ms["mean"]):
        return out
    out["difference"] = ms["mean"] - reference
    if ms["std"] is not None and ms["n"] >= 2:
        lo, hi = ms["mean"] - k * ms["std"], ms["mean"] + k * ms["std"]
        out.update(low=lo, high=hi, within=bool(lo <= reference <= hi))
    return out


def reference_sentence(label: str, metric: str, chk: dict, acc: bool = True) -> str:
    f = pct if acc else (lambda v: num_str(v, digits=4))
    ref = f(chk["reference"])
    if chk["within"] is None:
        why = "n=1, no spread" if chk["n"] < 2 else "no spread available"
        diff = chk.get("difference")
        d = (points(diff) + " points") if acc else num_str(diff, signed=True, digits=4)
        return f"{label}, {metric}: the write-up's {ref} vs our {f(chk['mean'])} ({why}; difference {d})."
    where = "within" if chk["within"] else "outside"
    return (
        f"{label}, {metric}: the write-up's {ref} lies {where} our mean ± {SPREAD_STDS:g} std "
        f"[{f(chk['low'])}, {f(chk['high'])}] (n={chk['n']})."
    )


def clip_note(d: Difference) -> str:
    return ", cut at ±100 points" if d.clipped else ""  # Welch's t interval passes beyond what accuracies can differ by


def difference_sentence(d: Difference, acc: bool = True) -> str:
    """One sentence for one Difference: 'val acc: Adam lr 5e-05 - SGD lr 0.005 = +1.8 points [95% CI ...]'."""
    f = (lambda v: points(v) + " points") if acc else (lambda v: num_str(v, signed=True, digits=4))
    g = points if acc else (lambda v: num_str(v, signed=True, digits=4))
    name = METRIC_NAMES.get(d.metric, d.metric)
    head = f"{name}: {d.second} − {d.first} = {f(d.diff)}"
    n = f"n={d.n_second} vs {d.n_first}"
    conf = f"{100 * d.confidence:.0f}% CI"
    if d.verdict == "no interval":
        return f"{head} ({n}; {d.note})."
    if d.note:  # zero spread
        tail = {"identical": "the same in every run", "not distinguishable": "not distinguishable"}.get(
            d.verdict, "every run agrees"
        )
        return f"{head} ({n}; {d.note}: {tail})."
    ci = f"{conf} [{g(d.low)}, {g(d.high)}]{clip_note(d)}, Welch df {d.df:.1f}"
    if d.verdict == "not distinguishable":
        return f"{head} ({ci}): not distinguishable with {n}."
    higher, lower = (d.second, d.first) if d.verdict == "second higher" else (d.first, d.second)
    if d.metric.endswith("_loss"):
        return f"{head} ({ci}, {n}): lower for {lower}."
    return f"{head} ({ci}, {n}): higher for {higher}."


def diff_evidence(d: Difference) -> dict:
    return {
        "diff": d.diff,
        "ci_low": d.low,
        "ci_high": d.high,
        "df": d.df,
        "verdict": d.verdict,
        "note": d.note,
        "all_above": {"second": d.second, "first": d.first}.get(d.above),  # every run of it above the other's
        "split_p": d.split_p,
        d.first: {"mean": d.mean_first, "std": None if math.isnan(d.std_first) else d.std_first, "n": d.n_first},
        d.second: {"mean": d.mean_second, "std": None if math.isnan(d.std_second) else d.std_second, "n": d.n_second},
    }
