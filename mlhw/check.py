"""The reproduction gate: compare a reproduction's result tables with a committed baseline.

Plain data in, plain data out: no MLflow, no Typer. Both sides are dicts table name -> DataFrame in the CSV
format of `results/<profile>/tables/*.csv` (group keys, `n`, `<metric>_mean`, `<metric>_std`).

Tolerance rule
--------------
Rows are matched by their key: every column that is not `n`, `<metric>_mean/_std` or `reference_*` (a user grid's
table has a column for the field it varies), and named by `KEY_COLUMNS` (`lr` for `mlp_lr_sweep`, `dataset` for
`mlp_full`, `variant` for the CNN tables) plus any column that tells apart two rows with those. A key column that
only one side has (a grid added or dropped) makes every row of that table `missing` on one side and `new` on the
other: they are other experiments.
For every metric m of a matched row, with means x_b, x_c, sample stds s_b, s_c and seed counts n_b, n_c of
the baseline (b) and the current reproduction (c):

    delta     = x_c - x_b
    se        = sqrt(s_b^2 / n_b + s_c^2 / n_c)
    floor     = max(absolute_floor[m], relative_floor[m] * |x_b|)
    tolerance = k * se + floor                       (k = 3 by default)
    ok        <=>  |delta| <= tolerance

se is the standard error of the difference of the two means (Welch's), so k * se scales with the seed
spread measured on both sides, and the floor keeps the rule meaningful where the spread is tiny or unknown
(numbers also move across processor models by a fraction of a point). A side with n = 1 (no std) borrows
the other side's std; when neither side has a std (n = 1 rows) the tolerance is the floor alone.
Non-finite means (a diverged loss) are equal only when both are the same inf, or both NaN.

Defaults (`check_policy.DEFAULT_METRICS`, patterns matched with fnmatch, the first match wins, in this order:
`table.metric`, `metric`, then the patterns in file order, then `default`): accuracies `*_acc` absolute floor 0.02
(2 points); losses `*_loss` absolute floor 0.02 and relative floor 0.10 (10% of the baseline); anything else (e.g.
the fraction of diverged runs) absolute floor 0.02. `fail_on: worse` (with `greater_is_better`) fails only
regressions, like MLflow's `MetricThreshold`; the default `any` fails any drift, because a reproduction that moved
is not reproduced, in whichever direction.

Statuses: `ok`, `drift` (fails), `chaotic` (a row the baseline marks as chaotic by nature: compared and
reported, never fails), `missing` (a baseline row or metric absent from the current tables: fails), `new`
(a current row or metric absent from the baseline: a note).

check.yaml (its format and validation): mlhw.check_policy.

Conventions borrowed: like `dvc metrics diff`, each row has the baseline (old), the current (new) value and
the change (`delta`), the renderers show only what did not pass unless asked for everything (`show_all`, like
dvc's `--all`), and `to_json()` is for machines; like MLflow's `MetricThreshold`, a metric has
`greater_is_better`, and absolute and relative amounts (here floors of the tolerance, not required improvements).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlhw.check_policy import (
    KEY_COLUMNS,
    POLICY_FILE,
    CheckConfigError,
    CheckPolicy,
    DuplicateKey,
    MetricTolerance,
    is_metric_column,
    key_value,
    load_policy,
)
from mlhw.layout import REPORT, REPORT_HEADING, TABLES, is_partial

STATUSES = ("ok", "drift", "chaotic", "missing", "new")
FAILING = ("drift", "missing")


@dataclass
class CheckRow:
    table: str
    row: str  # the key as text: "lr=1", "variant=adam-0.005"
    key: dict[str, Any]
    metric: str  # "*" for a whole missing / new row
    status: str  # ok | drift | chaotic | missing | new
    baseline: float | None = None
    current: float | None = None
    delta: float | None = None
    tolerance: float | None = None
    n_baseline: int | None = None
    n_current: int | None = None
    std_baseline: float | None = None
    std_current: float | None = None
    within: bool | None = None  # |delta| <= tolerance (also for chaotic rows)
    direction: str | None = None  # "better" | "worse" | None (no greater_is_better, or no change)
    reason: str = ""

    @property
    def ratio(self) -> float | None:
        """|delta| / tolerance: above 1 means beyond tolerance."""
        if self.delta is None or self.tolerance is None or not math.isfinite(self.delta):
            return None
        if self.tolerance == 0:
            return 0.0 if self.delta == 0 else math.inf
        return abs(self.delta) / self.tolerance


@dataclass
class CheckResult:
    rows: list[CheckRow]
    policy: CheckPolicy
    skipped_tables: list[str] = field(default_factory=list)
    unsound: list[str] = field(default_factory=list)  # self_check_failures: fail whatever the baseline holds
    no_policy_in: Path | None = None  # a baseline folder without check.yaml: the default policy was used

    @property
    def passed(self) -> bool:
        return not self.unsound and not any(r.status in FAILING for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for r in self.rows if r.status == s) for s in STATUSES}

    def failures(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status in FAILING]

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c[s]} {s}" + (" (reported, never fail)" if s == "chaotic" else "") for s in STATUSES if c[s]]
        head = "check passed" if self.passed else "check FAILED"
        out = f"{head}: " + (", ".join(parts) or "nothing compared")
        if self.failures():
            out += " — " + "; ".join(f"{r.table} {r.row} {r.metric}: {r.status}" for r in self.failures()[:5])
            if len(self.failures()) > 5:
                out += f"; and {len(self.failures()) - 5} more"
        if self.unsound:
            out += " — failed its own check: " + "; ".join(self.unsound)
        if self.no_policy_in is not None:  # a fresh --results-dir: rows chaotic by nature would fail on another CPU
            out += f" (no {POLICY_FILE} in {self.no_policy_in}: default tolerances, no row marked chaotic)"
        return out

    def to_dict(self) -> dict:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["ratio"] = r.ratio
            rows.append({k: _json_number(v) for k, v in d.items()})
        return {
            "passed": self.passed,
            "summary": self.summary(),
            "counts": self.counts(),
            "skipped_tables": self.skipped_tables,
            "unsound": self.unsound,
            "policy": self.policy.to_dict(),
            "rows": rows,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)


def _json_number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _json_number(x) for k, x in v.items()}
    return v


# --- tables ---------------------------------------------------------------------------------------------


def self_check_failures(done: dict[str, list[dict]]) -> list[str]:
    """What fails its own check, whatever a baseline says: a theory claim that does not hold (a broken solver or
    check) and a Q3 run whose solvers did not converge or disagree (mlhw.svm.soft_failure). `reproduce` and
    `mlhw check` exit 1 on them; `done` is suite -> run records (report.collect's)."""
    from mlhw.svm import soft_failure

    # run -> (the suites that hold it, its first record): a run two suites share is one failure, naming both
    runs: dict[object, tuple[list[str], dict]] = {}
    for suite, records in done.items():  # by the runs' kind: a suite added to experiments.yaml is judged alike
        for r in records:
            runs.setdefault(r.get("run_id") or id(r), ([], r))[0].append(suite)
    out = []
    for suites, r in runs.values():
        who = ", ".join(dict.fromkeys(suites))
        if r.get("kind") == "theory" and r.get("checks_failed"):
            out.append(f"{who}: {r['checks_failed']} check(s) fail")
        elif r.get("kind") == "svm_soft" and (why := soft_failure(r)):
            out.append(f"{who} {r.get('label') or r.get('run_id')}: {why}")
    return out


def metrics_of(df: pd.DataFrame) -> list[str]:
    """The summarised metrics of a table: every m with an `m_mean` column, in column order."""
    return [str(c)[: -len("_mean")] for c in df.columns if str(c).endswith("_mean")]


def numeric_columns(df: pd.DataFrame | None, keys: list[str]) -> set[str]:
    """The columns of a single-result table that hold numbers ('-', Q1's support vectors, reads as none)."""
    if df is None:
        return set()
    return {
        c
        for c in df.columns
        if c not in keys
        and c != "n"
        and (pd.api.types.is_numeric_dtype(df[c]) or pd.to_numeric(df[c], errors="coerce").notna().any())
    }


def single_values(df: pd.DataFrame | None, keys: list[str], numeric: set[str] | None = None) -> pd.DataFrame | None:
    """A table of one result per row (the `svm` table: no mean/std columns) in the summary format: each column
    beside `keys` that holds numbers (on either side: `numeric`, else this table's own) becomes `<column>_mean`,
    with n = 1 (the tolerance is then the floor alone); a column of text (the svm table's 'dual / gap') is not
    compared. A summary table is returned as it is."""
    if df is None or metrics_of(df):
        return df
    numeric = numeric_columns(df, keys) if numeric is None else numeric
    out = df[[c for c in keys if c in df.columns]].copy()
    for c in df.columns:
        if c in numeric:  # a table of Q1 rows alone has only '-' for support vectors: NaN, not a lost metric
            out[f"{c}_mean"] = pd.to_numeric(df[c], errors="coerce")
    out["n"] = 1
    return out


def load_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Every `<folder>/*.csv` as name -> DataFrame (the folder itself, e.g. results/digits/tables)."""
    out = {}
    for p in sorted(Path(folder).glob("*.csv")):
        try:
            out[p.stem] = pd.read_csv(p)
        except (ValueError, OSError) as e:  # pandas' parser and empty-data errors are ValueErrors
            why = (str(e).splitlines() or [type(e).__name__])[0]
            raise CheckConfigError(
                f"{p}: not a readable CSV table ({why}); restore it (`git checkout -- {shlex.quote(str(p))}`) or "
                "delete it, and the reproduction compares the other tables"
            ) from None
    return out


@dataclass
class Baseline:
    folder: Path
    tables: dict[str, pd.DataFrame]
    policy: CheckPolicy
    policy_file: Path | None  # None: no check.yaml, the default policy
    profile: str | None = None  # the profile its REPORT.md names (None: no REPORT.md, or one mlhw did not write)
    datasets: str | None = None  # the datasets its REPORT.md names ('digits, mnist')

    def other_reproduction(self, profile: str) -> str | None:
        """What to say where the baseline is a reproduction of another profile than the runs checked (digits runs
        against results/paper, MNIST's: every row 'drift' or 'missing', and nothing said why); None where it is the
        same profile, or the baseline records none."""
        if self.profile is None or self.profile == profile:
            return None
        on = f" (datasets: {self.datasets})" if self.datasets else ""
        return (
            f"the baseline {self.folder} is of profile {self.profile}{on}, the runs checked are of profile {profile}: "
            f"a comparison between different reproductions, not made; check them against their own profile's "
            f"baseline (results/{profile}, the default without --baseline), or pass --profile {self.profile}"
        )


_REPORT_PROFILE = re.compile("^" + re.escape(REPORT_HEADING).replace(re.escape("{profile}"), "([^`]+)"))
_REPORT_DATASETS = re.compile(r"^Datasets: (.+?)\.(?:\s|$)")


def recorded_profile(folder: Path) -> tuple[str | None, str | None]:
    """The profile and the datasets a baseline's REPORT.md names (`report.report_text` writes both, its first line
    `# mlhw reproduction: profile `NAME``); (None, None) without one."""
    try:
        lines = (folder / REPORT).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, None
    found = _REPORT_PROFILE.match(lines[0]) if lines else None
    if found is None:
        return None, None
    datasets = next((m.group(1) for line in lines[:20] if (m := _REPORT_DATASETS.match(line))), None)
    return found.group(1), (None if datasets == "-" else datasets)


def load_baseline(folder: str | Path) -> Baseline:
    """A committed baseline: `<folder>/tables/*.csv` and `<folder>/check.yaml` (optional)."""
    folder = Path(folder)
    tables_dir = folder / TABLES
    if not tables_dir.is_dir():
        near = sorted(  # a -partial folder is one reproduction's output, never a baseline
            p.parent.name for p in folder.parent.glob(f"*/{TABLES}") if p.is_dir() and not is_partial(p.parent)
        )
        beside = f"; baselines beside it: {', '.join(near)}" if near else ""
        raise CheckConfigError(f"{folder}: no baseline here (expected {tables_dir}/*.csv){beside}")
    tables = load_tables(tables_dir)
    if not tables:
        raise CheckConfigError(  # (an emptied folder blocked every reproduce of the profile, with no way out said)
            f"{tables_dir}: no CSV tables in the baseline: restore them "
            f"(`git checkout -- {shlex.quote(str(tables_dir))}`), or remove {folder} to reproduce without a baseline"
        )
    policy_path = folder / POLICY_FILE
    policy = load_policy(policy_path)
    for name in policy.tables or []:  # a gated table that is gone would only show up as "new" rows
        if name not in tables:
            raise CheckConfigError(
                f"{policy_path}: tables: {name!r} is no table of the baseline (no {tables_dir / name}.csv; its tables: "
                f"{', '.join(sorted(tables))}); a new suite's table joins the list after its first reproduction"
            )
    for name, df in tables.items():
        _check_baseline_table(tables_dir / f"{name}.csv", name, df, policy)
    # (the tables are sound now) a chaotic rule for a table or a column that is not there marked nothing, silently
    for i, rule in enumerate(policy.chaotic):
        if rule.table not in tables:
            raise CheckConfigError(
                f"{policy_path}: chaotic[{i}].table: {rule.table!r} is no table of the baseline (its tables: "
                f"{', '.join(sorted(tables))})"
            )
        if absent := [c for c in rule.row if c not in tables[rule.table].columns]:  # (a row key with a typo)
            raise CheckConfigError(
                f"{policy_path}: chaotic[{i}].row.{absent[0]}: no such column in {rule.table} (its columns: "
                f"{', '.join(map(str, tables[rule.table].columns))})"
            )
        # a row value with a typo ({lr: 3} for {lr: 1}) marked nothing either: the chaotic row it meant was gated
        df = tables[rule.table]
        if len(df) and not any(rule.matches(rule.table, r) for r in df.to_dict("records")):
            shown = ", ".join(f"{c}: {v}" for c, v in rule.row.items())
            values = "; ".join(
                f"its {c} values: " + ", ".join(dict.fromkeys(key_value(v) or "(empty)" for v in df[c].tolist()))
                for c in rule.row
            )
            raise CheckConfigError(
                f"{policy_path}: chaotic[{i}].row: {{{shown}}} matches no row of {rule.table} ({values})"
            )
        # a metric name with a typo (train_los) marked nothing either: the metric it meant then gated as usual
        known = metrics_of(df) or [str(c) for c in df.columns if c not in policy.required_keys(rule.table)]
        if unknown := [m for m in rule.metrics or [] if m not in known]:
            raise CheckConfigError(
                f"{policy_path}: chaotic[{i}].metrics: {unknown[0]!r} is no metric of {rule.table} (its metrics: "
                f"{', '.join(known)})"
            )
    return Baseline(folder, tables, policy, policy_path if policy_path.exists() else None, *recorded_profile(folder))


def _check_baseline_table(path: Path, name: str, df: pd.DataFrame, policy: CheckPolicy) -> None:
    """A table of the baseline is one mlhw wrote: its key columns there, and its n, means and stds numbers (an empty
    cell, inf or nan included). A damaged file compared as data: a cell 'abc' drifted 'finite on one side only', a
    table of garbage lost its metrics from the comparison without a word."""
    gated = policy.tables is None or name in policy.tables
    keys = policy.required_keys(name)
    if gated and keys and (absent := [c for c in keys if c not in df.columns]):
        raise CheckConfigError(
            f"{path}: no column {absent[0]!r} (the table's key; columns: {', '.join(map(str, df.columns))}): not a "
            f"table mlhw wrote; restore it (`git checkout -- {shlex.quote(str(path))}`)"
        )
    if gated and name in KEY_COLUMNS and not metrics_of(df):
        raise CheckConfigError(f"{path}: no <metric>_mean columns: not a table mlhw wrote; restore it")
    for c in [c for c in df.columns if c == "n" or is_metric_column(c)]:
        cells = df[c]
        bad = cells.notna() & pd.to_numeric(cells, errors="coerce").isna()
        if bad.any():
            i = int(bad.idxmax())
            row = ", ".join(f"{k}={df.at[i, k]}" for k in keys if k in df.columns) or f"row {i + 2}"
            raise CheckConfigError(f"{path}: {row}, {c}: {cells[i]!r} is not a number; restore the file")


def _rows_by_key(table: str, df: pd.DataFrame, cols: list[str], required: list[str]) -> dict[tuple, dict]:
    """Rows by key; a key column the table lacks (a grid column only the other side has) reads as empty."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CheckConfigError(f"table {table}: key column {missing[0]!r} not in its columns {list(df.columns)}")
    out: dict[tuple, dict] = {}
    for rec in df.to_dict("records"):
        key = tuple(key_value(rec.get(c)) for c in cols)
        if key in out:
            raise DuplicateKey(f"two rows with the key {_label(cols, key, cols)}")
        out[key] = rec
    return out


def _label(cols: list[str], key: tuple, named: list[str]) -> str:
    return ", ".join(f"{c}={v}" for c, v in zip(cols, key) if c in named)


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _empty(v) -> bool:
    """A cell of a single-result table that holds no number ('-' or blank: read as NaN)."""
    f = _float(v)
    return f is None or math.isnan(f)


def _std_of(rec: dict, metric: str) -> float | None:
    s = _float(rec.get(f"{metric}_std"))
    return None if s is None or not math.isfinite(s) else s


def _n_of(rec: dict) -> int:
    n = _float(rec.get("n"))
    return int(n) if n is not None and math.isfinite(n) and n >= 1 else 1


def tolerance(
    std_baseline: float | None,
    n_baseline: int,
    std_current: float | None,
    n_current: int,
    baseline_mean: float,
    tol: MetricTolerance,
    k: float,
) -> float:
    """k * sqrt(s_b^2/n_b + s_c^2/n_c) + max(absolute_floor, relative_floor * |x_b|); a side without a std
    borrows the other's; neither: the floor alone."""
    sb, sc = std_baseline, std_current
    if sb is None:
        sb = sc
    if sc is None:
        sc = sb
    se = math.sqrt(sb**2 / max(n_baseline, 1) + sc**2 / max(n_current, 1)) if sb is not None else 0.0
    rel = tol.relative_floor * abs(baseline_mean) if math.isfinite(baseline_mean) else 0.0
    return k * se + max(tol.absolute_floor, rel)


def compare_metric(
    b: float | None,
    c: float | None,
    tol_value: float,
    tol: MetricTolerance,
) -> tuple[str, float | None, bool, str | None]:
    """(status, delta, within, direction) of one metric: ok or drift (chaotic is decided by the caller)."""
    b = float("nan") if b is None else b
    c = float("nan") if c is None else c
    if math.isnan(b) and math.isnan(c):
        return "ok", None, True, None
    if not (math.isfinite(b) and math.isfinite(c)):
        same = b == c  # the same inf on both sides
        delta = 0.0 if same else (c - b if not (math.isnan(b) or math.isnan(c)) else float("nan"))
        return ("ok" if same else "drift"), delta, same, None
    delta = c - b
    within = abs(delta) <= tol_value
    direction = None
    if tol.greater_is_better is not None and delta != 0:
        direction = "better" if (delta > 0) == tol.greater_is_better else "worse"
    failing = not within and (tol.fail_on == "any" or direction == "worse")
    return ("drift" if failing else "ok"), delta, within, direction


def compare(
    baseline: dict[str, pd.DataFrame],
    current: dict[str, pd.DataFrame],
    policy: CheckPolicy | None = None,
) -> CheckResult:
    """Compare every checked table of the baseline with the current one, row by row, metric by metric."""
    policy = policy or CheckPolicy()
    rows: list[CheckRow] = []
    skipped: list[str] = []
    names = list(policy.tables) if policy.tables is not None else list(baseline)
    for name in list(current):
        if name not in names and name not in baseline and policy.tables is None:
            names.append(name)  # a table only the reproduction has: its rows are new
    for name in names:
        bdf, cdf = baseline.get(name), current.get(name)
        single = bool(policy.keys.get(name))
        if single:
            keys = policy.keys[name]
            numeric = numeric_columns(bdf, keys) | numeric_columns(cdf, keys)
            bdf, cdf = (single_values(df, keys, numeric) for df in (bdf, cdf))
        ref = bdf if bdf is not None else cdf
        if ref is None:
            raise CheckConfigError(f"check.yaml: tables: {name!r} is in neither the baseline nor the current tables")
        if not metrics_of(ref):
            skipped.append(f"{name} (no mean/std columns)")
            continue
        cols, named = policy.key_columns(name, bdf, cdf)
        required = policy.required_keys(name)
        try:
            brows = _rows_by_key(name, bdf, cols, required) if bdf is not None else {}
            crows = _rows_by_key(name, cdf, cols, required) if cdf is not None else {}
        except DuplicateKey as e:  # rows its key cannot tell apart: not compared, and said why (never a crash)
            skipped.append(f"{name} ({e})")
            continue
        for key, brec in brows.items():
            label = _label(cols, key, named)
            keyd = {c: brec.get(c) for c in named}
            crec = crows.get(key)
            if crec is None:
                why = "table missing in the current results" if cdf is None else "row missing in the current table"
                rows.append(CheckRow(name, label, keyd, "*", "missing", n_baseline=_n_of(brec), reason=why))
                continue
            nb, nc = _n_of(brec), _n_of(crec)
            if nc < nb:  # seeds that did not finish: a mean of fewer runs is not the baseline's experiment
                why = f"{nc} of the baseline's {nb} runs (runs that did not finish, or fewer seeds than it had)"
                rows.append(
                    CheckRow(name, label, keyd, "n", "missing", nb, nc, n_baseline=nb, n_current=nc, reason=why)
                )
            cmetrics = metrics_of(cdf)
            for m in metrics_of(bdf):
                if m not in cmetrics:
                    rows.append(
                        CheckRow(
                            name,
                            label,
                            keyd,
                            m,
                            "missing",
                            baseline=_float(brec[f"{m}_mean"]),
                            n_baseline=_n_of(brec),
                            reason="metric missing in the current table",
                        )
                    )
                    continue
                if single and _empty(brec[f"{m}_mean"]) and _empty(crec[f"{m}_mean"]):
                    continue  # a cell empty on both sides ('-': Q1 has no support vectors) has nothing to compare
                rows.append(
                    _compare_row(name, label, keyd, m, brec, crec, policy, policy.chaotic_reason(name, brec, m))
                )
            for m in cmetrics:
                if m not in metrics_of(bdf):
                    rows.append(
                        CheckRow(
                            name,
                            label,
                            keyd,
                            m,
                            "new",
                            current=_float(crec[f"{m}_mean"]),
                            n_current=_n_of(crec),
                            reason="metric not in the baseline",
                        )
                    )
        for key, crec in crows.items():
            if key not in brows:
                why = "table not in the baseline" if bdf is None else "row not in the baseline"
                keyd = {c: crec.get(c) for c in named}
                rows.append(
                    CheckRow(name, _label(cols, key, named), keyd, "*", "new", n_current=_n_of(crec), reason=why)
                )
    return CheckResult(rows, policy, skipped)


def verdict(baseline: Baseline, current: dict, unsound: list[str] | None = None) -> CheckResult:
    """The gate's answer, as `mlhw check` and `mlhw reproduce` give it: the current tables against the baseline's
    under its policy, with what fails its own check (`unsound`: a theory claim, an SVM's solvers) and a baseline
    without check.yaml (`no_policy_in`) said beside."""
    result = compare(baseline.tables, current, baseline.policy)
    result.unsound = list(unsound or [])
    result.no_policy_in = baseline.folder if baseline.policy_file is None else None
    return result


def _compare_row(table, label, keyd, m, brec, crec, policy: CheckPolicy, chaotic: str | None) -> CheckRow:
    tol = policy.tolerance_for(table, m)
    k = policy.k if tol.k is None else tol.k
    b, c = _float(brec.get(f"{m}_mean")), _float(crec.get(f"{m}_mean"))
    nb, nc = _n_of(brec), _n_of(crec)
    sb, sc = _std_of(brec, m), _std_of(crec, m)
    tv = tolerance(sb, nb, sc, nc, b if b is not None else float("nan"), tol, k)
    status, delta, within, direction = compare_metric(b, c, tv, tol)
    reason = ""
    if chaotic is not None:
        status, reason = "chaotic", chaotic
    elif status == "drift":
        reason = "beyond tolerance" if delta is not None and math.isfinite(delta) else "finite on one side only"
    return CheckRow(table, label, keyd, m, status, b, c, delta, tv, nb, nc, sb, sc, within, direction, reason)


# --- renderers ------------------------------------------------------------------------------------------


def _shown(result: CheckResult, show_all: bool) -> list[CheckRow]:
    """Everything with show_all; otherwise what did not pass plainly: drift, missing, new, and chaotic rows
    that moved beyond tolerance."""
    if show_all:
        return list(result.rows)
    return [
        r for r in result.rows if r.status in ("drift", "missing", "new") or (r.status == "chaotic" and not r.within)
    ]


def _fmt(v, digits: int = 4, whole: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if whole and math.isfinite(v) and v.is_integer():  # a count: 48 support vectors, not 48.0000
            return str(int(v))
        if v != 0 and abs(v) < 5e-5:  # an SVM objective's drift or tolerance, which .4f would show as 0.0000
            return f"{v:.2e}"
        from mlhw.tables import num_or_inf

        return num_or_inf(v, digits)  # as the tables print it: nan, +-inf, 3.84e+29 from 1e6 on
    return str(v)


def counts(rows: list[CheckRow]) -> set[tuple[str, str]]:
    """The (table, metric) pairs that count something: every value of the metric on both sides (and its std) a
    whole number, one of them at least 2 (the SVM's support vectors). A 0/1 flag or a rate that happens to be whole
    (`diverged`, a training error of 0) keeps its decimals, as its table's other rows show them."""
    values: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        got = (r.baseline, r.current, r.std_baseline, r.std_current)
        values.setdefault((r.table, r.metric), []).extend(float(v) for v in got if v is not None)
    return {
        k
        for k, vs in values.items()
        if vs and all(math.isfinite(v) and v.is_integer() for v in vs) and any(abs(v) >= 2 for v in vs)
    }


def _moved(r: CheckRow, whole: bool = False) -> str:
    if r.delta is None:
        return "-"
    ratio = r.ratio
    d = _fmt(r.delta, whole=whole)
    s = (f"+{d}" if r.delta >= 0 else d) if math.isfinite(r.delta) else d
    if ratio is not None:
        s += f" ({ratio:.1f}x tol)" if math.isfinite(ratio) else " (tol 0)"
    return s


def _value(v, std, n, whole: bool, with_n: bool = True) -> str:
    """A mean as the check shows it: '0.9120 ±0.0170 (n=2)' (n where the rows around it do not say it)."""
    text = _fmt(v, whole=whole)
    if std is not None:
        text += f" ±{_fmt(std, whole=whole)}" + (f" (n={n})" if with_n else "")
    return text


def _note(r: CheckRow) -> str:
    if r.direction and r.within is False:
        return f"{r.direction}; {r.reason}" if r.reason else r.direction
    return r.reason


COLUMNS = ["table", "row", "metric", "baseline", "current", "delta", "tolerance", "status", "note"]


def table_rows(result: CheckResult, show_all: bool = False) -> list[list[str]]:
    """The rendered cells (COLUMNS) of the rows to show."""
    whole = counts(result.rows)
    out = []
    for r in _shown(result, show_all):
        w = (r.table, r.metric) in whole
        base = _value(r.baseline, r.std_baseline, r.n_baseline, w)
        cur = _value(r.current, r.std_current, r.n_current, w)
        out.append([r.table, r.row, r.metric, base, cur, _moved(r, w), _fmt(r.tolerance), r.status, _note(r)])
    return out


def to_text(result: CheckResult, show_all: bool = False) -> str:
    rows = table_rows(result, show_all)
    lines = [result.summary()]
    if rows:
        widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(COLUMNS)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(x, widths)).rstrip() for x in rows]
    if result.skipped_tables:
        lines.append(f"not compared: {', '.join(result.skipped_tables)}")
    return "\n".join(lines) + "\n"


def to_markdown(result: CheckResult, show_all: bool = False) -> str:
    rows = table_rows(result, show_all)
    lines = [f"**{result.summary()}**", ""]
    if rows:
        cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(cell(c) for c in x) + " |" for x in rows]
    return "\n".join(lines) + "\n"


def key_parts(r: CheckRow) -> list[str]:
    """A row's key as the terminal table shows it: a number or a yes/no with its column's name (`lr=0.01`), a name
    alone (`adam-5e-05-plain`, `Q3 soft SVM`): `question=Q3 soft SVM, setting=digits 3vs8, C=1` took 46 columns,
    and a 160-column pipe wrapped it over four lines."""
    parts = []
    for c, v in r.key.items():
        text = key_value(v)
        named = text == "" or text in ("True", "False") or _float(text) is not None
        parts.append(f"{c}={text}" if named else text)
    return parts


def _groups(rows: list[CheckRow]) -> list[tuple[str, list[tuple[str, CheckRow]]]]:
    """The rows under headings, in the order they come: a table's name and its key's leading columns head a group
    (`svm · Q3 soft SVM`); its last column names the row (`digits 3vs8, C=1`)."""
    groups: dict[str, list[tuple[str, CheckRow]]] = {}
    for r in rows:
        parts = key_parts(r)
        head = " · ".join([r.table, *parts[:-1]])
        groups.setdefault(head, []).append((parts[-1] if parts else r.row, r))
    return list(groups.items())


def _least(cell: str, column: str, whole_keys: bool = True) -> int:
    """How narrow a cell may wrap: a key never (one line; at its spaces on a page too narrow for that); a mean at
    its spaces (`0.9120` / `±0.0170`), a delta before its ratio (`+0.0012` / `(0.1x tol)`), a metric's name or a
    status at its spaces. In terminal cells."""
    from rich.cells import cell_len

    if column == "tolerance" or (column == "row" and whole_keys):
        return cell_len(cell)
    if column == "row":  # (a row's key is indented under its heading)
        return len(cell) - len(cell.lstrip()) + max(map(cell_len, cell.split()), default=0)
    if column == "delta":
        number, _, ratio = cell.partition(" ")
        return max(cell_len(number), cell_len(ratio))
    return max(map(cell_len, cell.split()), default=0)


CHECK_HEADS = ["row", "metric", "baseline", "current", "delta", "tolerance", "status"]
_STYLE = {"ok": "green", "drift": "bold red", "missing": "bold red", "chaotic": "yellow", "new": "cyan"}


class _CheckTable:
    """The check's rows under their headings, at widths that fit the page: natural where they fit (a 160-column
    pipe: every row on one line), else narrowed column by column, a cell wrapping only at its spaces and a key not
    at all (on a page too narrow for that, at its spaces). Notes (why a row is chaotic, why it drifted) are
    numbered below the table: in a column of their own a pipe's 160 columns wrapped each over five lines. A group's
    seed count, the same for all its rows, is said once in its heading (`mlp_full (n=2)`), not in each cell."""

    def __init__(self, title: str, result: CheckResult, rows: list[CheckRow]):
        whole = counts(result.rows)
        self.title, self.notes, self.lines = title, {}, []
        for head, members in _groups(rows):
            with_std = [r for _, r in members if r.std_baseline is not None or r.std_current is not None]
            ns = {r.n_baseline for r in with_std} | {r.n_current for r in with_std}
            n = ns.pop() if len(ns) == 1 else None
            self.lines.append((head + (f" (n={n})" if n is not None else ""), None))
            for label, r in members:
                w = (r.table, r.metric) in whole
                status = r.status
                if note := _note(r):
                    status += f" [{self.notes.setdefault(note, len(self.notes) + 1)}]"
                cells = [
                    f"  {label}",
                    r.metric,
                    _value(r.baseline, r.std_baseline, r.n_baseline, w, n is None),
                    _value(r.current, r.std_current, r.n_current, w, n is None),
                    _moved(r, w),
                    _fmt(r.tolerance),
                    status,
                ]
                self.lines.append((cells, r.status))
        self.below = [f"[{i}] {note}" for note, i in self.notes.items()]
        if result.skipped_tables:
            self.below.append(f"not compared: {', '.join(result.skipped_tables)}")

    def widths(self, page: int, edge: bool, whole_keys: bool = True) -> list[int] | None:
        """Each column's width, None where even the narrowest do not fit `page`. The column narrowed next is the
        one that wraps the fewest cells (a metric's long name, a note's number) then the widest: at 100 columns
        every row's delta wrapped while the metric column kept room for one name."""
        from rich.cells import cell_len

        lengths = [[cell_len(h)] for h in CHECK_HEADS]
        least = [cell_len(h) for h in CHECK_HEADS]
        for cells, _ in self.lines:
            for j, (cell, column) in enumerate(zip([cells] if isinstance(cells, str) else cells, CHECK_HEADS)):
                lengths[j].append(cell_len(cell))  # (a heading: in the first column)
                least[j] = max(least[j], _least(cell, column, whole_keys))
        widths = [max(x) for x in lengths]
        while sum(widths) + 3 * len(widths) + (1 if edge else -3) > page:  # padding and borders; the edges
            narrower = [j for j in range(len(widths)) if widths[j] > least[j]]
            if not narrower:
                return None
            j = min(narrower, key=lambda j: (sum(n >= widths[j] for n in lengths[j]), -widths[j]))
            widths[j] -= 1
        return widths

    def __rich_console__(self, console, options):
        from rich.cells import cell_len
        from rich.table import Table
        from rich.text import Text

        from mlhw.tables import page_titled

        page = options.max_width
        # with the outer border, else without it and its padding (4 columns), else with keys wrapped at their
        # spaces; on a page narrower still, a line of words per row (`_as_lines`)
        tries = [(True, True), (False, True), (False, False)]
        edge, widths = next(((e, w) for e, k in tries if (w := self.widths(page, e, k))), (False, None))
        if widths is None:  # (COLUMNS=60) rich folded the numbers themselves: `0.32` over `33` read as two numbers
            yield from self._as_lines()
            return
        table = Table(title=self.title, title_justify="left", show_edge=edge, pad_edge=edge)
        for head, width in zip(CHECK_HEADS, widths):
            number = head in ("baseline", "current", "delta", "tolerance")
            table.add_column(head, justify="right" if number else "left", width=width, overflow="fold")
        for i, (cells, status) in enumerate(self.lines):
            if isinstance(cells, str):
                if i:
                    table.add_section()
                table.add_row(Text(cells, style="bold"), *[""] * (len(CHECK_HEADS) - 1))
                continue
            delta = CHECK_HEADS.index("delta")
            if cell_len(cells[delta]) > widths[delta]:  # its ratio on a line of its own: `(0.1x` / `tol)` read badly
                cells = [*cells[:delta], cells[delta].replace(" ", "\n", 1), *cells[delta + 1 :]]
            texts = [Text(c) for c in cells]
            texts[-1].stylize(_STYLE.get(status, ""))
            table.add_row(*texts)
        yield page_titled(table)
        for line in self.below:
            yield Text(line)

    def _as_lines(self):
        """On a page too narrow for the columns: each row one line of words (`lr=0.01 train_loss: ok; baseline
        5.2662, current ..., delta +0.0000 (0.0x tol), tolerance 0.5266`), wrapped at its spaces, so a number stays
        whole."""
        from rich.text import Text

        yield Text(self.title)
        for cells, status in self.lines:
            if isinstance(cells, str):
                yield Text(cells, style="bold")
                continue
            key, metric, base, cur, delta, tol, shown = cells
            line = Text(f"{key} {metric}: ")
            line.append(shown, style=_STYLE.get(status, ""))
            yield line.append(f"; baseline {base}, current {cur}, delta {delta}, tolerance {tol}")
        for line in self.below:
            yield Text(line)


def to_rich(result: CheckResult, show_all: bool = False, all_option: bool = True):
    """The rows that moved (every row with show_all) under their tables' headings, titled with what it lists. The
    verdict is not in it: `mlhw check` prints that once, its last line, on stderr (as the title too it was in a
    `2>&1` log twice, the title's copy wrapped at the pipe's 160 columns). `all_option`: the command has --all, and
    the title names it (reproduce has none, and `mlhw check --all` after it compares with the new results)."""
    from rich.text import Text

    rows = _shown(result, show_all)
    if not rows:
        # the verdict itself is the command's last line (stderr): say here only what there is to see
        own = "; but results fail their own checks (below)" if result.unsound else ""
        # the tables left out are said here too: without a table of rows, the caption that names them had no place
        skipped = f"; not compared: {', '.join(result.skipped_tables)}" if result.skipped_tables else ""
        return Text(
            f"nothing moved beyond tolerance ({len(result.rows)} metrics compared{'; --all lists them' * all_option})"
            f"{skipped}{own}"
        )
    listed = (
        f"every metric compared: {len(rows)} rows"
        if show_all
        else f"moved, missing or new: {len(rows)} of {len(result.rows)} rows"
        + (" (--all lists every one)" * all_option)
    )
    return _CheckTable(listed, result, rows)
