"""The reproduction gate's policy: a baseline's check.yaml, validated, as a CheckPolicy (tolerances per
metric, chaotic rows, key columns). Plain data: no MLflow, no Typer.

check.yaml (beside `tables/` in the baseline folder; every key optional)
---------------------------------------------------------------------------
    k: 3
    tables: [mlp_lr_sweep, mlp_full, sgd_vs_adam, adam_lr, batchnorm_dropout]   # default: every mean/std table
    metrics:
      "*_acc": {absolute_floor: 0.02, greater_is_better: true}
      "*_loss": {absolute_floor: 0.02, relative_floor: 0.10, greater_is_better: false}
      mlp_lr_sweep.diverged: {absolute_floor: 0.34, k: 0}
      default: {absolute_floor: 0.02}
    chaotic:
      - {table: mlp_lr_sweep, row: {lr: 1}, reason: "lr=1 learns or collapses depending on the seed and CPU"}
      - {table: mlp_lr_sweep, row: {lr: 100}, metrics: [train_loss], reason: "the loss at chance is noise"}
      - {table: adam_lr, row: {variant: adam-0.005}, reason: "Adam lr 0.005 ..."}
    keys: {some_table: [col_a, col_b]}   # row keys of tables not in KEY_COLUMNS

A table of one result per row (no `_mean` columns, e.g. `svm`) is compared when `keys:` names its key columns:
each of its other numeric columns is a metric with n = 1, so its tolerance is the floor alone (`single_values`).
The profiles' check.yaml gate the SVM table so: the objective to 1e-6 (relative; the solvers are exact to 1e-8),
the training and test errors to 0.025 (two of the 93 test points of digits 3 vs 8, on the margin, may flip
across processors).

A metric entry takes `absolute_floor`, `relative_floor`, `k` (overrides the global k), `greater_is_better`
and `fail_on` (`any` | `worse`). A chaotic entry's `row` names columns and values; it matches every row of
that table with those values (numbers compare as numbers: `lr: 1` matches `1.0`); `metrics` (optional)
limits the mark to those metrics, the row's other metrics are checked as usual.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlhw.errors import MLHWError, as_written

KEY_COLUMNS: dict[str, list[str]] = {
    "mlp_lr_sweep": ["lr"],
    "mlp_full": ["dataset"],
    "sgd_vs_adam": ["variant"],
    "adam_lr": ["variant"],
    "batchnorm_dropout": ["variant"],
}
POLICY_FILE = "check.yaml"


class CheckConfigError(MLHWError):
    """A bad check.yaml (or policy dict): the message names the file, the key and the value."""


class DuplicateKey(CheckConfigError):
    """Two rows of a table that its key columns cannot tell apart: that table is not compared."""


@dataclass
class MetricTolerance:
    absolute_floor: float = 0.02
    relative_floor: float = 0.0
    k: float | None = None  # None: the policy's k
    greater_is_better: bool | None = None
    fail_on: str = "any"  # "any" | "worse" (needs greater_is_better)


DEFAULT_METRICS: dict[str, MetricTolerance] = {
    "*_acc": MetricTolerance(absolute_floor=0.02, greater_is_better=True),
    "*_loss": MetricTolerance(absolute_floor=0.02, relative_floor=0.10, greater_is_better=False),
    "default": MetricTolerance(absolute_floor=0.02),
}


@dataclass
class ChaoticRow:
    table: str
    row: dict[str, Any]
    reason: str = ""
    metrics: list[str] | None = None  # None: every metric of the row

    def matches(self, table: str, row: dict[str, Any], metric: str | None = None) -> bool:
        if table != self.table or (metric is not None and self.metrics is not None and metric not in self.metrics):
            return False
        return all(c in row and key_value(row[c]) == key_value(v) for c, v in self.row.items())


@dataclass
class CheckPolicy:
    k: float = 3.0
    metrics: dict[str, MetricTolerance] = field(default_factory=lambda: dict(DEFAULT_METRICS))
    chaotic: list[ChaoticRow] = field(default_factory=list)
    tables: list[str] | None = None  # None: every table of the baseline with <metric>_mean columns
    keys: dict[str, list[str]] = field(default_factory=dict)

    def tolerance_for(self, table: str, metric: str) -> MetricTolerance:
        for name in (f"{table}.{metric}", metric):
            if name in self.metrics:
                return self.metrics[name]
        for pattern, tol in self.metrics.items():
            if pattern != "default" and (
                fnmatch.fnmatchcase(metric, pattern) or fnmatch.fnmatchcase(f"{table}.{metric}", pattern)
            ):
                return tol
        return self.metrics.get("default", MetricTolerance())

    def chaotic_reason(self, table: str, row: dict[str, Any], metric: str | None = None) -> str | None:
        """Why a baseline row (matched on any of its columns) is marked chaotic (for `metric`); None if not."""
        for c in self.chaotic:
            if c.matches(table, row, metric):
                return c.reason or "marked chaotic in the baseline"
        return None

    def required_keys(self, table: str) -> list[str]:
        """The key columns a table must have: check.yaml's `keys:`, else `KEY_COLUMNS`."""
        return list(self.keys.get(table) or KEY_COLUMNS.get(table, []))

    def key_columns(self, table: str, *dfs: pd.DataFrame | None) -> tuple[list[str], list[str]]:
        """(the columns that match rows, the columns that name them). `keys:` in check.yaml sets both; otherwise
        every column that is not `n`, a metric or a reference matches (a table of a user grid has a column for
        the field it varies, e.g. `lr` in `mlp_full`), and a row is named by its `KEY_COLUMNS` and those other
        columns whose value is not one per `KEY_COLUMNS` value (`variant` names `optimizer`, `lr`, `batchnorm`)."""
        named = self.required_keys(table)
        if self.keys.get(table):
            return named, named
        frames = [df for df in dfs if df is not None]
        other = [
            c
            for df in frames
            for c in df.columns
            if c != "n" and c not in named and not is_metric_column(c) and not str(c).startswith("reference_")
        ]
        other = list(dict.fromkeys(other))
        if not named:
            return other, other
        both = pd.concat([df.reindex(columns=named + other) for df in frames]).map(key_value)
        varying = [c for c in other if both.groupby(named, dropna=False)[c].nunique(dropna=False).max() > 1]
        return named + other, named + varying

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "tables": self.tables,
            "metrics": {name: _tolerance_dict(t) for name, t in self.metrics.items()},
            "chaotic": [{k: v for k, v in asdict(c).items() if v is not None} for c in self.chaotic],
            "keys": self.keys,
        }


def _tolerance_dict(t: MetricTolerance) -> dict:
    return {k: v for k, v in asdict(t).items() if v is not None and not (k == "fail_on" and v == "any")}


# --- check.yaml ---------------------------------------------------------------------------------------


def policy_from_dict(data: dict | None, source: str = "check.yaml") -> CheckPolicy:
    """Validate a check.yaml's content; errors name the file and the key."""
    data = data or {}
    if not isinstance(data, dict):
        raise CheckConfigError(f"{source}: expected a mapping at the top level (got {type(data).__name__})")
    allowed = {"k", "metrics", "chaotic", "tables", "keys"}
    for key in data:
        if key not in allowed:
            raise CheckConfigError(f"{source}: {key}: unknown key (expected one of {', '.join(sorted(allowed))})")
    policy = CheckPolicy()
    if "k" in data:
        policy.k = _nonnegative(data["k"], f"{source}: k")
    if data.get("metrics") is not None:
        if not isinstance(data["metrics"], dict):
            raise CheckConfigError(f"{source}: metrics: expected a mapping metric -> settings")
        # user entries first (they win over the default patterns), then the remaining defaults
        user = {str(n): _tolerance_from(spec or {}, f"{source}: metrics.{n}") for n, spec in data["metrics"].items()}
        policy.metrics = user | {n: t for n, t in DEFAULT_METRICS.items() if n not in user}
    for i, c in enumerate(data.get("chaotic") or []):
        where = f"{source}: chaotic[{i}]"
        if not isinstance(c, dict) or "table" not in c or "row" not in c or not isinstance(c["row"], dict):
            raise CheckConfigError(
                f"{where}: expected {{table: NAME, row: {{KEY: VALUE}}, reason: TEXT}} (got {as_written(c)})"
            )
        extra = set(c) - {"table", "row", "reason", "metrics"}
        if extra:
            raise CheckConfigError(f"{where}.{sorted(extra)[0]}: unknown key")
        metrics = c.get("metrics")
        if metrics is not None and not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
            raise CheckConfigError(f"{where}.metrics: expected a list of metric names (got {as_written(metrics)})")
        policy.chaotic.append(ChaoticRow(str(c["table"]), dict(c["row"]), str(c.get("reason", "")), metrics))
    if data.get("tables") is not None:
        if not isinstance(data["tables"], list):
            raise CheckConfigError(
                f"{source}: tables: expected a list of table names (got {as_written(data['tables'])})"
            )
        policy.tables = [str(t) for t in data["tables"]]
    if data.get("keys") is not None:
        if not isinstance(data["keys"], dict) or not all(isinstance(v, list) for v in data["keys"].values()):
            raise CheckConfigError(f"{source}: keys: expected a mapping table -> list of columns")
        policy.keys = {str(t): [str(c) for c in cols] for t, cols in data["keys"].items()}
    return policy


def _nonnegative(v, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise CheckConfigError(f"{where}: expected a number >= 0 (got {as_written(v)})")
    return float(v)


def _tolerance_from(spec: dict, where: str) -> MetricTolerance:
    if not isinstance(spec, dict):
        raise CheckConfigError(f"{where}: expected a mapping of settings (got {as_written(spec)})")
    t = MetricTolerance()
    for key, v in spec.items():
        if key in ("absolute_floor", "relative_floor"):
            setattr(t, key, _nonnegative(v, f"{where}.{key}"))
        elif key == "k":
            t.k = _nonnegative(v, f"{where}.k")
        elif key == "greater_is_better":
            if not isinstance(v, bool):
                raise CheckConfigError(f"{where}.greater_is_better: expected true or false (got {as_written(v)})")
            t.greater_is_better = v
        elif key == "fail_on":
            if v not in ("any", "worse"):
                raise CheckConfigError(f"{where}.fail_on: expected any or worse (got {as_written(v)})")
            t.fail_on = v
        else:
            raise CheckConfigError(f"{where}.{key}: unknown key")
    if t.fail_on == "worse" and t.greater_is_better is None:
        raise CheckConfigError(f"{where}.fail_on: 'worse' needs greater_is_better")
    return t


def load_policy(path: str | Path) -> CheckPolicy:
    """A check.yaml, or the default policy when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return CheckPolicy()
    from mlhw.experiments import read_yaml  # as experiments.yaml is read: a key given twice refused, errors one line

    return policy_from_dict(read_yaml(path, CheckConfigError), str(path))


def is_metric_column(c) -> bool:
    return str(c).endswith(("_mean", "_std"))


def key_value(v) -> str:
    """Key values compare as text, numbers by value (1 == 1.0 == '1.0'), booleans as True/False."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        try:
            return f"{float(v):.15g}" if v.strip().lower() not in ("true", "false", "nan", "inf") else v.strip()
        except ValueError:
            return v
    try:
        return f"{float(v):.15g}"
    except (TypeError, ValueError):
        return str(v)
