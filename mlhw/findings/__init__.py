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
  it): the final training accuracy for Part 1 (b), the final validation accuracy for Part 2, counted per run. A
  Part 2 run at chance at every epoch "never left chance" rather than collapsed.
- **Part 1 (b) outcome of one run** (on its training accuracy, per epoch): *diverges* (the training loss became
  non-finite, or above 10 ln(classes) in an epoch where it did not fall: mlhw.divergence; the epoch),
  *collapses* (final accuracy at chance; the first epoch from which it stays there),
  *learns* (final accuracy >= `LEARNS_FRACTION` (90%) of the best rate's mean final accuracy; the first epoch
  it reached that level), *learns slowly* (below that, and still rising: over the last third of its epochs, at
  least `STALL_WINDOW` (5), the least-squares line through its accuracy rises by >= `STALL_GAIN` (1 point) with
  a slope at least `TREND_T` (2) standard errors above 0, so that a flat curve's noise is not read as learning)
  or *stalls* (below that and no longer rising; the first epoch within `STALL_GAIN` of its best accuracy);
  *lags* when it trained fewer than `STALL_WINDOW` epochs (too few to tell those two apart), *no curve* when it
  logged no per-epoch history.
- **Part 2 (c) speed**: epochs to reach a fixed validation accuracy that both variants reach, `SPEED_FRACTION`
  (90%) of the weaker variant's mean final validation accuracy (90% of the better's put the level above where the
  weaker ends, and "not reached" then restated the final accuracies); when the weaker never leaves chance, 90% of
  the better's. A run that never reaches it is "not reached" (no number), and counts as later than any that did
  (every run trains as many epochs): the counts are reported ("reached in 3/3 runs with vs 1/3 without"), never an
  average over the runs that reached it. One rule decides, censored or not: the exact rank test (Mann-Whitney's U
  over every deal of the runs, `mlhw.stats.rank_test`) at 1 - confidence. Epoch counts are few small integers,
  often tied, where Welch's t said Yes to 2, 2, 2 vs 6, 6, 5 at 3 vs 3 while the stronger 2, 2, 2 vs 6, -, - could
  only be undecided. A clean split that does not reach it (0.10, the least at 3 vs 3) is named with its
  probability and the runs a side that could decide; one run a side decides nothing. A run without its per-epoch history
  leaves the question undecided. When that level is itself at chance, neither variant learned and there is no
  speed to compare.
- **The write-up's reference numbers** (its single runs: `reference.MLP_FULL_TEST_ACC`, `CNN_REFERENCE`) are
  compared only on the dataset they were measured on (MNIST for Part 1, CIFAR-10 for Part 2): the write-up's
  number is "within our spread" when it lies in our mean +- 2 std (n >= 2). A single run is compared with the
  spread of single runs, not with the (narrower) interval of our mean.

The package: `base` (the Finding, these constants, shared sentences), `part1` and `part2` (one function per
question), `render`; `build_findings` below asks every question.
"""

from __future__ import annotations

from mlhw.findings.base import (
    CHANCE_MARGIN,
    LEARNS_FRACTION,
    SPEED_FRACTION,
    SPREAD_STDS,
    Finding,
    difference_sentence,
    diverged_epoch,
    epochs_to_reach,
    is_chance,
    off_reference,
    reference_check,
)
from mlhw.findings.part1 import classify_run, part1b, part1c, still_rising
from mlhw.findings.part2 import part2_pair, part2c
from mlhw.findings.render import to_markdown, to_rich, to_text
from mlhw.reference import CNN_PART_SUITES
from mlhw.stats import CONFIDENCE, Difference, welch_difference
from mlhw.tables import setting_groups

__all__ = [
    "CHANCE_MARGIN",
    "CONFIDENCE",
    "LEARNS_FRACTION",
    "SPEED_FRACTION",
    "SPREAD_STDS",
    "Difference",
    "Finding",
    "build_findings",
    "classify_run",
    "difference_sentence",
    "diverged_epoch",
    "epochs_to_reach",
    "is_chance",
    "off_reference",
    "part1b",
    "part1c",
    "part2_pair",
    "part2c",
    "reference_check",
    "still_rising",
    "to_markdown",
    "to_rich",
    "to_text",
    "welch_difference",
]


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
    """One Finding per question, in the assignment's order. `compare_reference`: None compares with the write-up's
    numbers only when the runs are on the write-up's dataset (MNIST / CIFAR-10). `include_missing`: a question
    whose suite has no runs gets a Finding saying it was not reproduced (else it is left out)."""
    out: list[Finding] = []

    def add(suite: str, make, by: tuple[str, ...]):
        if records.get(suite) or include_missing:
            out.append(per_setting(make, records.get(suite) or [], by))

    add("mlp_lr_sweep", lambda rs: part1b(rs, n_classes, chance_margin), ("lr",))
    add("mlp_full", lambda rs: part1c(rs, compare_reference), ())
    for part in ("a", "b"):
        add(
            CNN_PART_SUITES[part],
            lambda rs, part=part: part2_pair(rs, part, n_classes, chance_margin, compare_reference, confidence),
            ("variant",),
        )
    add(
        CNN_PART_SUITES["c"],
        lambda rs: part2c(rs, n_classes, chance_margin, speed_fraction, compare_reference, confidence),
        ("variant",),
    )
    return out


def per_setting(make, records: list[dict], by: tuple[str, ...]) -> Finding:
    """`make(records)`, asked once per setting when the runs differ in a config field besides the seed and the one
    the question varies (`by`: Part 1 (b)'s lr, Part 2's variant): a grid a profile or a `--set` added
    (`mlp_full.grid.hidden=[40,80]`). The tables give such runs a row each (tables.summarise); pooled here, the
    answer averaged two networks as seeds of one ('91.40% ± 1.42% (n=4)' beside rows of 91.20% and 91.60%)."""
    extra, groups = setting_groups(records, by)
    if len(groups) < 2:
        return make(records)
    answered = [(label, make(rs)) for label, rs in groups]
    first = answered[0][1]
    answer = (
        f"The runs differ in {', '.join(extra)}: each setting is answered on its own (seeds alone are averaged). "
        + " ".join(f"**{label}**: {f.answer}" for label, f in answered)
    )
    details: list[str] = []
    for label, f in answered:  # a definition every setting shares is said once
        for d in f.details:
            shared = all(d in g.details for _, g in answered)
            line = d if shared else f"{label}: {d}"
            if line not in details:
                details.append(line)
    column = ", ".join(extra)
    table = [
        {column: label.split("=", 1)[1] if len(extra) == 1 else label} | row
        for label, f in answered
        for row in f.table or []
    ]
    evidence = {"varies": extra, "settings": {label: f.evidence for label, f in answered}}
    return Finding(first.part, first.question, answer, evidence, details, table or None)
