"""The reproduction gate: tables against a baseline, the tolerance formula, check.yaml."""

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlhw import check as C
from mlhw import check_policy as P
from mlhw import tables as T
from mlhw.config import KINDS

ROOT = Path(__file__).resolve().parents[1]


def sweep_records():
    """Three seeds per rate; lr=1 is the chaotic one (learns in some seeds, collapses in others)."""
    accs = {0.01: (0.90, 0.91, 0.92), 0.1: (0.96, 0.965, 0.962), 1.0: (0.95, 0.10, 0.93), 100.0: (0.1, 0.1, 0.1)}
    return [
        {"lr": lr, "seed": s, "train_loss": 1 - a, "train_acc": a, "test_acc": a - 0.01, "diverged": 0.0}
        for lr, vals in accs.items()
        for s, a in zip((8, 9, 10), vals)
    ]


def tables():
    recs = sweep_records()
    return {
        "mlp_lr_sweep": T.mlp_sweep_table(recs).numeric,
        "mlp_full": T.mlp_full_table([r | {"dataset": "digits"} for r in recs if r["lr"] == 0.1]).numeric,
    }


def edit(tabs, table, where: dict, column, value):
    out = {k: v.copy() for k, v in tabs.items()}
    df = out[table]
    mask = pd.Series(True, index=df.index)
    for c, v in where.items():
        mask &= df[c] == v
    assert mask.sum() == 1
    df.loc[mask, column] = value
    return out


def by(result, table, row, metric):
    [r] = [r for r in result.rows if r.table == table and r.row == row and r.metric == metric]
    return r


def test_identical_tables_pass():
    t = tables()
    res = C.compare(t, t)
    assert res.passed and {r.status for r in res.rows} == {"ok"}
    assert len(res.rows) == 4 * 4 + 3  # 4 rates x 4 metrics + mlp_full's 3 metrics
    assert all(r.delta == 0 for r in res.rows)


def test_committed_digits_check_yaml_gates_tables_that_the_baseline_has():
    """check.yaml and the committed tables agree: every gated table exists and yields compared rows (a table
    renamed or a column dropped would gate nothing, silently)."""
    b = C.load_baseline(ROOT / "results" / "digits")
    res = C.compare(b.tables, b.tables, b.policy)
    assert res.passed and res.counts()["ok"] > 0
    assert set(b.policy.tables) <= set(b.tables)
    assert all(any(r.table == t and r.status == "ok" for r in res.rows) for t in b.policy.tables)
    # check.yaml names the tables it gates; svm (one result per row) through its keys; theory never (its claims
    # fail the reproduction itself)
    assert {r.table for r in res.rows} == set(b.policy.tables) and "svm" in b.policy.tables


def test_a_mean_moved_beyond_tolerance_fails_naming_the_row():
    base = tables()
    b = by(C.compare(base, base), "mlp_full", "dataset=digits", "test_acc")
    cur = edit(base, "mlp_full", {"dataset": "digits"}, "test_acc_mean", b.baseline + b.tolerance * 1.01)
    res = C.compare(base, cur)
    assert not res.passed
    row = by(res, "mlp_full", "dataset=digits", "test_acc")
    assert row.status == "drift" and row.within is False and row.direction == "better"
    assert "mlp_full dataset=digits test_acc: drift" in res.summary()
    assert "dataset=digits" in C.to_text(res) and "drift" in C.to_text(res)
    # just inside the tolerance passes
    ok = edit(base, "mlp_full", {"dataset": "digits"}, "test_acc_mean", b.baseline - b.tolerance * 0.99)
    assert C.compare(base, ok).passed


def test_tolerance_is_the_documented_formula():
    base = tables()
    cur = edit(base, "mlp_lr_sweep", {"lr": 0.01}, "train_loss_std", 0.05)
    cur = edit(cur, "mlp_lr_sweep", {"lr": 0.01}, "n", 5)
    res = C.compare(base, cur)
    row = by(res, "mlp_lr_sweep", "lr=0.01", "train_loss")
    b = base["mlp_lr_sweep"].set_index("lr").loc[0.01]
    se = math.sqrt(b["train_loss_std"] ** 2 / 3 + 0.05**2 / 5)
    floor = max(0.02, 0.10 * abs(b["train_loss_mean"]))  # losses: absolute 0.02, relative 10%
    assert row.tolerance == pytest.approx(3 * se + floor, rel=1e-12)
    acc = by(res, "mlp_lr_sweep", "lr=0.01", "train_acc")
    s = b["train_acc_std"]  # the same std on both sides, n 3 vs 5
    assert acc.tolerance == pytest.approx(3 * math.sqrt(s**2 / 3 + s**2 / 5) + 0.02, rel=1e-12)
    # the function itself, on numbers worked by hand: 2 * sqrt(0.01^2/4 + 0.02^2/1) + max(0.05, 0.2 * 1.5)
    tol = P.MetricTolerance(absolute_floor=0.05, relative_floor=0.2)
    assert C.tolerance(0.01, 4, 0.02, 1, 1.5, tol, 2.0) == pytest.approx(2 * math.sqrt(0.000025 + 0.0004) + 0.3)


def test_n1_rows_fall_back_to_the_floor_and_one_sided_std_is_borrowed():
    tol = P.MetricTolerance(absolute_floor=0.02)
    assert C.tolerance(None, 1, None, 1, 0.9, tol, 3.0) == pytest.approx(0.02)
    # baseline n=3 with std 0.03, current a single run: it is taken to vary like the baseline's runs
    assert C.tolerance(0.03, 3, None, 1, 0.9, tol, 3.0) == pytest.approx(3 * math.sqrt(0.03**2 / 3 + 0.03**2) + 0.02)
    one = {"mlp_full": pd.DataFrame([{"dataset": "digits", "n": 1, "test_acc_mean": 0.90, "test_acc_std": None}])}
    moved = {"mlp_full": one["mlp_full"].assign(test_acc_mean=0.925)}
    res = C.compare(one, moved)
    assert by(res, "mlp_full", "dataset=digits", "test_acc").tolerance == pytest.approx(0.02) and not res.passed


def test_a_single_run_baseline_borrows_the_reproductions_std_and_the_relative_floor_takes_the_size_of_the_mean():
    """The other direction of the borrowing: a baseline of one run (no std) against a reproduction of 4 seeds
    with std 0.05 is taken to vary like the reproduction, 3 sqrt(0.05^2 / 1 + 0.05^2 / 4) + 0.02 (a baseline
    that borrowed nothing, the floor alone, passed every test). The relative floor is a share of |x_b|: a mean of
    -5 (a negative metric) gives a floor of 0.5, not max(0.02, -0.5). By hand."""
    tol = P.MetricTolerance(absolute_floor=0.02)
    assert C.tolerance(None, 1, 0.05, 4, 0.9, tol, 3.0) == pytest.approx(3 * math.sqrt(0.0025 + 0.0025 / 4) + 0.02)
    rel = P.MetricTolerance(absolute_floor=0.02, relative_floor=0.1)
    assert C.tolerance(None, 1, None, 1, -5.0, rel, 3.0) == pytest.approx(0.5)


def test_a_loss_that_went_from_plus_to_minus_infinity_drifted():
    """Non-finite means are equal only as the same inf (or both NaN): +inf against -inf is a drift, not 'the same
    inf' (a comparison of magnitudes passed every test)."""
    tol = P.MetricTolerance()
    assert C.compare_metric(math.inf, math.inf, 0.02, tol)[:3] == ("ok", 0.0, True)
    status, _, within, _ = C.compare_metric(math.inf, -math.inf, 0.02, tol)
    assert (status, within) == ("drift", False)


def test_a_chaotic_row_moved_40_points_is_reported_not_failed():
    # the baseline machine happened to see lr=1 learn in every seed (a small spread); another CPU sees it collapse
    base = edit(tables(), "mlp_lr_sweep", {"lr": 1.0}, "test_acc_std", 0.01)
    base = edit(base, "mlp_lr_sweep", {"lr": 1.0}, "train_acc_std", 0.01)
    row = base["mlp_lr_sweep"].set_index("lr").loc[1.0]
    cur = edit(base, "mlp_lr_sweep", {"lr": 1.0}, "test_acc_mean", row["test_acc_mean"] - 0.40)
    cur = edit(cur, "mlp_lr_sweep", {"lr": 1.0}, "test_acc_std", 0.001)
    cur = edit(cur, "mlp_lr_sweep", {"lr": 1.0}, "train_acc_mean", row["train_acc_mean"] - 0.40)
    assert not C.compare(base, cur).passed  # without the mark it fails
    policy = P.policy_from_dict({"chaotic": [{"table": "mlp_lr_sweep", "row": {"lr": 1}, "reason": "seed-chaotic"}]})
    res = C.compare(base, cur, policy)
    assert res.passed
    r = by(res, "mlp_lr_sweep", "lr=1", "test_acc")
    assert (
        r.status == "chaotic" and r.within is False and r.delta == pytest.approx(-0.40) and r.reason == "seed-chaotic"
    )
    assert "chaotic" in res.summary() and "lr=1" in C.to_text(res)  # shown although it passed
    assert by(res, "mlp_lr_sweep", "lr=0.1", "test_acc").status == "ok"  # only the marked row
    # a mark limited to some metrics leaves the row's other metrics checked
    only_loss = P.policy_from_dict(
        {"chaotic": [{"table": "mlp_lr_sweep", "row": {"lr": 1.0}, "metrics": ["test_acc"]}]}
    )
    res = C.compare(base, cur, only_loss)
    assert by(res, "mlp_lr_sweep", "lr=1", "test_acc").status == "chaotic"
    assert by(res, "mlp_lr_sweep", "lr=1", "train_acc").status == "drift" and not res.passed


def test_a_missing_row_fails_and_a_new_row_is_a_note():
    base = tables()
    fewer = {k: v.copy() for k, v in base.items()}
    fewer["mlp_lr_sweep"] = fewer["mlp_lr_sweep"][fewer["mlp_lr_sweep"]["lr"] != 100.0]
    res = C.compare(base, fewer)
    assert not res.passed
    r = by(res, "mlp_lr_sweep", "lr=100", "*")
    assert r.status == "missing" and "lr=100" in res.summary()
    # the baseline lacks a row the reproduction has: a note, the check passes
    res = C.compare(fewer, base)
    assert res.passed and by(res, "mlp_lr_sweep", "lr=100", "*").status == "new"
    # a missing chaotic row still fails: the run is missing, not its number
    policy = P.policy_from_dict({"chaotic": [{"table": "mlp_lr_sweep", "row": {"lr": 100}}]})
    assert not C.compare(base, fewer, policy).passed


def test_check_help_names_a_missing_row_as_a_failure():
    """`mlhw check --help` said "exit 1 on drift" (or a failed theory claim, or Q3's solvers): a row the baseline
    has and the store's results lack fails too (the test above), and the help says so."""
    from typer.testing import CliRunner

    from mlhw.cli import app

    base = tables()
    fewer = {k: v.copy() for k, v in base.items()}
    fewer["mlp_lr_sweep"] = fewer["mlp_lr_sweep"][fewer["mlp_lr_sweep"]["lr"] != 100.0]
    res = C.compare(base, fewer)
    assert not res.passed and by(res, "mlp_lr_sweep", "lr=100", "*").status == "missing"
    help_ = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "400"})
    assert help_.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", help_.stdout).split())
    assert "exit 1 on drift or a missing row" in text


def test_a_row_of_fewer_runs_than_the_baseline_fails():
    """Two of lr=0.1's three seeds FAILED: its mean of one run sat within tolerance of the baseline's mean of three
    and the check passed. Fewer runs than the baseline is a missing run, chaotic row or not."""
    recs = [r for r in sweep_records() if not (r["lr"] in (0.1, 1.0) and r["seed"] != 8)]
    fewer = {"mlp_lr_sweep": T.mlp_sweep_table(recs).numeric}
    base = {"mlp_lr_sweep": tables()["mlp_lr_sweep"]}
    policy = P.policy_from_dict({"chaotic": [{"table": "mlp_lr_sweep", "row": {"lr": 1}}]})
    res = C.compare(base, fewer, policy)
    assert not res.passed
    for row in ("lr=0.1", "lr=1"):
        r = by(res, "mlp_lr_sweep", row, "n")
        assert (r.status, r.baseline, r.current) == (
            "missing",
            3,
            1,
        ) and "1 of the baseline's 3 runs (runs that did not finish" in r.reason
    assert by(res, "mlp_lr_sweep", "lr=0.1", "test_acc").status == "ok"  # the number alone would have passed
    assert C.compare(fewer, base, policy).passed  # more runs than the baseline: its rows compare as usual


@pytest.mark.parametrize("kept", [1, 2])
def test_a_row_missing_any_of_the_baselines_runs_fails(kept):
    """Every count short of the baseline's 3 runs is a missing run: 2 of 3 as well as 1 of 3 (a test of 1 alone let
    a gate of `n < baseline - 1` through)."""
    seeds = (8, 9, 10)[:kept]
    recs = [r for r in sweep_records() if r["lr"] != 0.1 or r["seed"] in seeds]
    res = C.compare({"mlp_lr_sweep": tables()["mlp_lr_sweep"]}, {"mlp_lr_sweep": T.mlp_sweep_table(recs).numeric})
    r = by(res, "mlp_lr_sweep", "lr=0.1", "n")
    assert not res.passed and (r.status, r.baseline, r.current) == ("missing", 3, kept)


def test_missing_table_and_metric_fail():
    base = tables()
    res = C.compare(base, {"mlp_lr_sweep": base["mlp_lr_sweep"]})
    assert not res.passed and by(res, "mlp_full", "dataset=digits", "*").reason.startswith("table missing")
    cur = {"mlp_lr_sweep": base["mlp_lr_sweep"], "mlp_full": base["mlp_full"].drop(columns=["test_acc_mean"])}
    res = C.compare(base, cur)
    assert by(res, "mlp_full", "dataset=digits", "test_acc").status == "missing" and not res.passed
    # only the tables the policy names are checked
    assert C.compare(base, {"mlp_lr_sweep": base["mlp_lr_sweep"]}, P.CheckPolicy(tables=["mlp_lr_sweep"])).passed


def test_non_finite_means():
    df = pd.DataFrame([{"lr": 100.0, "n": 1, "train_loss_mean": math.inf, "train_loss_std": None}])
    assert C.compare({"mlp_lr_sweep": df}, {"mlp_lr_sweep": df}).passed
    res = C.compare({"mlp_lr_sweep": df}, {"mlp_lr_sweep": df.assign(train_loss_mean=2.3)})
    r = by(res, "mlp_lr_sweep", "lr=100", "train_loss")
    assert r.status == "drift" and not res.passed
    nan = df.assign(train_loss_mean=float("nan"))
    assert C.compare({"mlp_lr_sweep": nan}, {"mlp_lr_sweep": nan}).passed


def test_fail_on_worse_lets_improvements_pass():
    base = tables()
    b = base["mlp_full"]["test_acc_mean"].iloc[0]
    better = edit(base, "mlp_full", {"dataset": "digits"}, "test_acc_mean", b + 0.2)
    worse = edit(base, "mlp_full", {"dataset": "digits"}, "test_acc_mean", b - 0.2)
    policy = P.policy_from_dict({"metrics": {"test_acc": {"greater_is_better": True, "fail_on": "worse"}}})
    assert C.compare(base, better, policy).passed
    assert not C.compare(base, worse, policy).passed
    assert not C.compare(base, better).passed  # default: any drift fails
    r = by(C.compare(base, worse, policy), "mlp_full", "dataset=digits", "test_acc")
    assert r.direction == "worse"


def test_metric_lookup_order():
    p = P.policy_from_dict(
        {"k": 2, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.1}, "*_acc": {"absolute_floor": 0.05}}}
    )
    assert p.k == 2
    assert p.tolerance_for("mlp_full", "test_acc").absolute_floor == 0.1
    assert p.tolerance_for("mlp_lr_sweep", "test_acc").absolute_floor == 0.05
    assert p.tolerance_for("mlp_lr_sweep", "train_loss").relative_floor == 0.10  # default kept
    assert p.tolerance_for("mlp_lr_sweep", "diverged").absolute_floor == 0.02  # default entry


def test_load_baseline_reads_tables_and_check_yaml(tmp_path):
    (tmp_path / "tables").mkdir()
    for name, df in tables().items():
        df.to_csv(tmp_path / "tables" / f"{name}.csv", index=False)
    (tmp_path / "check.yaml").write_text(
        "k: 2.5\n"
        "metrics:\n  '*_acc': {absolute_floor: 0.03, greater_is_better: true}\n"
        "chaotic:\n  - {table: mlp_lr_sweep, row: {lr: 1}, reason: chaotic by nature}\n"
    )
    b = C.load_baseline(tmp_path)
    assert b.policy.k == 2.5 and b.policy_file == tmp_path / "check.yaml"
    assert set(b.tables) == {"mlp_lr_sweep", "mlp_full"}
    res = C.compare(b.tables, tables(), b.policy)  # CSV round trip: the same numbers
    assert res.passed and by(res, "mlp_lr_sweep", "lr=1", "test_acc").status == "chaotic"
    assert by(res, "mlp_full", "dataset=digits", "test_acc").tolerance >= 0.03
    # the policy survives a round trip through YAML
    (tmp_path / "check.yaml").write_text(yaml.safe_dump(b.policy.to_dict(), sort_keys=False))
    assert P.load_policy(tmp_path / "check.yaml") == b.policy


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("kk: 3\n", "kk: unknown key"),
        ("k: -1\n", "k: expected a number >= 0"),
        ("metrics: {test_acc: {floor: 1}}\n", "metrics.test_acc.floor: unknown key"),
        ("metrics: {test_acc: {fail_on: worse}}\n", "needs greater_is_better"),
        ("chaotic: [{table: x}]\n", "chaotic[0]"),
        ("tables: mlp_full\n", "tables: expected a list"),
    ],
)
def test_bad_check_yaml_names_the_key(tmp_path, text, culprit):
    (tmp_path / "check.yaml").write_text(text)
    with pytest.raises(P.CheckConfigError, match="check.yaml") as e:
        P.load_policy(tmp_path / "check.yaml")
    assert culprit in str(e.value)


@pytest.mark.parametrize(
    "data, culprit",
    [
        (b"k: 3\nnote: caf\xe9\n", "not UTF-8 text (byte 14: invalid continuation byte)"),
        (b"k: 3\nx: " + b"[" * 3000 + b"]" * 3000 + b"\n", "not valid YAML for mlhw (nested too deeply"),
        (b"k: 3\nmetrics: {default: {since: 2026-13-01}}\n", "line 2 not valid YAML ('2026-13-01' is no timestamp"),
        (b"k: !!int three\n", "line 1 not valid YAML ('three' is no int"),
        # YAML keeps the last of a key given twice: k: 3 then k: 4 was read as 4, silently
        (b"k: 3\nk: 4\n", "line 2 not valid YAML (duplicate key 'k' (first given on line 1))"),
    ],
    ids=["latin-1", "nested", "month-13", "bad-int", "duplicate-key"],
)
def test_an_unreadable_check_yaml_is_one_line_naming_it(tmp_path, data, culprit):
    """These were tracebacks (UnicodeDecodeError, RecursionError, ValueError), exit 1, from `mlhw check`."""
    (tmp_path / "check.yaml").write_bytes(data)
    with pytest.raises(P.CheckConfigError) as e:
        P.load_policy(tmp_path / "check.yaml")
    said = str(e.value)
    assert said.startswith(f"{tmp_path / 'check.yaml'}: ") and culprit in said and "\n" not in said, said


def test_load_baseline_without_tables_is_an_error(tmp_path):
    with pytest.raises(P.CheckConfigError, match="no baseline"):
        C.load_baseline(tmp_path)
    for name in ("digits", "digits-partial"):  # a -partial folder is one reproduction's output, not a baseline
        (tmp_path / name / "tables").mkdir(parents=True)
    with pytest.raises(P.CheckConfigError, match=r"baselines beside it: digits$"):
        C.load_baseline(tmp_path / "nosuch")


def test_a_damaged_baseline_table_is_refused_naming_the_file_row_and_value(tmp_path):
    """A cell 'abc' in a committed table drifted "finite on one side only", a table replaced by garbage lost its
    metrics from the comparison without a word, and a gated table deleted came back as "new" rows: damaged files
    are bad input (exit 2 before any run), named."""
    import shutil

    def damaged(edit):
        base = tmp_path / "b"
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(ROOT / "results" / "ci", base)
        edit(base / "tables")
        with pytest.raises(P.CheckConfigError) as e:
            C.load_baseline(base)
        return str(e.value)

    def cell(tables):
        df = pd.read_csv(tables / "mlp_full.csv").astype({"test_acc_mean": object})
        df.loc[0, "test_acc_mean"] = "abc"
        df.to_csv(tables / "mlp_full.csv", index=False)

    msg = damaged(cell)
    assert msg.endswith("tables/mlp_full.csv: dataset=digits, test_acc_mean: 'abc' is not a number; restore the file")
    msg = damaged(lambda t: (t / "mlp_lr_sweep.csv").write_text("garbage here\n1\n"))
    assert "tables/mlp_lr_sweep.csv: no column 'lr' (the table's key; columns: garbage here)" in msg
    msg = damaged(lambda t: (t / "svm.csv").unlink())
    assert "check.yaml: tables: 'svm' is no table of the baseline (no " in msg and "its tables: adam_lr," in msg
    for name in ("ci", "digits", "paper"):  # the committed baselines pass it
        assert C.load_baseline(ROOT / "results" / name).tables
    # a chaotic rule for a table the baseline lacks (a typo) marked nothing, without a word
    rule = "chaotic:\n  - {table: mlp_lr_swep, row: {lr: 1}, reason: typo}\n"
    msg = damaged(lambda t: (t.parent / "check.yaml").write_text(rule))
    assert msg.endswith(
        "check.yaml: chaotic[0].table: 'mlp_lr_swep' is no table of the baseline (its tables: "
        "adam_lr, batchnorm_dropout, mlp_full, mlp_lr_sweep, sgd_vs_adam, svm, theory)"
    ), msg
    rule = "chaotic:\n  - {table: mlp_lr_sweep, row: {learning_rate: 1}, reason: typo}\n"
    msg = damaged(lambda t: (t.parent / "check.yaml").write_text(rule))
    assert "check.yaml: chaotic[0].row.learning_rate: no such column in mlp_lr_sweep (its columns: lr, n," in msg, msg
    # a row value with a typo ({lr: 3} for {lr: 1}) matched no row: the row it meant was gated, the rule passed
    rule = "chaotic:\n  - {table: mlp_lr_sweep, row: {lr: 3}, reason: typo}\n"
    msg = damaged(lambda t: (t.parent / "check.yaml").write_text(rule))
    assert msg.endswith(
        "check.yaml: chaotic[0].row: {lr: 3} matches no row of mlp_lr_sweep (its lr values: 0.01, 0.1, 100)"
    ), msg

    def blank_key(tables):  # a row's key left empty: it was listed as a blank item ('its lr values: , 0.1, 100')
        (tables / "mlp_lr_sweep.csv").write_text((tables / "mlp_lr_sweep.csv").read_text().replace("\n0.01,", "\n,", 1))
        (tables.parent / "check.yaml").write_text(rule)

    msg = damaged(blank_key)
    assert msg.endswith("matches no row of mlp_lr_sweep (its lr values: (empty), 0.1, 100)"), msg
    # a metric named with a typo marked nothing too: the row's train_loss was gated as usual, the rule passed
    rule = "chaotic:\n  - {table: mlp_lr_sweep, row: {lr: 100}, metrics: [train_los], reason: typo}\n"
    msg = damaged(lambda t: (t.parent / "check.yaml").write_text(rule))
    assert msg.endswith(
        "check.yaml: chaotic[0].metrics: 'train_los' is no metric of mlp_lr_sweep (its metrics: train_loss, "
        "train_acc, test_acc, diverged)"
    ), msg
    rule = "keys: {svm: [question, setting]}\nchaotic:\n  - {table: svm, row: {}, metrics: [objectiv], reason: typo}\n"
    msg = damaged(lambda t: (t.parent / "check.yaml").write_text(rule))
    assert "check.yaml: chaotic[0].metrics: 'objectiv' is no metric of svm (its metrics: objective, " in msg, msg
    rule = "keys: {svm: [question, setting]}\nchaotic:\n  - {table: svm, row: {}, metrics: [objective], reason: ok}\n"
    (ok := tmp_path / "ok").mkdir()
    shutil.copytree(ROOT / "results" / "ci", ok / "ci")
    (ok / "ci" / "check.yaml").write_text(rule)
    assert C.load_baseline(ok / "ci").policy.chaotic[0].metrics == ["objective"]


def test_json_and_renderers():
    base = tables()
    cur = edit(base, "mlp_full", {"dataset": "digits"}, "train_loss_mean", math.inf)
    res = C.compare(base, cur)
    data = json.loads(res.to_json())  # strict JSON: no NaN / Infinity literals
    assert data["passed"] is False and data["counts"]["drift"] == 1
    [row] = [r for r in data["rows"] if r["status"] == "drift"]
    assert row["table"] == "mlp_full" and row["metric"] == "train_loss" and row["current"] == "inf"
    assert set(row) >= {"baseline", "current", "delta", "tolerance", "status", "row", "ratio"}
    assert len(C.table_rows(res)) == 1 and len(C.table_rows(res, show_all=True)) == len(res.rows)
    assert "| table | row | metric |" in C.to_markdown(res)

    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(C.to_rich(res))
    out = console.export_text()
    assert "train_loss" in out and "drift" in out and "moved, missing or new: 1 of" in out
    assert "check FAILED" not in out  # the verdict is the command's last line (stderr), printed once: not its title
    console.print(C.to_rich(C.compare(base, base)))
    assert "nothing moved beyond tolerance" in console.export_text()


def test_a_piped_check_table_keeps_each_number_on_its_line():
    """`mlhw check --all | cat` (a 160-column console, as in CI) wrapped every delta cell: '+0.0000 (0.0x' on one
    line, 'tol)' on the next, two lines a row, which grep could not match."""
    from rich.console import Console

    b = C.load_baseline(ROOT / "results" / "digits")  # the committed baseline: its notes squeeze the columns
    res = C.compare(b.tables, b.tables, b.policy)
    console = Console(record=True, width=160, color_system=None)
    console.print(C.to_rich(res, show_all=True))
    body = [line for line in console.export_text().splitlines() if line.startswith("│")]
    numbers = [line for line in body if "x tol)" in line]
    assert len(numbers) == len(res.rows)  # each row's numbers on one line (its note may fold)
    assert all(re.search(r"[+-]\d+(\.\d{4})? \(\d+\.\dx tol\)", line) for line in numbers), numbers[:2]


@pytest.mark.parametrize("width", [160, 100])
@pytest.mark.parametrize("profile", ["ci", "digits"])
def test_a_check_table_keeps_each_key_on_one_line_and_counts_whole(profile, width):
    """`mlhw check --all | cat` (160 columns) wrapped each SVM key over four lines (`question=Q3` / `soft SVM,` /
    `setting=digits` / `3vs8, C=1`), each chaotic row's note over five, and printed a count as `29.0000` support
    vectors. At 160 columns (a pipe) and at 100 (a terminal): a key stays on one line, its metric beside it; a
    note is said once, whole, below the table; a count is a whole number."""
    from rich.console import Console

    b = C.load_baseline(ROOT / "results" / profile)
    res = C.compare(b.tables, b.tables, b.policy)
    console = Console(record=True, width=width, color_system=None)
    console.print(C.to_rich(res, show_all=True))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= width
    svm = [r for r in res.rows if r.table == "svm"]
    for r in svm:  # its setting beside the metric, on one line; its question heads its group
        metric = re.escape(r.metric.split()[0])  # (at 100 columns `train` / `error` may wrap)
        assert any(re.search(rf"│ +{re.escape(r.key['setting'])} +│ {metric}\b", x) for x in lines), r.key
        assert any(re.search(rf"│ svm · {re.escape(r.key['question'])} +│", x) for x in lines), r.key
    counts = [r for r in svm if r.metric == "support vectors"]
    assert counts and all(r.baseline == int(r.baseline) for r in counts)
    for r in counts:  # `48`, not `48.0000`; its delta `+0`
        count = rf"│ support( vectors)? +│ +{int(r.baseline)} │ +{int(r.current)} │ +\+0( |$)"
        assert any(re.search(count, x) for x in lines), [x for x in lines if "support" in x]
    for r in res.rows:  # every table's keys so
        *head, label = C.key_parts(r)
        metric = re.escape(r.metric.split()[0])
        assert any(re.search(rf"│ +{re.escape(label)} +│ {metric}\b", x) for x in lines), (label, r.metric)
        assert any(re.search(rf"│ {re.escape(' · '.join([r.table, *head]))}( \(n=\d\))? +│", x) for x in lines), head
    for reason in {c.reason for c in b.policy.chaotic if c.reason}:  # once, whole, under the table
        assert sum(reason in x for x in lines) == 1 and any(x.endswith(f"] {reason}") for x in lines), reason


def test_a_user_grid_table_matches_rows_by_the_field_it_varies():
    """`--set mlp_full.grid.lr=[0.1,0.5]` writes mlp_full with an `lr` column (two rows for one dataset): the
    check matches rows on it too, and names it; a row of the other rate is not compared with this one."""
    recs = [r | {"dataset": "digits", "kind": "mlp"} for r in sweep_records() if r["lr"] in (0.1, 100.0)]
    full = T.mlp_full_table(recs).numeric
    assert list(full["lr"].astype(float)) == [0.1, 100.0]
    res = C.compare({"mlp_full": full}, {"mlp_full": full})
    assert res.passed and {r.row for r in res.rows} == {"dataset=digits, lr=0.1", "dataset=digits, lr=100"}
    # the same numbers under swapped rates: each row is compared with its own rate
    swapped = full.copy()
    swapped["lr"] = list(reversed(list(full["lr"])))
    res = C.compare({"mlp_full": full}, {"mlp_full": swapped})
    assert not res.passed and by(res, "mlp_full", "dataset=digits, lr=100", "train_acc").status == "drift"
    # a CSV read back (numbers as numbers) still matches the one written
    back = pd.read_csv(pd.io.common.StringIO(full.to_csv(index=False)))
    assert C.compare({"mlp_full": full}, {"mlp_full": back}).passed
    # a baseline without the column: the current rows are other experiments (missing + new), not a crash
    one = T.mlp_full_table([r for r in recs if r["lr"] == 0.1]).numeric
    res = C.compare({"mlp_full": one}, {"mlp_full": full})
    assert {r.status for r in res.rows if r.metric == "*"} == {"missing", "new"}


def test_cnn_rows_are_named_by_their_variant_alone():
    row = {"optimizer": "adam", "lr": 1e-4, "batchnorm": False, "n": 2, "test_acc_mean": 0.5, "test_acc_std": 0.01}
    df = pd.DataFrame([{"variant": "adam-0.0001"} | row, {"variant": "sgd"} | row | {"optimizer": "sgd"}])
    res = C.compare({"sgd_vs_adam": df}, {"sgd_vs_adam": df})
    assert res.passed and {r.row for r in res.rows} == {"variant=adam-0.0001", "variant=sgd"}
    # the same variant name with another rate is another experiment, and its label says why
    other = df.copy()
    other.loc[0, "lr"] = 5e-4
    res = C.compare({"sgd_vs_adam": df}, {"sgd_vs_adam": other})
    labels = {(r.row, r.status) for r in res.rows if r.metric == "*"}
    assert labels == {("variant=adam-0.0001, lr=0.0001", "missing"), ("variant=adam-0.0001, lr=0.0005", "new")}


def test_close_key_values_stay_apart():
    """Keys compare numbers by value, at full precision: 1234567 and 1234568 (or 0.1 and 0.1000001) are two rows,
    while 1, 1.0 and '1.0' are one."""
    row = {"n": 1, "test_acc_mean": 0.5, "test_acc_std": None}
    df = pd.DataFrame([{"train_size": 1234567} | row, {"train_size": 1234568} | row | {"test_acc_mean": 0.9}])
    res = C.compare({"t": df}, {"t": df.iloc[::-1].reset_index(drop=True)})
    assert res.passed and {r.row for r in res.rows} == {"train_size=1234567", "train_size=1234568"}
    assert P.key_value(1) == P.key_value(1.0) == P.key_value("1.0") and P.key_value(0.1) != P.key_value(0.1000001)


def svm_tables(scale: float = 1.0, test_error: float = 0.0107):
    """The svm table as the table builder writes it (one result per row, text in 'dual / gap', '-' for Q1's
    support vectors): Q1 on all classes and Q3 at one C."""
    multiclass = [
        {"dataset": "digits", "objective": 0.0, "method": "certificate", "train_error": 0.0, "test_error": 0.034}
    ]
    soft = [
        {
            "dataset": "digits",
            "classes": "3vs8",
            "C": 1.0,
            "primal_objective": 5.185426469879525 * scale,
            "dual_objective": 5.185426469879525,
            "duality_gap": 2e-16,
            "support_vectors": 48,
            "train_error": 0.0,
            "test_error": test_error,
            "liblinear_relative_difference": 3e-16,
        }
    ]
    return {"svm": T.svm_table(multiclass, soft).numeric}


def test_the_committed_profiles_gate_the_svm_objective_to_one_part_in_a_million():
    """A single-result table (no mean/std) is compared through its key columns; each profile's check.yaml
    names them, so an SVM objective that moved by 2e-6 (the data or a solver changed) fails, 1e-9 does not."""
    for profile in ("ci", "digits", "paper"):
        policy = dataclasses.replace(C.load_baseline(ROOT / "results" / profile).policy, tables=["svm"])
        assert "svm" in C.load_baseline(ROOT / "results" / profile).policy.tables
        assert policy.keys["svm"] == ["question", "setting"], profile
        assert C.compare(svm_tables(), svm_tables(1 + 1e-9), policy).passed
        moved = C.compare(svm_tables(), svm_tables(1 + 2e-6), policy)
        assert [(r.row, r.metric, r.status) for r in moved.failures()] == [
            ("question=Q3 soft SVM, setting=digits 3vs8, C=1", "objective", "drift")
        ]
        assert "+1.04e-05 (2.0x tol)" in C.to_text(moved)  # not +0.0000: the drift is shown
        # two of the 93 test points flipping on the margin are within 0.025; three are not
        assert C.compare(svm_tables(), svm_tables(test_error=0.0107 + 2 / 93), policy).passed
        assert not C.compare(svm_tables(), svm_tables(test_error=0.0107 + 3 / 93), policy).passed


def test_a_single_result_table_compares_its_numeric_columns_and_a_lost_row_fails():
    policy = P.policy_from_dict({"tables": ["svm"], "keys": {"svm": ["question", "setting"]}})
    base = svm_tables()
    current = {"svm": base["svm"].iloc[1:]}  # the Q1 row gone
    res = C.compare(base, current, policy)
    assert [(r.row, r.status) for r in res.failures()] == [
        ("question=Q1 multiclass hinge, setting=digits, all classes", "missing")
    ]
    same = C.compare(base, base, policy)
    compared = {r.metric for r in same.rows}
    assert compared == {"objective", "support vectors", "train error", "test error", "liblinear rel. diff"}
    # Q1's '-' cells (no support vectors, no liblinear run) are empty on both sides: not counted as 'ok'
    q1_rows = [r.metric for r in same.rows if r.row.startswith("question=Q1")]
    assert sorted(q1_rows) == ["objective", "test error", "train error"]
    # ... but a number that appears where the baseline had none is still seen
    filled = base["svm"].copy()
    filled.loc[0, "support vectors"] = "7"
    res = C.compare(base, {"svm": filled}, policy)
    assert [(r.row[:12], r.metric) for r in res.failures()] == [("question=Q1 ", "support vectors")]
    # without keys: not compared, and said so
    assert C.compare(base, base, P.policy_from_dict({"tables": ["svm"]})).skipped_tables == [
        "svm (no mean/std columns)"
    ]
    # Q1's rows alone (every soft-SVM run failed): the Q3 rows are missing, Q1's '-' support vectors are not
    q1 = {"svm": base["svm"].iloc[:1]}
    assert [(r.row[:12], r.metric) for r in C.compare(base, q1, policy).failures()] == [("question=Q3 ", "*")]
    # two rows the keys cannot tell apart (a grid over a field the setting does not show): not compared, no crash
    twice = {"svm": pd.concat([base["svm"], base["svm"].iloc[1:]])}
    res = C.compare(twice, twice, policy)
    assert res.passed and res.skipped_tables == [
        "svm (two rows with the key question=Q3 soft SVM, setting=digits 3vs8, C=1)"
    ]
    assert "not compared: svm (two rows with the key" in C.to_text(res)


def test_a_check_where_nothing_moved_still_names_the_tables_it_did_not_compare():
    """`mlhw check` on a baseline without check.yaml (a fresh --results-dir) printed 'nothing moved beyond tolerance
    (33 metrics compared ...)' and 'check passed', and never said that the SVM table, which its --help says is
    compared too, was not: the tables left out were named in the caption of a table of rows, and with nothing
    moved there is no such table (only --all and --json showed them)."""
    from rich.console import Console

    base = svm_tables()
    res = C.compare(base, base, P.policy_from_dict({"tables": ["svm"]}))
    assert res.passed and not res.rows and res.skipped_tables == ["svm (no mean/std columns)"]
    console = Console(record=True, width=200)
    console.print(C.to_rich(res))
    assert (
        "nothing moved beyond tolerance (0 metrics compared; --all lists them); not compared: svm (no mean/std "
        "columns)" in console.export_text()
    )


def test_every_field_that_tells_two_svm_runs_apart_is_in_its_setting():
    """The setting is the svm table's key in `mlhw check`: a grid over bias or a subset size must not give two rows
    one key (the gate then crashed with exit 2 after every run had finished). The profiles' settings are as before."""

    base = {
        "dataset": "digits",
        "classes": "3vs8",
        "C": 1.0,
        "primal_objective": 5.0,
        "train_error": 0.0,
        "test_error": 0.0,
    }
    rows = [base | {"bias": "free"}, base | {"bias": "none"}, base | {"train_size": 500, "bias": "free"}]
    rows += [base | {"train_size": 500, "seed": 1}, base | {"seed": 8}, base | {"seed": 9}]  # a seeds list
    q1 = {"dataset": "digits", "objective": 0.0, "train_error": 0.0, "test_error": 0.03}
    mc = [q1 | {"method": "certificate", "bias": True}, q1 | {"method": "lp", "bias": False}]
    mc += [q1 | {"method": "subgradient", "bias": True, "steps": 200, "lr": 0.5}, q1 | {"method": "lp", "seed": 3}]
    settings = T.svm_table(mc, rows).numeric["setting"].tolist()
    assert settings == [
        "digits, all classes",
        "digits, all classes, no bias",
        "digits, all classes, subgradient 200 steps, lr 0.5",
        "digits, all classes, seed 3",
        "digits 3vs8, C=1",
        "digits 3vs8, C=1, bias none",
        "digits 500/all 3vs8, C=1",
        "digits 500/all 3vs8, C=1, seed 1",
        "digits 3vs8, C=1",
        "digits 3vs8, C=1, seed 9",
    ]
    for kind in ("svm_soft", "svm_multiclass"):  # the default the settings leave out is the configs' own
        assert KINDS[kind].model_fields["seed"].default == T.SVM_DEFAULT_SEED


def test_check_of_a_misspelt_profile_says_the_file_has_no_such_profile(workdir):
    """`mlhw check --profile digts` said only "results/digts: no baseline here"; `tables` named the profiles."""
    from helpers import assert_one_line_error, invoke

    doc = {"version": 1, "suites": {"t": {"kind": "theory", "part": "theory"}}, "profiles": {"p": {}, "q": {}}}
    (workdir / "experiments.yaml").write_text(yaml.safe_dump(doc))
    res = invoke("check", "--profile", "digts", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert_one_line_error(res, "--profile digts: experiments.yaml here has no such profile (its profiles: p, q), and ")
    (workdir / "results" / "digts").mkdir(parents=True)  # a folder of that name: the baseline's own message
    res = invoke("check", "--profile", "digts", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert_one_line_error(res, "no baseline here")
    assert not (workdir / "mlflow.db").exists()


def test_an_emptied_baseline_folder_says_the_way_out(workdir):
    """results/<profile>/tables/ with no CSV in it blocked every reproduce of the profile ('no CSV tables in the
    baseline', exit 2) and said no way out: restore the CSVs, or remove the folder."""
    from helpers import assert_one_line_error, invoke

    doc = {"version": 1, "suites": {"t": {"kind": "theory", "part": "theory"}}, "profiles": {"p": {}}}
    (workdir / "experiments.yaml").write_text(yaml.safe_dump(doc))
    (workdir / "results" / "p" / "tables").mkdir(parents=True)
    res = invoke("reproduce", "--profile", "p", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert_one_line_error(
        res, "tables: no CSV tables in the baseline: restore them (`git checkout -- results/p/tables`)"
    )
    assert "or remove results/p to reproduce without a baseline" in res.stderr
    assert not (workdir / "mlflow.db").exists()


def test_the_way_out_of_an_emptied_baseline_under_a_folder_with_spaces_is_a_command_the_shell_runs(workdir):
    """`git checkout -- my base/tables` (unquoted) restored nothing: git took `my` and `base/tables`."""
    import re
    import shlex

    from helpers import assert_one_line_error, invoke

    (workdir / "my base" / "tables").mkdir(parents=True)
    res = invoke("check", "--profile", "ci", "--baseline", "my base", "--tracking-uri", f"sqlite:///{workdir}/m.db")
    assert_one_line_error(res, "my base/tables: no CSV tables in the baseline")
    command = re.search(r"\(`(git checkout [^`]*)`\)", res.stderr)
    assert command and shlex.split(command[1]) == ["git", "checkout", "--", "my base/tables"], res.stderr
    assert not (workdir / "m.db").exists()


def test_a_baseline_of_another_profile_is_refused_naming_both_before_the_store_is_read(workdir):
    """`mlhw check --profile digits --baseline results/paper` compared digits runs with the MNIST paper baseline and
    said only `check FAILED: 31 ok, 5 drift, ...`: the baseline's REPORT.md names its profile, so the check says
    in one line that they are different reproductions, and compares nothing (exit 2, no store opened)."""
    from helpers import assert_one_line_error, invoke

    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("check", "--profile", "digits", "--baseline", ROOT / "results" / "paper", "--tracking-uri", uri)
    assert_one_line_error(
        res,
        f"the baseline {ROOT / 'results' / 'paper'} is of profile paper (datasets: digits, mnist), the runs checked "
        "are of profile digits: a comparison between different reproductions, not made;",
        "or pass --profile paper",
    )
    res = invoke("check", "--profile", "ci", "--baseline", ROOT / "results" / "digits", "--tracking-uri", uri)
    assert_one_line_error(res, "is of profile digits (datasets: digits), the runs checked are of profile ci:")
    assert not (workdir / "mlflow.db").exists()


def test_a_baseline_records_its_profile_in_its_report_and_one_without_a_report_is_not_refused(tmp_path):
    """The profile comes from REPORT.md's first line (a partial report's too); a folder of tables alone (a baseline
    made by hand) records none, and is compared as before."""
    b = C.load_baseline(ROOT / "results" / "paper")
    assert (b.profile, b.datasets) == ("paper", "digits, mnist") and b.other_reproduction("paper") is None
    shutil.copytree(ROOT / "results" / "paper" / "tables", tmp_path / "p" / "tables")
    assert C.load_baseline(tmp_path / "p").profile is None
    assert C.load_baseline(tmp_path / "p").other_reproduction("digits") is None
    (tmp_path / "p" / "REPORT.md").write_text("# mlhw reproduction: profile `paper` (partial)\n\nDatasets: mnist.\n")
    assert (C.load_baseline(tmp_path / "p").profile, C.load_baseline(tmp_path / "p").datasets) == ("paper", "mnist")


def test_check_yaml_reads_e_notation_as_numbers_as_experiments_yaml_does(tmp_path):
    """`absolute_floor: 1e-9` was the string '1e-9' (YAML 1.1) and refused: 'expected a number >= 0 (got '1e-9')'."""
    (tmp_path / "check.yaml").write_text(
        "k: 3\nmetrics: {svm.objective: {absolute_floor: 1e-9, relative_floor: 1E-6}}\n"
    )
    policy = P.load_policy(tmp_path / "check.yaml")
    assert policy.metrics["svm.objective"].absolute_floor == 1e-9


def test_a_delta_exactly_at_the_tolerance_passes_and_a_zero_tolerance_passes_only_an_unmoved_mean():
    """ok <=> |delta| <= tolerance, the boundary included (numbers exact in binary, so no rounding decides it);
    a tolerance of 0 (floors 0 and no std: a gate asking for the same number) passes equal means only."""
    tol = P.MetricTolerance(absolute_floor=0.0, greater_is_better=True)
    assert C.compare_metric(0.5, 0.75, 0.25, tol) == ("ok", 0.25, True, "better")
    assert C.compare_metric(0.5, 0.25, 0.25, tol) == ("ok", -0.25, True, "worse")
    assert C.compare_metric(0.5, 0.75 + 2**-50, 0.25, tol)[:3] == ("drift", 0.25 + 2**-50, False)
    assert C.compare_metric(0.5, 0.5, 0.0, tol) == ("ok", 0.0, True, None)
    assert C.compare_metric(0.5, 0.5 + 2**-52, 0.0, tol)[:3] == ("drift", 2**-52, False)
    # through compare(): single runs (no std) under zero floors get tolerance 0
    zero = P.CheckPolicy(metrics={"default": P.MetricTolerance(absolute_floor=0.0)})
    one = {"t": pd.DataFrame([{"name": "a", "n": 1, "x_mean": 0.5}])}
    res = C.compare(one, one, zero)
    assert res.passed and by(res, "t", "name=a", "x").tolerance == 0.0
    moved = C.compare(one, {"t": one["t"].assign(x_mean=0.5 + 2**-52)}, zero)
    assert not moved.passed and by(moved, "t", "name=a", "x").status == "drift"


# --- the reproduction gate: check.yaml's per-metric k -------------------------------------------------------------


def test_a_metric_entrys_k_replaces_the_policys_k():
    """check.yaml documents `mlp_lr_sweep.diverged: {absolute_floor: 0.34, k: 0}`: a metric's own k replaces the
    global one in k * se + floor. By hand, with std 0.05 on both sides and n = 3: se = sqrt(2 * 0.05^2 / 3) =
    0.0408; k = 0 gives the floor alone, 0.02, and a move of 0.03 drifts; the global k = 3 would allow
    3 * 0.0408 + 0.02 = 0.142 and pass it. (A gate that ignored the entry's k passed every other test.)"""
    row = {"dataset": "digits", "n": 3, "test_acc_mean": 0.90, "test_acc_std": 0.05}
    base = {"mlp_full": pd.DataFrame([row])}
    moved = {"mlp_full": pd.DataFrame([row | {"test_acc_mean": 0.93}])}
    se = math.sqrt(0.05**2 / 3 + 0.05**2 / 3)

    strict = P.policy_from_dict({"k": 3, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02, "k": 0}}})
    [r] = C.compare(base, moved, strict).rows
    assert r.tolerance == pytest.approx(0.02, abs=1e-15) and r.status == "drift"

    loose = P.policy_from_dict({"k": 3, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02}}})
    [r] = C.compare(base, moved, loose).rows
    assert r.tolerance == pytest.approx(3 * se + 0.02, rel=1e-12) and r.status == "ok"

    wider = P.policy_from_dict({"k": 0, "metrics": {"mlp_full.test_acc": {"absolute_floor": 0.02, "k": 5}}})
    [r] = C.compare(base, moved, wider).rows
    assert r.tolerance == pytest.approx(5 * se + 0.02, rel=1e-12) and r.status == "ok"


def test_key_values_written_as_text_compare_at_full_precision():
    """A grid column that `tables.summarise` adds to a key holds text ('0.1', '0.1000001': the config's repr), and a
    chaotic row's value in check.yaml may be quoted: text that is a number compares by value at full precision, as
    numbers do (test_check.test_close_key_values_stay_apart covers the numbers). At 6 digits the two rates below
    were one key: the table was skipped as having two rows with one key."""
    assert P.key_value("0.1") == P.key_value(0.1) == P.key_value("0.10") == P.key_value("1e-1")
    assert P.key_value("0.1000001") != P.key_value("0.1")
    assert P.key_value("1234567") != P.key_value("1234568")
    rows = [
        {"dataset": "digits", "lr": lr, "n": 1, "test_acc_mean": acc, "test_acc_std": float("nan")}
        for lr, acc in (("0.1", 0.9), ("0.1000001", 0.5))
    ]
    table = {"mlp_full": pd.DataFrame(rows)}
    res = C.compare(table, table)
    assert not res.skipped_tables and res.passed
    assert {r.row for r in res.rows} == {"dataset=digits, lr=0.1", "dataset=digits, lr=0.1000001"}


@pytest.mark.parametrize("profile", ["ci", "digits"])
def test_a_check_on_a_narrow_page_never_cuts_a_number(profile):
    """`COLUMNS=60 mlhw check --all`: the seven columns did not fit, and rich folded the numbers themselves, `0.32`
    on one line and `33` on the next (0.3233), a baseline a log reader misread. On a page too narrow for the table
    each row is one line of words, wrapped at its spaces: every number whole, its row's status beside its key."""
    from rich.console import Console

    b = C.load_baseline(ROOT / "results" / profile)
    res = C.compare(b.tables, b.tables, b.policy)
    console = Console(record=True, width=60, color_system=None)
    console.print(C.to_rich(res, show_all=True))
    text = console.export_text()
    assert max(map(len, text.splitlines())) <= 60
    words = set(text.split())
    for cells in C.table_rows(res, show_all=True):
        for cell in cells[3:7]:  # baseline, current, delta, tolerance
            numbers = [w for w in cell.split() if re.fullmatch(r"[-+±]?\d+\.\d+", w)]
            assert all(w in words or f"{w}," in words for w in numbers), (cell, text[:600])


def test_check_from_another_folder_says_to_run_from_the_project_folder(workdir):
    """`cd /tmp && uv run --project DIR mlhw check` (a CI step in another working folder) said only "results/digits:
    no baseline here (expected results/digits/tables/*.csv)": where it looked, and what to do, are said."""
    from helpers import assert_one_line_error, invoke

    res = invoke("check", "--profile", "digits", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    line = assert_one_line_error(res, f"--profile digits: no baseline here ({workdir}/results/digits does not exist)")
    assert line.endswith("run from the project folder, or pass --baseline DIR"), line
    assert not (workdir / "mlflow.db").exists()


def test_a_failed_claim_or_solver_fails_in_a_suite_added_to_experiments_yaml_too():
    """A suite added to experiments.yaml of kind theory or svm_soft gets its kind's table, but the rule that fails
    reproduce and `mlhw check` whatever the baseline (a claim that does not hold, Q3 solvers that disagree) read the
    built-in suites' names alone: its failures passed. The records are as report.record builds them: the run's
    config dump (with its kind) and its metrics."""
    from mlhw.config import SoftSVMConfig, TheoryConfig

    theory = TheoryConfig().model_dump() | {"checks_failed": 2, "label": "t", "run_id": "r1"}
    solvers = {"converged": 1.0, "primal_converged": 1.0, "duality_gap": 1e-3, "primal_certificate_gap": 1e-3}
    soft = SoftSVMConfig(C=10.0).model_dump() | solvers | {"label": "C=10", "run_id": "r2"}
    fine = SoftSVMConfig().model_dump() | solvers | {"duality_gap": 1e-12, "label": "C=1", "run_id": "r3"}
    other = soft | {"run_id": "r4"}  # a run of the same config in another suite (C=10 there too): its own failure
    failures = C.self_check_failures({"my_theory": [theory], "my_svm": [fine, soft], "svm_soft": [other]})
    assert failures[0] == "my_theory: 2 check(s) fail"
    assert failures[1].startswith("my_svm C=10: the primal and the dual differ by 1.0e-03") and len(failures) == 3
    assert failures[2].startswith("svm_soft C=10: ")  # the built-in suite's, as before


def test_a_failing_run_two_suites_share_is_one_failure_naming_both():
    """A run shared between suites (an added svm_soft suite's C=1 is svm_soft's C=1 run; an added theory suite of the
    built-in's config is its run) was a failure per suite: one unsound run read as two in reproduce's and `mlhw
    check`'s verdict. It is one, naming every suite that holds it. (report.collect gives each suite its own copy of a
    shared run's record, with the one run id.)"""
    from mlhw.config import SoftSVMConfig, TheoryConfig

    theory = TheoryConfig().model_dump() | {"checks_failed": 1, "label": "", "run_id": "t1"}
    solvers = {"converged": 1.0, "primal_converged": 1.0, "duality_gap": 1e-3, "primal_certificate_gap": 1e-3}
    soft = SoftSVMConfig().model_dump() | solvers | {"label": "C=1", "run_id": "s1"}
    done = {"svm_soft": [dict(soft)], "theory": [dict(theory)], "my_theory": [dict(theory)], "my_svm": [dict(soft)]}
    failures = C.self_check_failures(done)
    assert len(failures) == 2, failures
    assert failures[0].startswith("svm_soft, my_svm C=1: the primal and the dual differ by 1.0e-03"), failures
    assert failures[1] == "theory, my_theory: 1 check(s) fail", failures


def test_the_way_out_of_an_unreadable_baseline_table_under_a_folder_with_spaces_is_a_command_the_shell_runs(workdir):
    """`git checkout -- my base/tables/mlp_full.csv` (unquoted) restored nothing, as the emptied folder's did."""
    import re
    import shlex

    from helpers import assert_one_line_error, invoke

    (workdir / "my base" / "tables").mkdir(parents=True)
    (workdir / "my base" / "tables" / "mlp_full.csv").write_text("")  # pandas: no columns to parse
    res = invoke("check", "--profile", "ci", "--baseline", "my base", "--tracking-uri", f"sqlite:///{workdir}/m.db")
    assert_one_line_error(res, "my base/tables/mlp_full.csv: not a readable CSV table")
    command = re.search(r"\(`(git checkout [^`]*)`\)", res.stderr)
    assert command and shlex.split(command[1]) == ["git", "checkout", "--", "my base/tables/mlp_full.csv"], res.stderr
