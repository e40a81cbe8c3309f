"""The reproduction gate end to end: the `ci` profile reproduced here passes `mlhw check` against the committed
baseline (results/ci), and a baseline number moved beyond its tolerance fails, naming the row."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import invoke

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ci_store(ci_reproduction):
    """The session's one reproduction of the ci profile (conftest), in a folder of its own."""
    return ci_reproduction[0]


def _check(root: Path, baseline: Path, *extra):
    import os

    old = os.getcwd()
    os.chdir(root)
    try:
        return invoke("check", "--profile", "ci", "--baseline", baseline, *extra)
    finally:
        os.chdir(old)


def test_a_fresh_ci_reproduction_passes_the_committed_baseline(ci_store):
    r = _check(ci_store, REPO / "results" / "ci")
    assert r.exit_code == 0, r.output
    assert "check passed" in r.output


def test_every_run_of_the_report_has_a_name(ci_store):
    """The Runs table of REPORT.md left the run column empty for the suites of one run (svm_multiclass, theory)."""
    runs = (ci_store / "results" / "ci" / "REPORT.md").read_text().split("## Runs")[1]
    rows = [line.split("|")[1:3] for line in runs.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows and all(name.strip() for _, name in rows), rows
    assert [" svm_multiclass ", " exact: a W with f = 0 "] in rows and [" theory ", " its one run "] in rows


def test_a_baseline_number_moved_beyond_tolerance_fails_naming_the_row(ci_store, tmp_path):
    baseline = tmp_path / "baseline"
    shutil.copytree(REPO / "results" / "ci", baseline)
    csv = baseline / "tables" / "mlp_full.csv"
    df = pd.read_csv(csv)
    df.loc[0, "test_acc_mean"] = df.loc[0, "test_acc_mean"] - 0.2  # 20 points: far beyond k * se + 0.03
    df.to_csv(csv, index=False)
    r = _check(ci_store, baseline, "--json")
    assert r.exit_code == 1, r.output
    assert "check FAILED" in r.output and "mlp_full" in r.output and "test_acc" in r.output
    import json

    rows = json.loads(r.stdout)["rows"]
    drift = [x for x in rows if x["status"] == "drift"]
    assert [(x["table"], x["metric"]) for x in drift] == [("mlp_full", "test_acc")]


def test_a_chaotic_row_that_moves_is_reported_not_failed(ci_store, tmp_path):
    baseline = tmp_path / "baseline"
    shutil.copytree(REPO / "results" / "ci", baseline)
    csv = baseline / "tables" / "adam_lr.csv"
    df = pd.read_csv(csv)
    df["val_acc_mean"] = df["val_acc_mean"] + 0.4
    df.to_csv(csv, index=False)
    r = _check(ci_store, baseline)
    assert r.exit_code == 0, r.output
    assert "chaotic" in r.output


def test_a_baseline_without_check_yaml_says_its_verdict_used_the_default_policy(ci_store, tmp_path):
    """A fresh --results-dir has no check.yaml: its verdict marked no row chaotic without a word (`check passed: 33
    ok` where the committed baseline said `20 ok, 21 chaotic`), so a reproduction on another processor would fail
    rows that are chaotic by nature. The same moved row: chaotic with the profile's check.yaml, drift without."""
    baseline = tmp_path / "baseline"
    shutil.copytree(REPO / "results" / "ci", baseline)
    r = _check(ci_store, baseline)
    assert r.exit_code == 0 and "check.yaml" not in r.output, r.output
    (baseline / "check.yaml").unlink()
    r = _check(ci_store, baseline)
    assert f"(no check.yaml in {baseline}: default tolerances, no row marked chaotic)" in r.output.replace("\n", "")
    assert "chaotic (reported" not in r.output


def test_a_piped_check_logs_its_verdict_once_on_one_line(ci_store, tmp_path):
    """`mlhw check > log 2>&1`: the verdict (`check FAILED: ... — mlp_lr_sweep lr=0.01 test_acc: drift; ...`) was
    the table's title on stdout and the last line on stderr, both wrapped at the pipe's 160 columns: twice in the
    log, and a grep of either line got half of it. Real pipes here: a subprocess, its stdout and stderr one file."""
    import json
    import os
    import subprocess
    import sys

    baseline = tmp_path / "baseline"
    shutil.copytree(REPO / "results" / "ci", baseline)
    for table in ("mlp_lr_sweep", "mlp_full"):  # every gated row's accuracies drift: a verdict over 160 columns
        csv = baseline / "tables" / f"{table}.csv"
        df = pd.read_csv(csv)
        df[["train_acc_mean", "test_acc_mean"]] -= 0.5
        df.to_csv(csv, index=False)
    expected = json.loads(_check(ci_store, baseline, "--json").stdout)["summary"]
    assert len(expected) > 160 and "; and " in expected, expected
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "MLFLOW_TRACKING_URI")}
    log = subprocess.run(
        [sys.executable, "-m", "mlhw", "check", "--profile", "ci", "--baseline", str(baseline)],
        cwd=ci_store,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert log.returncode == 1, log.stdout
    lines = log.stdout.splitlines()
    assert [line for line in lines if "check FAILED" in line] == [expected], log.stdout
    assert sum("mlp_lr_sweep lr=0.01 test_acc: drift" in line for line in lines) == 1, log.stdout
    assert lines[-1] == expected  # the command's last line, as the table lists the rows above it


def test_reproduce_exits_1_when_its_results_drift_from_the_baseline_it_replaces(ci_copy, workdir):
    """The verdict at the end of `reproduce` is a gate too: a baseline number 20 points off makes it exit 1, say
    that results/ci now holds the new numbers, and leave them there (git keeps the old baseline)."""
    csv = workdir / "results" / "ci" / "tables" / "mlp_full.csv"
    df = pd.read_csv(csv)
    moved = df.loc[0, "test_acc_mean"] - 0.2
    df.loc[0, "test_acc_mean"] = moved
    df.to_csv(csv, index=False)
    (workdir / "results" / "ci" / "REPORT.md").unlink()  # not up to date: the report is compiled again, no run
    r = invoke("reproduce", "--profile", "ci", "--tracking-uri", ci_copy)
    assert r.exit_code == 1, r.output
    assert "check FAILED" in r.output and "not reproduced" in r.output and "git diff results/ci/tables" in r.output
    assert pd.read_csv(csv).loc[0, "test_acc_mean"] == pytest.approx(moved + 0.2, abs=1e-9)  # the new results
    # the log says by how much: baseline, current and tolerance (a second `mlhw check` compares with the new results
    # and passes, so the failed job's log is where a reader finds them)
    row = [x for x in r.stderr.splitlines() if "test_acc" in x and "drift" in x and "check FAILED" not in x]
    assert len(row) == 1 and f"{moved:.4f}" in row[0] and f"{moved + 0.2:.4f}" in row[0], r.stderr
    # reproduce has no --all, and `mlhw check --all` now compares with the new results: the title named check's
    assert "moved, missing or new: " in r.stderr and "--all" not in r.stderr, r.stderr


def test_reproduce_only_that_writes_the_whole_report_gates_every_table_it_replaces(ci_copy, workdir):
    """--only writes the whole report when the other suites' runs are all done: every table in results/ci/ is
    replaced, so every one is checked against the one it replaces. (Only the chosen suites' were: a table of
    another suite could change under an exit 0.)"""
    tables = workdir / "results" / "ci" / "tables"
    df = pd.read_csv(tables / "mlp_lr_sweep.csv")
    df["test_acc_mean"] = df["test_acc_mean"] - 0.2
    df.to_csv(tables / "mlp_lr_sweep.csv", index=False)
    report = workdir / "results" / "ci" / "REPORT.md"
    report.unlink()  # not up to date: compiled again, nothing run
    r = invoke("reproduce", "--profile", "ci", "--only", "mlp_full", "--tracking-uri", ci_copy)
    assert r.exit_code == 1, r.output
    verdict = r.output.split("check FAILED")[1]
    assert "mlp_lr_sweep lr=0.1 test_acc: drift" in verdict and "mlp_full" not in verdict.split("not reproduced")[0]
    r = invoke("reproduce", "--profile", "ci", "--only", "mlp_full", "--tracking-uri", ci_copy)  # the store's, now
    assert r.exit_code == 0 and r.stderr.startswith("up to date"), r.output
    report.unlink()
    r = invoke("reproduce", "--profile", "ci", "--only", "mlp_full", "--tracking-uri", ci_copy)
    assert r.exit_code == 0 and "check passed" in r.output, r.output


def test_only_reports_another_suites_changed_plan_as_tables_will_and_checks_it(ci_copy, workdir):
    """experiments.yaml's svm_soft changed (C=2) and its run is done (a single command made it); then --only
    mlp_full: the whole report shows svm_soft as the file says now, gives the suite a parent run with that plan
    (so `mlhw tables` rebuilds the same table: it went back to C=1 from the older parent) and checks its table
    against the committed one (the change drifts: exit 1, named)."""
    shutil.copy(REPO / "results" / "ci" / "check.yaml", workdir / "results" / "ci")  # the svm table's key columns
    yml = workdir / "experiments.yaml"
    yml.write_text(yml.read_text().replace("svm_soft: {grid: {C: [1]}}", "svm_soft: {grid: {C: [2]}}"))
    single = invoke("svm", "soft", "--C", "2", "--classes", "3,8", "--tracking-uri", ci_copy)
    assert single.exit_code == 0, single.output
    (workdir / "results" / "ci" / "REPORT.md").unlink()
    r = invoke("reproduce", "--profile", "ci", "--only", "mlp_full", "--tracking-uri", ci_copy)
    assert r.exit_code == 1 and "svm question=Q3 soft SVM, setting=digits 3vs8, C=1 *: missing" in r.output, r.output
    svm = (workdir / "results" / "ci" / "tables" / "svm.md").read_text()
    assert "C=2" in svm and "C=1 " not in svm
    rebuilt = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (workdir / "results" / "ci" / "tables" / "svm.md").read_text() == svm
    again = invoke("reproduce", "--profile", "ci", "--only", "mlp_full", "--tracking-uri", ci_copy)
    assert again.exit_code == 0 and again.stderr.startswith("up to date"), again.output


def test_only_one_of_the_two_svm_suites_does_not_call_the_others_rows_missing(workdir):
    """The svm table holds Q1 (svm_multiclass) and Q3 (svm_soft). --only svm_soft on a store without Q1's run
    writes a report of Q3 alone (ci-partial): its verdict leaves the svm table out, where it would call Q1
    missing. With both suites chosen the table is gated: an objective that moved fails, naming the row."""
    shutil.copy(REPO / "experiments.yaml", workdir / "experiments.yaml")
    shutil.copytree(REPO / "results" / "ci", workdir / "results" / "ci")
    uri = f"sqlite:///{workdir}/mlflow.db"
    r = invoke("reproduce", "--profile", "ci", "--only", "svm_soft", "--tracking-uri", uri)
    assert r.exit_code == 0 and "check passed: nothing compared" in r.output, r.output
    assert (workdir / "results" / "ci-partial" / "tables" / "svm.csv").is_file()
    baseline = workdir / "results" / "ci" / "tables" / "svm.csv"
    df = pd.read_csv(baseline)
    df.loc[df["question"] == "Q3 soft SVM", "objective"] *= 1 + 1e-4
    df.to_csv(baseline, index=False)
    r = invoke("reproduce", "--profile", "ci", "--only", "svm_soft", "--only", "svm_multiclass", "--tracking-uri", uri)
    assert r.exit_code == 1, r.output
    # 7 ok: Q1's objective and errors, Q3's errors, support vectors, liblinear (Q1's blank cells: not compared)
    assert "check FAILED: 7 ok, 1 drift — svm question=Q3 soft SVM, setting=digits 3vs8, C=1 objective" in r.output


def test_the_svm_table_says_what_its_liblinear_column_compares(ci_store):
    """For a free-bias row the liblinear column checks the bias-penalised variant, not the objective beside it:
    the report said nothing of it."""
    report = (ci_store / "results" / "ci" / "REPORT.md").read_text()
    svm = report.split("## SVM: Q1 and Q3")[1].split("## ")[0]
    assert "*liblinear rel. diff*:" in svm and "not the objective shown" in svm


def test_the_settings_say_why_alexnet_trains_on_its_whole_pool(ci_store):
    """digits' AlexNet trains on its whole pool (train_fraction 1) where the assignment takes 10%: the Settings
    showed 'train_fraction 1' without why, nor how coarse 130 validation images are."""
    report = " ".join((ci_store / "results" / "ci" / "REPORT.md").read_text().split())
    assert (
        "AlexNet trains on its whole training pool here, 1,167 images, where the assignment's CIFAR-10 runs take 10% "
        "of 45,000 (4,500 images); with 130 validation images, one image is 0.77 points." in report
    )


@pytest.fixture
def read_only_store(ci_reproduction, tmp_path):
    """The ci reproduction's store in a folder nothing can write to: a read-only bind mount as root (who ignores
    file modes), the modes otherwise. Returns its folder."""
    import os
    import subprocess

    root, _ = ci_reproduction
    src, mnt = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    mnt.mkdir()
    shutil.copy2(root / "mlflow.db", src / "mlflow.db")
    if os.geteuid() != 0:
        (src / "mlflow.db").chmod(0o444)
        src.chmod(0o555)
        yield src
        src.chmod(0o755)
        return
    for cmd in (["mount", "--bind", src, mnt], ["mount", "-o", "remount,ro,bind", mnt]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            subprocess.run(["umount", mnt], capture_output=True)
            pytest.skip("no read-only folder can be made here (root, and no bind mount)")
    yield mnt
    subprocess.run(["umount", "-l", mnt], check=True)  # lazily: MLflow keeps its connection open in this process


def test_check_and_tables_read_a_store_they_cannot_write(read_only_store, tmp_path):
    """`check` and `tables` only read the store: an archived one, a CI artifact, a read-only mount. They refused it
    ('is not a writable file'); `reproduce`, which writes, still does, before anything runs."""
    import hashlib

    db = read_only_store / "mlflow.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    uri = f"sqlite:///{db}"
    r = _check(tmp_path, REPO / "results" / "ci", "--tracking-uri", uri)
    assert r.exit_code == 0 and "check passed" in r.output, r.output
    r = invoke("tables", "--profile", "ci", "--tracking-uri", uri, "--results-dir", tmp_path / "results")
    assert r.exit_code == 0 and (tmp_path / "results" / "ci" / "REPORT.md").is_file(), r.output
    shutil.copy(REPO / "experiments.yaml", tmp_path / "experiments.yaml")
    r = _check_like_reproduce(tmp_path, uri)
    assert r.exit_code == 2 and f"{db} is not a writable file" in r.output, r.output
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def _check_like_reproduce(root: Path, uri: str):
    import os

    old = os.getcwd()
    os.chdir(root)
    try:
        return invoke("reproduce", "--profile", "ci", "--tracking-uri", uri, "--results-dir", root / "results2")
    finally:
        os.chdir(old)


def test_a_read_only_command_leaves_a_database_without_mlflows_tables_alone(tmp_path):
    """`check` on an empty SQLite file (or another program's database): MLflow made its tables there, a write from
    a command that only reads."""
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("create table notes (x)")
    before = db.read_bytes()
    r = _check(tmp_path, REPO / "results" / "ci", "--tracking-uri", f"sqlite:///{db}")
    assert r.exit_code == 2 and f"{db} holds no MLflow store (no experiments table)" in r.output, r.output
    assert db.read_bytes() == before
