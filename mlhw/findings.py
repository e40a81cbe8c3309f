"""Findings: the assignment's questions answered from run records, with statistics over seeds.

Plain data in, plain data out: no MLflow, no Typer. The input is `records`, a dict suite -> list of run
records; a record is a dict with the run's config fields (`lr`, `optimizer`, `batchnorm`, `dropout`, `seed`,
`dataset`, and `variant` for the CNN suites), its final metrics (`train_loss`, `train_acc`, `val_acc`,
`test_acc`, `test_loss` where present), `diverged_epoch` (int or None; derived from the history when
absent) and `history`, a list of per-epoch dicts (CNN: `epoch` from 1, `train_loss`, `train_acc`, `val_acc`;
MLP: `epoch` from 0 = before training, `train_loss`, `train_acc`, `test_acc`).

`build_findings(records)` returns one `Finding` per question (Part 1 (b), 1 (c), Part 2 (a), (b), (c));
`to_markdown`, `to_text` and `to_rich` render them.

Definitions (module constants, all overridable through `build_findings`'s arguments):

- **Difference** between the two variants of a part: always *second minus first*, in the order of
  `reference.CNN_PARTS` (a: Adam 5e-5 - SGD 0.005; b: Adam 5e-5 - Adam 0.005; c: with BN+Dropout - without).
  Its 95% confidence interval is Welch's (`mlhw.stats.welch_difference`). An interval that contains 0 is
  reported as "not distinguishable with n=...", and, when every run of one side lies above every run of the
  other, "though every run of X is above every run of Y" with the exact rank test's probability of so clean a
  split (0.10 at 3 vs 3). With fewer than 2 runs on either side there is no interval ("n=1: no interval").
  When neither side varies at all (every seed gave the same number) the interval is the single point d:
  reported as such, with the warning that n seeds showed no spread.
- **Collapse to chance**: an accuracy at most `CHANCE_MARGIN` (5 points) above chance = 1/n_classes (or below
  it): the final training accuracy for Part 1 (b), the final validation accuracy for Part 2, counted per run.
- **Part 1 (b) outcome of one run** (on its training accuracy, per epoch): *diverges* (the training loss became
  non-finite, or above 10 ln(classes) in an epoch where it did not fall: mlhw.divergence; the epoch),
  *collapses* (final accuracy at chance; the first epoch from which it stays there),
  *learns* (final accuracy >= `LEARNS_FRACTION` (90%) of the best rate's mean final accuracy; the first epoch
  it reached that level), *learns slowly* (below that, and still rising: over the last third of its epochs, at
  least `STALL_WINDOW` (5), the least-squares line through its accuracy rises by >= `STALL_GAIN` (1 point) with
  a slope at least `TREND_T` (2) standard errors above 0, so that a flat curve's noise is not read as learning)
  or *stalls* (below that and no longer rising; the first epoch within `STALL_GAIN` of its best accuracy).
- **Part 2 (c) speed**: epochs to reach a fixed validation accuracy, `SPEED_FRACTION` (90%) of the pair's best
  mean final validation accuracy; a run that never reaches it is "not reached" (no number). The difference in
  epochs (with BN+Dropout minus without) has a Welch interval only when every run reached the level; otherwise
  the counts are reported ("reached in 3/3 runs with vs 0/3 without"), never an average over the runs that
  reached it. When the best mean is itself at chance, neither variant learned and there is no speed to compare.
- **Seed reference numbers** (the write-up's single runs: `reference.MLP_FULL_TEST_ACC`, `CNN_REFERENCE`) are
  compared only on the dataset they were measured on (MNIST for Part 1, CIFAR-10 for Part 2): the seed's
  number is "within our spread" when it lies in our mean +- 2 std (n >= 2). A single run is compared with the
  spread of single runs, not with the (narrower) interval of our mean.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlhw.divergence import first_diverged
from mlhw.labels import variant_title
from mlhw.reference import CNN_INDEPENDENT_VAL_ACC, CNN_PART_SUITES, CNN_PARTS, CNN_REFERENCE, MLP_FULL_TEST_ACC
from mlhw.stats import CONFIDENCE, Difference, mean_std, welch_difference
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


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _values(records: list[dict], key: str) -> list[float]:
    return [_num(r.get(key)) for r in records]


def _finite(xs) -> list[float]:
    return [x for x in xs if math.isfinite(x)]


def points(v: float | None, signed: bool = True) -> str:
    """A difference of accuracies in percentage points."""
    if v is None or not math.isfinite(v):
        return "-"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _num_str(v: float | None, signed: bool = False, digits: int = 3) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_mean_std(ms: dict, acc: bool = True) -> str:
    f = pct if acc else (lambda v: _num_str(v, digits=4))
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
    i = first_diverged([_num(r.get("train_loss")) for r in rows], 10, start=first)  # 10 classes in every dataset
    return None if i is None else int(rows[i]["epoch"])


def epochs_to_reach(history: list[dict], key: str, level: float) -> int | None:
    """The first epoch whose `key` is >= level; None when no epoch reaches it ("not reached")."""
    for row in history or []:
        v = _num(row.get(key))
        if math.isfinite(v) and v >= level:
            return int(row["epoch"])
    return None


def _seed(r: dict):
    return r.get("seed")


PART_C_LABELS = {"adam-5e-05": "BN+Dropout", "adam-5e-05-plain": "no BN+Dropout"}


def _variant_label(v: str, part: str = "") -> str:
    """Part (c) compares BN+Dropout on and off (the rate is the same); elsewhere the variant's title."""
    if part == "c" and v in PART_C_LABELS:
        return PART_C_LABELS[v]
    return variant_title(v)


def _dataset(records: list[dict]) -> str:
    ds = sorted({str(r.get("dataset")) for r in records if r.get("dataset") is not None})
    return ", ".join(ds) or "unknown"


# The fields that make a run the assignment's setting (the rest, seed and the CNN variant's optimizer, rate and
# BN/Dropout, are what the parts compare); the reference values are the config defaults on the reference dataset.
REFERENCE_FIELDS = {
    "mlp": ("hidden", "epochs", "batch_size", "lr", "train_size", "test_size"),
    "cnn": ("epochs", "batch_size", "width", "image_size", "train_fraction", "momentum"),
}


def off_reference(records: list[dict], kind: str) -> list[str]:
    """How the records differ from the setting the seed's numbers were measured at ('epochs=5', 'dataset=digits');
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
    return out


def _use_reference(records: list[dict], kind: str, compare_reference: bool | None) -> bool:
    if compare_reference is not None:
        return compare_reference
    return bool(records) and not off_reference(records, kind)


def reference_check(ours: list[float], reference: float | None, k: float = SPREAD_STDS) -> dict:
    """Whether the seed's single-run number lies within our mean +- k std (n >= 2)."""
    ms = mean_std(ours)
    out = {"reference": reference, "mean": ms["mean"], "std": ms["std"], "n": ms["n"], "within": None}
    if reference is None or not math.isfinite(ms["mean"]):
        return out
    out["difference"] = ms["mean"] - reference
    if ms["std"] is not None and ms["n"] >= 2:
        lo, hi = ms["mean"] - k * ms["std"], ms["mean"] + k * ms["std"]
        out.update(low=lo, high=hi, within=bool(lo <= reference <= hi))
    return out


def _reference_sentence(label: str, metric: str, chk: dict, acc: bool = True) -> str:
    f = pct if acc else (lambda v: _num_str(v, digits=4))
    ref = f(chk["reference"])
    if chk["within"] is None:
        why = "n=1, no spread" if chk["n"] < 2 else "no spread available"
        diff = chk.get("difference")
        d = (points(diff) + " points") if acc else _num_str(diff, signed=True, digits=4)
        return f"{label}, {metric}: the write-up's {ref} vs our {f(chk['mean'])} ({why}; difference {d})."
    where = "within" if chk["within"] else "outside"
    return (
        f"{label}, {metric}: the write-up's {ref} lies {where} our mean ± {SPREAD_STDS:g} std "
        f"[{f(chk['low'])}, {f(chk['high'])}] (n={chk['n']})."
    )


def difference_sentence(d: Difference, acc: bool = True) -> str:
    """One sentence for one Difference: 'val acc: Adam lr 5e-05 - SGD lr 0.005 = +1.8 points [95% CI ...]'."""
    f = (lambda v: points(v) + " points") if acc else (lambda v: _num_str(v, signed=True, digits=4))
    g = points if acc else (lambda v: _num_str(v, signed=True, digits=4))
    name = METRIC_NAMES.get(d.metric, d.metric)
    head = f"{name}: {d.second} − {d.first} = {f(d.diff)}"
    n = f"n={d.n_second} vs {d.n_first}"
    conf = f"{100 * d.confidence:.0f}% CI"
    if d.verdict == "no interval":
        return f"{head} ({n}; {d.note})."
    if d.note:  # zero spread
        tail = "the same in every run" if d.verdict == "identical" else "every run agrees"
        return f"{head} ({n}; {d.note}: {tail})."
    ci = f"{conf} [{g(d.low)}, {g(d.high)}]{_clip_note(d)}, Welch df {d.df:.1f}"
    if d.verdict == "not distinguishable":
        return f"{head} ({ci}): not distinguishable with {n}."
    higher, lower = (d.second, d.first) if d.verdict == "second higher" else (d.first, d.second)
    if d.metric.endswith("_loss"):
        return f"{head} ({ci}, {n}): lower for {lower}."
    return f"{head} ({ci}, {n}): higher for {higher}."


def _diff_evidence(d: Difference) -> dict:
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


# --- Part 1 (b) -----------------------------------------------------------------------------------------


def classify_run(
    record: dict,
    best_final_acc: float,
    n_classes: int = 10,
    margin: float = CHANCE_MARGIN,
    learns_fraction: float = LEARNS_FRACTION,
    window: int = STALL_WINDOW,
    gain: float = STALL_GAIN,
    key: str = "train_acc",
) -> tuple[str, int | None]:
    """(outcome, epoch) of one learning-rate run; see the module docstring for the definitions."""
    div = diverged_epoch(record)
    if div is not None:
        return "diverges", div
    hist = [h for h in record.get("history") or [] if "epoch" in h]
    accs = [_num(h.get(key)) for h in hist]
    final = _num(record.get(key, accs[-1] if accs else float("nan")))
    if is_chance(final, n_classes, margin):
        # the first epoch (after epoch 0, the untrained network) from which the accuracy stays at chance
        epoch = None
        for i in range(len(hist) - 1, -1, -1):
            if hist[i]["epoch"] == 0 or not is_chance(accs[i], n_classes, margin):
                break
            epoch = int(hist[i]["epoch"])
        return "collapses", epoch
    level = learns_fraction * best_final_acc
    if final >= level:
        reached = epochs_to_reach(hist, key, level)
        return "learns", reached
    if still_rising(accs, window, gain):
        return "learns slowly", None
    # stalled: the first epoch within `gain` of the best it ever reached. (Scanning back from the last epoch
    # for a lower one stopped at once on a noisy curve: a run swinging between 47% and 70% from epoch 7 on
    # was said to stall "from epoch 30" of 30.)
    finite = [(int(h["epoch"]), a) for h, a in zip(hist, accs) if math.isfinite(a)]
    if not finite:
        return "stalls", None
    top = max(a for _, a in finite)
    return "stalls", next(e for e, a in finite if a >= top - gain)


def still_rising(accs: list[float], window: int = STALL_WINDOW, gain: float = STALL_GAIN, t: float = TREND_T) -> bool:
    """Whether a curve still rises at its end: over its last third (at least `window` epochs after the first
    point), the least-squares line rises by >= `gain` and its slope is >= `t` standard errors. The difference of
    two end points (the rule before) read the noise of a flat curve as learning: lr 1 on MNIST, flat at 27% +- 5,
    "learned slowly" in 3 of 5 runs, while lr 0.01, rising by 1.7 points over its last 10 epochs, "stalled"."""
    y = np.asarray([a for a in accs if math.isfinite(a)], dtype=float)
    y = y[-max(window + 1, len(y) // 3) :]
    if len(y) < 3:  # two points: no noise to measure; their difference alone
        return len(y) == 2 and y[1] - y[0] >= gain
    x = np.arange(len(y), dtype=float) - (len(y) - 1) / 2
    slope = float(x @ (y - y.mean()) / (x @ x))
    resid = y - y.mean() - slope * x
    se = math.sqrt(float(resid @ resid) / (len(y) - 2) / float(x @ x))
    return slope * (len(y) - 1) >= gain and (se == 0 or slope >= t * se)


OUTCOME_ORDER = ["learns", "learns slowly", "stalls", "collapses", "diverges"]


def part1b(
    records: list[dict], n_classes: int = 10, margin: float = CHANCE_MARGIN, learns_fraction: float = LEARNS_FRACTION
) -> Finding:
    question = "Part 1 (b): which learning rates learn, stall, collapse or diverge?"
    if not records:
        return Finding("1b", question, "No runs of the learning-rate sweep: not reproduced here.", {"n": 0})
    rates = sorted({_num(r["lr"]) for r in records})
    by_rate = {lr: [r for r in records if _num(r["lr"]) == lr] for lr in rates}
    finals = {lr: _finite(_values(rs, "train_acc")) for lr, rs in by_rate.items()}
    best = max((float(np.mean(v)) for v in finals.values() if v), default=float("nan"))
    evidence: dict[str, Any] = {
        "dataset": _dataset(records),
        "best_mean_final_train_acc": best,
        "learns_level": learns_fraction * best,
        "chance": 1.0 / n_classes,
        "chance_margin": margin,
        "rates": {},
    }
    table, parts = [], []
    for lr, rs in by_rate.items():
        runs = []
        for r in sorted(rs, key=lambda r: (_seed(r) is None, _seed(r))):
            outcome, epoch = classify_run(r, best, n_classes, margin, learns_fraction)
            runs.append({"seed": _seed(r), "outcome": outcome, "epoch": epoch})
        counts = {o: sum(1 for x in runs if x["outcome"] == o) for o in OUTCOME_ORDER}
        counts = {o: c for o, c in counts.items() if c}
        majority = max(counts, key=lambda o: (counts[o], -OUTCOME_ORDER.index(o)))
        tr, te = mean_std(_values(rs, "train_acc")), mean_std(_values(rs, "test_acc"))
        evidence["rates"][f"{lr:g}"] = {
            "outcome": majority if len(counts) == 1 else "mixed",
            "counts": counts,
            "runs": runs,
            "train_acc": tr,
            "test_acc": te,
            "train_loss": mean_std(_values(rs, "train_loss")),
        }
        desc = _outcome_phrase(runs, len(rs))
        parts.append(f"lr {lr:g} {desc}")
        table.append(
            {
                "learning rate": f"{lr:g}",
                "outcome": desc,
                "final train acc": fmt_mean_std(tr),
                "final test acc": fmt_mean_std(te),
            }
        )
    answer = "; ".join(parts) + "."
    details = [  # one rule a line: the outcomes' definitions as one sentence were hard to read
        f"Dataset {evidence['dataset']}. Outcomes, from each run's training accuracy per epoch (its loss for "
        "*diverges*):",
        f"*learns*: its final training accuracy reaches {100 * learns_fraction:.0f}% of the best rate's mean "
        f"({pct(learns_fraction * best)}); the epoch is when it first got there.",
        f"*learns slowly*: below that, but still rising: over the last third of its epochs (at least {STALL_WINDOW}) "
        f"a least-squares line gains ≥ {100 * STALL_GAIN:.0f} point, with a slope {TREND_T:g} standard errors "
        "above 0.",
        f"*stalls*: below that and no longer rising; from the first epoch within {100 * STALL_GAIN:.0f} point of "
        "its best.",
        f"*collapses*: it ends within {100 * margin:.0f} points of chance ({pct(1 / n_classes)}); from the epoch "
        "it stays there.",
        "*diverges*: its training loss became non-finite or exceeded 10 ln(classes), far above the loss of chance, "
        "in an epoch where it did not fall; that epoch (epoch 0, the untrained network with the skeleton's "
        "unscaled N(0, 1) weights, often starts above it and is never judged).",
    ]
    return Finding("1b", question, answer, evidence, details, table)


def _outcome_phrase(runs: list[dict], n: int) -> str:
    groups: dict[str, list] = {}
    for x in runs:
        groups.setdefault(x["outcome"], []).append(x["epoch"])
    out = []
    for o in OUTCOME_ORDER:
        if o not in groups:
            continue
        eps = [e for e in groups[o] if e is not None]
        when = ""
        if eps:
            lo, hi = min(eps), max(eps)
            prep = {"learns": "by epoch", "collapses": "from epoch", "stalls": "from epoch"}.get(o, "at epoch")
            when = f" {prep} {lo}" if lo == hi else f" {prep} {lo}-{hi}"
        cnt = "" if len(groups[o]) == n else f" in {len(groups[o])}/{n} runs"
        out.append(f"{o}{when}{cnt}")
    return ", ".join(out)


# --- Part 1 (c) -----------------------------------------------------------------------------------------


def part1c(records: list[dict], compare_reference: bool | None = None, reference: float = MLP_FULL_TEST_ACC) -> Finding:
    question = "Part 1 (c): the full run's test accuracy, beside the write-up's 0.9397"
    if not records:
        return Finding("1c", question, "No full runs: not reproduced here.", {"n": 0})
    te = mean_std(_values(records, "test_acc"))
    ds = _dataset(records)
    chk = reference_check(_values(records, "test_acc"), reference)
    evidence = {"dataset": ds, "test_acc": te, "reference_test_acc": reference, "reference_check": chk}
    answer = f"Test accuracy {fmt_mean_std(te)} on {ds}"
    if _use_reference(records, "mlp", compare_reference):
        if chk["within"] is None:
            answer += f"; the seed reported {pct(reference)} on MNIST. " + _reference_sentence(
                "Part 1 (c)", "test accuracy", chk
            )
        else:  # the seed's one run beside the spread of single runs here: how far, and what it means
            side = "below" if chk["difference"] > 0 else "above"
            far = abs(chk["difference"]) > 2 * SPREAD_STDS * chk["std"]  # 4 std: no longer "a little"
            answer += (
                f"; the write-up's single run reported {pct(reference)} on MNIST, {abs(100 * chk['difference']):.2f} "
                f"points {side} our mean and {'within' if chk['within'] else 'outside'} our runs' mean ± "
                f"{SPREAD_STDS:g} std [{pct(chk['low'])}, {pct(chk['high'])}]: "
                + (
                    "a run like ours."
                    if chk["within"]
                    else f"{'far' if far else 'a little'} {'lower' if side == 'below' else 'higher'} than a run here "
                    f"typically gives."
                )
            )
        evidence["compared_with_reference"] = True
    else:
        off = off_reference(records, "mlp")
        answer += (
            f"; the write-up's {pct(reference)} was measured on MNIST at the assignment's settings: not compared, "
            f"these runs differ in {'; '.join(off) if off else 'their settings'}."
        )
        evidence["compared_with_reference"] = False
    return Finding("1c", question, answer, evidence)


# --- Part 2 ---------------------------------------------------------------------------------------------


def _seed_answer(part: str) -> str:
    """The seed's own answer to a Part 2 question (CIFAR-10, one run each), for a report that could not
    reproduce it: its numbers, second minus first as everywhere, and an independent solution's."""
    first, second = CNN_PARTS[part][1]
    a, b = CNN_REFERENCE[first], CNN_REFERENCE[second]
    ia, ib = CNN_INDEPENDENT_VAL_ACC[first], CNN_INDEPENDENT_VAL_ACC[second]
    names = f"{variant_title(second)} − {variant_title(first)}"
    loss = (
        f", final training loss {b['train_loss'] - a['train_loss']:+.4f}"
        if a.get("train_loss") is not None and b.get("train_loss") is not None
        else " (its table gives no training loss for the run without BN+Dropout)"
    )
    out = (
        f" The write-up (CIFAR-10, one run each): {names} = {points(b['val_acc'] - a['val_acc'])} points of validation "
        f"accuracy ({pct(b['val_acc'])} vs {pct(a['val_acc'])}), {points(b['test_acc'] - a['test_acc'])} of test "
        f"accuracy{loss}; an independent solution: {points(ib - ia)} points of validation accuracy."
    )
    if part == "c":
        out += " The seed reports final numbers only: whether BN+Dropout speeds learning needs per-epoch curves."
    return out


def _pair(records: list[dict], part: str) -> tuple[list[str], dict[str, list[dict]]]:
    names = CNN_PARTS[part][1]
    return names, {v: [r for r in records if r.get("variant") == v] for v in names}


def _collapse_info(rs: list[dict], n_classes: int, margin: float) -> dict:
    flags = [is_chance(_num(r.get("val_acc")), n_classes, margin) for r in rs]
    return {"collapsed": sum(flags), "n": len(rs), "diverged": sum(diverged_epoch(r) is not None for r in rs)}


def _final_differences(
    first: str, second: str, groups: dict[str, list[dict]], confidence: float, part: str = ""
) -> tuple[dict, list[str], dict[str, Difference]]:
    evidence, sentences, diffs = {}, [], {}
    for m in ("val_acc", "test_acc", "train_loss"):
        a, b = _values(groups[first], m), _values(groups[second], m)
        if all(math.isnan(x) for x in a + b):
            continue
        d = welch_difference(a, b, m, (_variant_label(first, part), _variant_label(second, part)), confidence)
        diffs[m] = d
        evidence[m] = _diff_evidence(d)
        sentences.append(difference_sentence(d, acc=m != "train_loss"))
    return evidence, sentences, diffs


def _reference_details(names: list[str], groups: dict[str, list[dict]], evidence: dict, part: str = "") -> list[str]:
    out, checks = [], {}
    for v in names:
        ref = CNN_REFERENCE.get(v, {})
        for m in ("train_loss", "val_acc", "test_acc"):
            if ref.get(m) is None or not groups[v]:
                continue
            chk = reference_check(_values(groups[v], m), ref[m])
            checks.setdefault(v, {})[m] = chk
            label = _variant_label(v) + (" with BN+Dropout" if part == "c" and v == "adam-5e-05" else "")
            out.append(_reference_sentence(label, METRIC_NAMES[m], chk, acc=m != "train_loss"))
    evidence["reference_checks"] = checks
    return out


def _collapse_sentences(names: list[str], chance: dict, n_classes: int, margin: float, part: str = "") -> list[str]:
    out = []
    for v in names:
        c, label = chance[v], _variant_label(v) + (" with BN+Dropout" if part == "c" and v == "adam-5e-05" else "")
        if c["collapsed"]:
            out.append(
                f"{label} collapsed to chance (validation accuracy within {100 * margin:.0f} points of "
                f"{pct(1 / n_classes)}) in {c['collapsed']}/{c['n']} runs"
            )
        if c["diverged"]:
            why = "loss non-finite, or far above chance and not falling"
            out.append(f"{label} diverged ({why}) in {c['diverged']}/{c['n']} runs")
    return out


def _verdict_clause(d: Difference | None, what: str, higher_is_better: bool = True) -> str:
    if d is None:
        return f"no {what}"
    if d.verdict == "no interval":
        return f"{what} {d.second} − {d.first} = {_fmt_metric(d)} ({d.note})"
    if d.verdict == "identical":
        return f"{what} identical"
    if d.verdict == "not distinguishable":  # the difference stays in view: +38.7 points may be noise, not nothing
        ci = f"{_fmt_metric_value(d, d.low)}, {_fmt_metric_value(d, d.high)}"
        return (
            f"{what} {d.second} − {d.first} = {_fmt_metric(d)}, not distinguishable with n={d.n_second} vs "
            f"{d.n_first} ({100 * d.confidence:.0f}% CI [{ci}]{_clip_note(d)}){_split_note(d)}"
        )
    better = d.second if (d.verdict == "second higher") == higher_is_better else d.first
    if d.metric == "train_loss":
        amount = f"{'lower' if higher_is_better is False else 'higher'} by {abs(d.diff):.4f}"
    else:
        amount = f"{'higher' if higher_is_better else 'lower'} by {100 * abs(d.diff):.1f} points"
    return f"{better} better in {what} ({amount})"


SPLIT_CHANCE = re.compile(r" \(so clean a split comes by chance with probability [^)]*\)")


def _split_note(d: Difference) -> str:
    """', though every run of X is above every run of Y (... probability 0.10 at 3 vs 3)': what a wide t interval of
    few runs hides (digits' Adam 5e-5 above 0.005 in every seed read as 'not distinguishable'). The probability is
    the exact two-sided rank test's (Mann-Whitney U = 0): 2 / C(n1 + n2, n1)."""
    if d.above is None:
        return ""
    hi, lo = (d.second, d.first) if d.above == "second" else (d.first, d.second)
    p = f"{d.split_p:.2f}" if d.split_p >= 0.01 else f"{d.split_p:.1g}"
    return (
        f", though every run of {hi} is above every run of {lo} (so clean a split comes by chance with "
        f"probability {p} at {d.n_second} vs {d.n_first})"
    )


def _said_once(text: str) -> str:
    """The split's probability once per answer: validation and test accuracy split alike said it twice."""
    seen = []

    def first_only(m: re.Match) -> str:
        seen.append(m)
        return m.group(0) if len(seen) == 1 else ""

    return SPLIT_CHANCE.sub(first_only, text)


def _clip_note(d: Difference) -> str:
    return ", cut at ±100 points" if d.clipped else ""  # Welch's t interval passes beyond what accuracies can differ by


def _fmt_metric(d: Difference) -> str:
    return _fmt_metric_value(d, d.diff) + ("" if d.metric == "train_loss" else " points")


def _fmt_metric_value(d: Difference, v: float | None) -> str:
    return _num_str(v, signed=True, digits=4) if d.metric == "train_loss" else points(v)


def part2_pair(
    records: list[dict],
    part: str,
    n_classes: int = 10,
    margin: float = CHANCE_MARGIN,
    compare_reference: bool | None = None,
    confidence: float = CONFIDENCE,
) -> Finding:
    """Part 2 (a) or (b): the two variants' final metrics, their Welch differences, collapse to chance."""
    question = PART_QUESTIONS[part]
    names, groups = _pair(records, part)
    first, second = names
    if not groups[first] or not groups[second]:
        absent = [v for v in names if not groups[v]]
        answer = f"No runs of {', '.join(absent)}: not reproduced here." + _seed_answer(part)
        return Finding(f"2{part}", question, answer, {"n": 0, "missing": absent})
    evidence, sentences, diffs = _final_differences(first, second, groups, confidence)
    evidence["dataset"] = _dataset(records)
    evidence["chance"] = {v: _collapse_info(groups[v], n_classes, margin) for v in names}
    evidence["variants"] = {
        v: {m: mean_std(_values(groups[v], m)) for m in ("train_loss", "val_acc", "test_acc")} for v in names
    }
    collapse = _collapse_sentences(names, evidence["chance"], n_classes, margin)
    clauses = [_verdict_clause(diffs.get("val_acc"), "validation accuracy")]
    clauses.append(_verdict_clause(diffs.get("test_acc"), "test accuracy"))
    clauses.append(_verdict_clause(diffs.get("train_loss"), "final training loss", higher_is_better=False))
    answer = f"On {evidence['dataset']}: " + _said_once("; ".join(clauses)) + "."
    answer += (" " + "; ".join(collapse) + ".") if collapse else " Neither variant collapsed to chance."
    details = [s[0].upper() + s[1:] for s in sentences]
    if _use_reference(records, "cnn", compare_reference):
        details += _reference_details(names, groups, evidence)
    return Finding(f"2{part}", question, answer, evidence, details)


def part2c(
    records: list[dict],
    n_classes: int = 10,
    margin: float = CHANCE_MARGIN,
    speed_fraction: float = SPEED_FRACTION,
    compare_reference: bool | None = None,
    confidence: float = CONFIDENCE,
) -> Finding:
    """Part 2 (c), about speed: epochs to reach `speed_fraction` of the pair's best mean final val acc."""
    question = PART_QUESTIONS["c"]
    names, groups = _pair(records, "c")
    plain, bn = names
    if not groups[plain] or not groups[bn]:
        absent = [v for v in names if not groups[v]]
        answer = f"No runs of {', '.join(absent)}: not reproduced here." + _seed_answer("c")
        return Finding("2c", question, answer, {"missing": absent})
    finals = {v: _finite(_values(groups[v], "val_acc")) for v in names}
    best = max(float(np.mean(x)) for x in finals.values() if x) if any(finals.values()) else float("nan")
    level = speed_fraction * best
    per_seed: dict[str, list[dict]] = {}
    for v in names:
        rs = sorted(groups[v], key=lambda r: (_seed(r) is None, _seed(r)))
        per_seed[v] = [
            {"seed": _seed(r), "epochs": epochs_to_reach(r.get("history") or [], "val_acc", level)} for r in rs
        ]
    epochs = {v: [x["epochs"] for x in per_seed[v]] for v in names}
    reached = {v: [e for e in epochs[v] if e is not None] for v in names}
    speed: dict[str, Any] = {
        "level": level,
        "fraction": speed_fraction,
        "best_mean_final_val_acc": best,
        "per_seed": per_seed,
        "reached": {v: len(reached[v]) for v in names},
        "n": {v: len(epochs[v]) for v in names},
    }
    all_reached = all(len(reached[v]) == len(epochs[v]) for v in names)
    # the level itself must lie beyond chance: reaching 13.85% (90% of a best of 15.38%) is no learning
    learned = not is_chance(level, n_classes, margin)
    single = [v for v in names if len(epochs[v]) < 2]  # a variant of one run
    n_str = (
        f"reached in {len(reached[bn])}/{len(epochs[bn])} runs with BN+Dropout "
        f"vs {len(reached[plain])}/{len(epochs[plain])} without"
    )
    what = f"{pct(level)} validation accuracy ({100 * speed_fraction:.0f}% of the pair's best mean final {pct(best)})"
    if not learned:
        speed["verdict"] = "no learning"
        verdict = (
            f"Undecided: neither variant learned beyond chance: the level to reach, {pct(level)} validation "
            f"accuracy ({100 * speed_fraction:.0f}% of the pair's best mean final {pct(best)}), is within "
            f"{100 * margin:.0f} points of chance ({pct(1 / n_classes)}), so there is no speed to compare"
        )
    elif all_reached:
        d = welch_difference(epochs[plain], epochs[bn], "epochs", ("without", "with BN+Dropout"), confidence)
        speed.update(_diff_evidence(d))
        mb, mp = mean_std(epochs[bn]), mean_std(epochs[plain])
        reach = (
            f"they reach {pct(level)} validation accuracy ({100 * speed_fraction:.0f}% of the pair's best mean final "
            f"{pct(best)}) in {_epochs_str(mb)} epochs with BN+Dropout vs {_epochs_str(mp)} without"
        )
        if d.verdict == "first higher":
            verdict = f"Yes: {reach}; difference {d.diff:+.2f} epochs" + _ci_epochs(d)
        elif d.verdict == "second higher":
            verdict = f"No, they slow it down: {reach}; difference {d.diff:+.2f} epochs" + _ci_epochs(d)
        elif d.verdict == "identical":
            verdict = f"No difference in speed: {reach} (every run of both at the same epoch)"
        elif d.verdict == "no interval":
            verdict = f"Undecided ({d.note}): {reach}; difference {d.diff:+.2f} epochs"
        else:
            verdict = (
                f"Not distinguishable with n={d.n_second} vs {d.n_first}: {reach}; difference {d.diff:+.2f} epochs"
                + _ci_epochs(d)
            )
    else:
        speed["verdict"] = "censored"
        if single:  # whether one run reached the level is no answer about its variant
            which = (
                "one run a side"
                if len(single) == 2
                else f"one run {'with' if single[0] == bn else 'without'} BN+Dropout"
            )
            verdict = f"Undecided with {which}: {what} was {n_str} (within the epochs trained)"
        elif reached[bn] and not reached[plain]:
            verdict = f"Yes: {what} was {n_str} (within the epochs trained)"
        elif reached[plain] and not reached[bn]:
            verdict = f"No, rather the opposite: {what} was {n_str} (within the epochs trained)"
        else:
            verdict = (
                f"Undecided: {what} was {n_str}; a run that never reached it has no epoch count, so there is no "
                f"interval"
            )
    answer = verdict + "."
    final_ev, sentences, diffs = _final_differences(plain, bn, groups, confidence, "c")
    evidence = {"dataset": _dataset(records), "speed": speed, **final_ev}
    evidence["chance"] = {v: _collapse_info(groups[v], n_classes, margin) for v in names}
    collapse = _collapse_sentences(names, evidence["chance"], n_classes, margin, "c")
    if collapse:
        answer += " " + "; ".join(collapse) + "."
    details = [s[0].upper() + s[1:] for s in sentences]
    if _use_reference(records, "cnn", compare_reference):
        details += _reference_details(names, groups, evidence, "c")
    table = []
    seeds = list(dict.fromkeys([x["seed"] for x in per_seed[bn]] + [x["seed"] for x in per_seed[plain]]))
    for s in seeds:
        e_bn = next((x["epochs"] for x in per_seed[bn] if x["seed"] == s), "missing")
        e_pl = next((x["epochs"] for x in per_seed[plain] if x["seed"] == s), "missing")
        table.append(
            {
                "seed": s,
                f"epochs to {pct(level)} with BN+Dropout": "not reached" if e_bn is None else e_bn,
                f"epochs to {pct(level)} without": "not reached" if e_pl is None else e_pl,
            }
        )
    return Finding("2c", question, answer, evidence, details, table)


def _epochs_str(ms: dict) -> str:
    return f"{ms['mean']:.2f}" + (f" ± {ms['std']:.2f}" if ms["std"] is not None else "") + f" (n={ms['n']})"


def _ci_epochs(d: Difference) -> str:
    if d.low is None or d.df is None:
        return f" ({d.note})"
    return f" ({100 * d.confidence:.0f}% CI [{d.low:+.2f}, {d.high:+.2f}], Welch df {d.df:.1f})"


# --- all questions --------------------------------------------------------------------------------------


def build_findings(
    records: dict[str, list[dict]],
    *,
    n_classes: int = 10,
    chance_margin: float = CHANCE_MARGIN,
    speed_fraction: float = SPEED_FRACTION,
    confidence: float = CONFIDENCE,
    compare_reference: bool | None = None,
    include_missing: bool = True,
) -> list[Finding]:
    """One Finding per question, in the assignment's order. `compare_reference`: None compares with the seed's
    numbers only when the runs are on the seed's dataset (MNIST / CIFAR-10). `include_missing`: a question
    whose suite has no runs gets a Finding saying it was not reproduced (else it is left out)."""
    out: list[Finding] = []

    def add(suite: str, make):
        if records.get(suite) or include_missing:
            out.append(make(records.get(suite) or []))

    add("mlp_lr_sweep", lambda rs: part1b(rs, n_classes, chance_margin))
    add("mlp_full", lambda rs: part1c(rs, compare_reference))
    for part in ("a", "b"):
        add(
            CNN_PART_SUITES[part],
            lambda rs, part=part: part2_pair(rs, part, n_classes, chance_margin, compare_reference, confidence),
        )
    add(
        CNN_PART_SUITES["c"],
        lambda rs: part2c(rs, n_classes, chance_margin, speed_fraction, compare_reference, confidence),
    )
    return out


# --- renderers ------------------------------------------------------------------------------------------


def _cell(v) -> str:
    return str(v).replace("|", "\\|")


def to_markdown(findings: list[Finding], heading: str | None = "## Findings") -> str:
    lines = [heading, ""] if heading else []
    for f in findings:
        lines += [f"**{f.question}**", "", f.answer, ""]
        for d in f.details:
            lines.append(f"- {d}")
        if f.details:
            lines.append("")
        if f.table:
            cols = list(f.table[0].keys())
            lines.append("| " + " | ".join(_cell(c) for c in cols) + " |")
            lines.append("|" + "---|" * len(cols))
            lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in f.table]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_text(findings: list[Finding]) -> str:
    """Plain text for a terminal without rich (or a log)."""
    lines = []
    for f in findings:
        lines += [f.question, "  " + f.answer.replace("*", "")]
        lines += ["    - " + d.replace("*", "") for d in f.details]
        if f.table:
            cols = list(f.table[0].keys())
            widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in f.table)) for c in cols]
            lines.append("    " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
            for r in f.table:
                lines.append("    " + "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_rich(findings: list[Finding]):
    """A rich renderable (a Group of panels) for the terminal."""
    from rich.console import Group
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    panels = []
    for f in findings:
        body: list = [Text(f.answer.replace("*", ""))]
        for d in f.details:
            body.append(Text("• " + d.replace("*", ""), style="dim"))
        if f.table:
            t = Table(show_edge=False)
            cols = list(f.table[0].keys())
            for c in cols:
                t.add_column(escape(str(c)))
            for r in f.table:
                t.add_row(*[escape(str(r.get(c, ""))) for c in cols])
            body.append(t)
        panels.append(Panel(Group(*body), title=escape(f.question), title_align="left"))
    return Group(*panels)
