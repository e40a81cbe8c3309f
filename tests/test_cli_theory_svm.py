"""`mlhw theory` and `mlhw svm` through the CLI, with their MLflow runs read back."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import assert_nothing_created, assert_one_line_error, invoke, runs_of

from mlhw import svm, theory


def test_theory_all_pass_and_logged(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("theory", "--tracking-uri", uri, "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 41 and all(r["passed"] for r in rows)
    # a log (not a terminal) says what runs as it starts, and when it ended: it was silent for the checks' 10-15 s
    said = res.stderr.splitlines()
    assert said[0] == "theory: checking Q1-Q4 numerically (Q1 and Q3 on digits too)...", said
    assert re.fullmatch(r"theory Q1-Q4: \(\d+ s\) 41 checks", said[1]), said
    assert {r["question"][:2] for r in rows} == {"Q1", "Q2", "Q3", "Q4"}
    questions = [r["question"][:2] for r in rows]  # in the questions' order, not the order they ran in (Q2 first)
    assert questions == sorted(questions)
    client, (run,) = runs_of(uri)
    csv = client.download_artifacts(run.info.run_id, "theory.csv", str(workdir / "dl"))
    assert pd.read_csv(csv)["question"].str[:2].tolist() == questions
    assert {r["run_id"] for r in rows} == {run.info.run_id}
    assert run.data.tags["mlhw.part"] == "theory" and run.data.tags["mlhw.checks_failed"] == "0"
    assert run.data.tags["mlhw.checks_passed"] == "41" and run.data.tags["mlhw.kind"] == "theory"
    assert run.info.run_name == "theory · Q1-Q4"  # "part · what", as every single command's run
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["theory.csv"]
    assert not (workdir / "results").exists()
    # per question, its worst check's error over tolerance (a metric per check, 41 bars of 0.00, flooded the UI);
    # every check is in theory.csv
    metrics = run.data.metrics
    assert (metrics["checks/passed"], metrics["checks/failed"]) == (41, 0)  # charted in the UI, as tags are not
    margins = {k.split("/")[1]: v for k, v in metrics.items() if k.startswith("error_over_tolerance/")}
    assert set(margins) == {"Q1", "Q2", "Q3", "Q4"} and set(metrics) == {
        f"error_over_tolerance/{q}" for q in margins
    } | {
        "checks/passed",
        "checks/failed",
    }
    for q, value in margins.items():  # by hand from the printed rows; an exact claim (tolerance 0) held exactly
        ratios = [r["max_error"] / r["tolerance"] if r["tolerance"] else 0.0 for r in rows if r["question"][:2] == q]
        assert value == pytest.approx(max(ratios)) and value <= 1
    assert 0 < margins["Q3"] < 1  # a number of the check, not a constant


def test_a_failing_claim_fails_the_command(workdir, monkeypatch):
    """The checks can fail: a wrong network for max(x1, x2) is caught and the exit code says so."""
    monkeypatch.setattr(theory, "MAX_NET_OUTPUT", np.array([1.0, 1.0, 1.0, 1.0]))  # z4 added, not subtracted
    res = invoke("theory", "--no-digits", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 1 and "FAIL" in res.stdout and "1 failed" in res.stdout


def test_multiclass_on_digits(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "multiclass", "--check", "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert rep["objective"] == 0.0 and rep["train_error"] == 0.0 and rep["bound_violations"] == 0
    assert rep["method"] == "certificate" and 0 < rep["test_error"] < 0.1
    client, (run,) = runs_of(uri)
    assert run.data.tags["mlhw.part"] == "svm.q1" and run.data.metrics["solution/objective"] == 0.0
    assert run.data.metrics["train/error"] == 0.0 and run.data.metrics["test/error"] == pytest.approx(rep["test_error"])
    assert "report.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_multiclass_subgradient_logs_steps(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "multiclass", "--method", "subgradient", "--steps", 50, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    client, (run,) = runs_of(uri)
    history = client.get_metric_history(run.info.run_id, "solution/objective")
    assert len(history) >= 51 and history[0].value == 1.0 and min(h.value for h in history) < 0.5


def test_multiclass_subgradient_on_digits_equals_the_method_written_out(workdir):
    """`svm multiclass --method subgradient` end to end against an independent computation: digits from
    scikit-learn's load_digits (pixels / 16, a seed-0 permutation whose last 500 are the test set, a constant 1
    appended as the bias feature) and the method as its docstring states it, written here: W = 0, then W -= lr / n
    * G, G holding +x_i on row argmax_j l_ij and -x_i on row y_i for every sample whose hinge is > 0 (the first
    maximum on ties). Before, the method was checked by one hand-worked step on two points (both active) and on
    digits by a falling objective: a step of lr / (active samples) instead of lr / n passed every test. Every
    step's logged objective, the final training and test errors."""
    from sklearn.datasets import load_digits

    steps, lr = 40, 0.5
    uri = f"sqlite:///{workdir}/m.db"
    res = invoke(
        "svm", "multiclass", "--method", "subgradient", "--steps", steps, "--lr", lr, "--json", "--tracking-uri", uri
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])

    raw = load_digits()
    perm = np.random.RandomState(0).permutation(len(raw.target))
    (Xtr, ytr), (Xte, yte) = [
        (np.hstack([raw.data[rows] / 16.0, np.ones((len(rows), 1))]), raw.target[rows])
        for rows in (perm[:-500], perm[-500:])
    ]
    n, k = len(ytr), 10
    W, objectives = np.zeros((k, Xtr.shape[1])), []

    def errors(X, y):  # the 0-1 loss, a tie with the true class an error
        S = X @ W.T
        others = np.where(np.arange(k)[None, :] == y[:, None], -np.inf, S)
        return float(np.mean(others.max(1) >= S[np.arange(len(y)), y]))

    for step in range(steps + 1):
        S = Xtr @ W.T
        terms = S - S[np.arange(n), ytr][:, None] + (np.arange(k)[None, :] != ytr[:, None])
        top = terms.argmax(1)
        loss = terms[np.arange(n), top]
        objectives.append(loss.mean())
        if step == steps or not (loss > 0).any():
            break
        G = np.zeros_like(W)
        for i in np.flatnonzero(loss > 0):
            G[top[i]] += Xtr[i]
            G[ytr[i]] -= Xtr[i]
        W -= lr / n * G

    client, (run,) = runs_of(uri)
    # (the report logs the final objective once more, at the last step)
    logged = dict(sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "solution/objective")))
    assert list(logged) == list(range(len(objectives))) and objectives[-1] < 0.5 * max(objectives)
    np.testing.assert_allclose(list(logged.values()), objectives, rtol=1e-9, atol=1e-12)
    assert rep["objective"] == pytest.approx(objectives[-1], rel=1e-9)
    assert 0 < errors(Xtr, ytr) != errors(Xte, yte) > 0
    assert rep["train_error"] == pytest.approx(errors(Xtr, ytr), abs=1e-12)
    assert rep["test_error"] == pytest.approx(errors(Xte, yte), abs=1e-12)


def test_soft_svm_report(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "soft", "--classes", "3,8", "--C", 1, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    assert abs(rep["duality_gap"]) < 1e-10 and rep["qp_dual_max_beta"] < 1e-6
    assert rep["q3a_relative_difference"] < 1e-8 and rep["liblinear_relative_difference"] < 1e-6
    assert rep["primal_objective"] == pytest.approx(rep["dual_objective"], rel=1e-10)
    assert 0 < rep["support_vectors"] < rep["n_train"]
    # yes/no results are JSON's booleans (they read 1.0), numbers in the store
    assert rep["converged"] is True and rep["primal_converged"] is True and rep["qp_dual_success"] is True
    client, (run,) = runs_of(uri)
    assert run.data.tags["mlhw.part"] == "svm.q3" and run.data.params["classes"] == "[3, 8]"
    assert run.data.metrics["solution/converged"] == 1.0
    assert run.data.tags["mlflow.note.content"].startswith("Q3: soft SVM")  # the UI's description of the run
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["soft", "--C", "0"], "--C: must be > 0"),
        (["soft", "--C", "-1"], "--C: must be > 0"),
        # below 1e-5 the optimum sinks under the solvers' tolerances: C=1e-6 failed Q3(d) falsely, exit 0
        (["soft", "--C", "1e-6"], "--C: must be >= 1e-05: below it w is near 0"),
        (["soft", "--classes", "3,11"], "--classes: classes are digits 0..9 (got 3,11)"),
        (["soft", "--C", "inf"], "--C: must be a finite number (got inf)"),
        (["soft", "--C", "nan"], "--C: must be a finite number (got nan)"),
        (["soft", "--seed", "-1"], "--seed"),
        (["soft", "--seed", "4294967296"], "--seed"),
        (["multiclass", "--method", "subgradient", "--lr", "inf"], "--lr: must be a finite number (got inf)"),
        # the exact method reads neither: the option was logged as a param of a run it did not change
        (
            ["multiclass", "--steps", "500"],
            "--steps 500: not used here (the exact method takes no steps; method subgradient does)",
        ),
        (
            ["multiclass", "--lr", "0.5"],
            "--lr 0.5: not used here (the exact method takes no step size; method subgradient",
        ),
        (["soft", "--classes", "3"], "needs exactly two classes"),
        (["soft", "--classes", "3,3"], "needs two different classes"),
        (["soft", "--classes", "a,b"], "--classes 'a,b'"),
        (["soft", "--train-size", "0"], "--train-size: must be > 0"),
        (["soft", "--train-size", "3", "--seed", "1"], "--train-size: class 3 has no training samples in digits (3"),
        # a test subset without either class FINISHED with no test error ("-" in its table, no metric)
        (["soft", "--test-size", "5"], "--test-size: 5 test samples of digits hold none of classes 3 and 8"),
        (["soft", "--test-size", "1"], "--test-size: 1 test sample of digits holds none of classes 3 and 8"),
        (["soft", "--bias", "maybe"], "--bias"),
        (["multiclass", "--method", "magic"], "--method"),
        # digits is embedded: a --data-dir beside it is a forgotten --dataset mnist (the run trained on digits)
        (["soft", "--data-dir", "mnist"], "--data-dir mnist: not used here (digits is embedded; --dataset mnist"),
        (["multiclass", "--download"], "--download: not used here (digits is embedded; --dataset mnist downloads)"),
        # `--data-dir "$DIR"` with DIR unset read ./data, a folder the user never named
        (["soft", "--dataset", "mnist", "--data-dir", ""], "--data-dir '': empty (the default is data)"),
        (["multiclass", "--data-dir", " "], "--data-dir ' ': empty (the default is data)"),
    ],
)
def test_bad_input(workdir, args, culprit):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", *args, "--tracking-uri", uri)
    line = assert_one_line_error(res, culprit)
    if culprit == "--seed":  # the value too, not only the option
        assert args[-1] in line
    assert_nothing_created(workdir, uri)


def test_a_dual_above_the_primal_fails_strong_duality(monkeypatch):
    from mlhw import theory

    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {"duality_gap": -1e-3})
    rng = np.random.RandomState(1)
    X = rng.randn(60, 4)
    y = np.where(X @ rng.randn(4) > 0, 1.0, -1.0)
    (gap,) = [c for c in theory.check_q3(X, y, "t") if c.claim == "strong duality"]
    assert not gap.passed


def test_svm_soft_fails_when_its_converged_solvers_disagree(workdir, monkeypatch):
    """At C = 1e8 Newton stopped 0.3% above the optimum, called it converged, and `svm soft` exited 0 with the
    gap printed: two solvers that disagree now fail the command."""
    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {"duality_gap": 2.9e-3})
    res = invoke("svm", "soft", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 1 and "the primal and the dual differ by 2.9e-03" in res.stderr, res.output
    assert "the dual's active set stopped short (the primal is the optimum" in res.stderr  # its certificate holds
    # the table's row said "yes" beside the gap: both solvers had stopped by their own tests
    assert re.search(r"converged +│ +each by its own test, yet they disagree: the gap", res.stdout), res.stdout
    monkeypatch.setattr(
        svm, "soft_report", lambda *a, **k: real(*a, **k) | {"duality_gap": 2.9e-3, "primal_certificate_gap": 1e-3}
    )
    res = invoke("svm", "soft", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 1 and "one solver stopped short of the optimum" in res.stderr, res.output


def _theory_reproduction(workdir):
    """`mlhw reproduce` of a profile with the theory suite alone (generated data only: seconds)."""
    import yaml

    doc = {
        "version": 1,
        "suites": {"theory": {"kind": "theory", "part": "theory", "base": {"digits": False}}},
        "profiles": {"p": {}},
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
    uri = f"sqlite:///{workdir}/mlflow.db"
    return lambda *more: invoke(
        "reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, *more
    )


BROKEN_MAX_NET = np.array([1.0, 1.0, 1.0, 1.0])  # z4 added, not subtracted: Q2's claim fails


def test_a_failing_claim_fails_a_reproduction_too(workdir, monkeypatch):
    """reproduce printed the count in red and exited 0: a CI gate on its exit code let a broken claim through.
    Then the next reproduce, with nothing left to run, said "up to date" and exited 0, and `mlhw check` passed
    (the theory table has no mean/std to compare): a failing claim fails all three."""
    reproduce = _theory_reproduction(workdir)
    monkeypatch.setattr(theory, "MAX_NET_OUTPUT", BROKEN_MAX_NET)
    res = reproduce()
    assert res.exit_code == 1, res.output
    assert "failed its own check: theory: 1 check(s) fail (exit 1)" in res.stderr
    again = reproduce()
    assert again.exit_code == 1 and "up to date" not in again.stderr, again.output
    assert "ran 0 of 0" in again.stderr and "theory: 1 check(s) fail" in again.stderr  # compiled again, not rerun
    uri = f"sqlite:///{workdir}/mlflow.db"
    gate = invoke("check", "--profile", "p", "--baseline", workdir / "results" / "p", "--tracking-uri", uri)
    assert gate.exit_code == 1 and "failed its own check: theory: 1 check(s) fail" in gate.stderr, gate.output
    assert " —  — " not in gate.stderr and "but results fail their own checks (below)" in gate.stdout


def _soft_svm_reproduction(workdir):
    """`mlhw reproduce` of one Q3 run on 3 vs 8 of the embedded digits (a second)."""
    import yaml

    doc = {"version": 1, "suites": {"svm_soft": {"kind": "svm_soft", "part": "svm.q3"}}, "profiles": {"p": {}}}
    (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
    uri = f"sqlite:///{workdir}/mlflow.db"
    return lambda *more: invoke(
        "reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, *more
    )


def test_a_soft_svm_whose_solvers_disagree_fails_a_reproduction(workdir, monkeypatch):
    """`svm soft` exited 1 on a gap of 2.9e-3 between primal and dual; the same run under reproduce ended FINISHED,
    its table showed the gap and the exit code was 0. One rule now (svm.soft_failure) for both, and for the gate."""
    reproduce = _soft_svm_reproduction(workdir)
    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {"duality_gap": 2.9e-3})
    res = reproduce()
    assert res.exit_code == 1, res.output
    assert "failed its own check: svm_soft" in res.stderr and "the primal and the dual differ by 2.9e-03" in res.stderr
    assert reproduce().exit_code == 1  # not "up to date"
    monkeypatch.setattr(svm, "soft_report", real)
    fixed = reproduce("--force")  # the solver mended: the new run passes, and only then is the report final
    assert fixed.exit_code == 0 and "failed its own check" not in fixed.stderr, fixed.output
    assert "up to date" in reproduce().stderr


def test_reproduce_force_reports_the_runs_it_just_made(workdir, monkeypatch):
    """--force trains again: its report, gate and exit code are about the new runs (a rule that kept the first
    FINISHED run reported the old, passing ones)."""
    reproduce = _theory_reproduction(workdir)
    assert reproduce().exit_code == 0
    monkeypatch.setattr(theory, "MAX_NET_OUTPUT", BROKEN_MAX_NET)  # a regression in the code
    res = reproduce("--force")
    assert res.exit_code == 1 and "theory: 1 check(s) fail (exit 1)" in res.stderr, res.output


def test_errors_print_as_percentages_as_the_tables_do(workdir):
    """`svm multiclass` printed `test error 0.034` and `seconds 0.348248` where the report's table says 3.40%."""
    res = invoke("svm", "multiclass", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in res.stdout.splitlines() if "│" in line}
    assert rows["training error"] == "0.00%" and rows["test error"] == "3.40%"
    assert re.fullmatch(r"\d+\.\d\d", rows["seconds"])
    assert rows["theorem holds"].startswith("yes (f = 0 and zero training error")
    assert "Q1 multiclass hinge on digits (1,297 train / 500 test, 10 classes)" in res.stdout  # the report's counts
    # 50 subgradient steps end at f > 0: the implication's premise never arises, and 'yes' says what was checked
    res = invoke(
        "svm", "multiclass", "--method", "subgradient", "--steps", 50, "--tracking-uri", f"sqlite:///{workdir}/m.db"
    )
    found = re.search(r"theorem holds\s*│\s*(.*?)\s*│", res.stdout)
    assert res.exit_code == 0 and found and found[1].startswith("yes (f > 0: only 0-1 <= hinge"), res.stdout


def test_a_suite_removed_from_the_profile_leaves_the_report(workdir):
    """A profile of svm_soft and theory reproduced, then theory removed from it: the next reproduce said "up to
    date" and kept theory's tables, and `mlhw tables` brought them back from theory's older suite parent."""
    import yaml

    uri = f"sqlite:///{workdir}/mlflow.db"
    suites = {"svm_soft": {"kind": "svm_soft", "part": "svm.q3"}}
    suites["theory"] = {"kind": "theory", "part": "theory", "base": {"digits": False}}

    def reproduce(*names, more=()):
        doc = {"version": 1, "suites": {n: suites[n] for n in names}, "profiles": {"p": {}}}
        (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
        return invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, *more)

    tables = workdir / "results" / "p" / "tables"
    assert reproduce("svm_soft", "theory").exit_code == 0 and (tables / "theory.csv").is_file()
    assert "Theory" in (workdir / "results" / "p" / "REPORT.md").read_text()
    res = reproduce("svm_soft")
    assert res.exit_code == 0 and "up to date" not in res.stderr and "ran 0 of 0" in res.stderr, res.output
    assert (tables / "svm.csv").is_file() and not (tables / "theory.csv").exists()
    assert "Theory" not in (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "up to date" in reproduce("svm_soft").stderr  # and now it is
    res = invoke("tables", "--profile", "p", "--tracking-uri", uri)
    assert res.exit_code == 0 and not (tables / "theory.csv").exists(), res.output
    assert reproduce("svm_soft", "theory").exit_code == 0 and (tables / "theory.csv").is_file()  # back, on request


def test_an_only_reproduction_that_makes_the_whole_report_is_not_named_partial(workdir):
    """With every other suite done, `--only svm_soft --force` writes results/p/ (the whole report) and tags its
    parent mlhw.partial=false, but named it "p · svm_soft (partial)" in the UI."""
    reproduce = _soft_svm_reproduction(workdir)
    assert reproduce().exit_code == 0
    assert reproduce("--only", "svm_soft", "--force").exit_code == 0
    _, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    parents = [r for r in runs if r.data.tags.get("mlhw.kind") == "suite"]
    assert len(parents) == 2 and {r.data.tags["mlhw.partial"] for r in parents} == {"false"}
    assert {r.info.run_name for r in parents} == {"p · svm_soft"}


def test_a_large_exact_q1_says_what_it_solves_before_it_goes_quiet(workdir, monkeypatch):
    """`svm multiclass --dataset mnist` printed nothing for minutes (a linear program of 450,000 constraints)."""
    from mlhw.cli import svm as cli_svm

    uri = f"sqlite:///{workdir}/mlflow.db"
    quiet = invoke("svm", "multiclass", "--train-size", "300", "--tracking-uri", uri)
    assert quiet.exit_code == 0 and "Q1 exactly on" not in quiet.stderr  # 300 x 10: seconds, nothing to say
    monkeypatch.setattr(cli_svm, "LARGE_Q1", 2_000)
    res = invoke("svm", "multiclass", "--train-size", "300", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "Q1 exactly on 300 samples x 10 classes: a W with f = 0 if there is one, else a linear program of 2,700" in (
        res.stderr
    )
    # then a line when it is solved, with how (in a log); on a terminal a bar that runs while HiGHS says nothing
    assert re.search(r"Q1 exact: \(\d+ s\) (certificate|linear program)", res.stderr), res.stderr
    from mlhw.cli import common

    monkeypatch.setattr(common, "is_terminal", lambda *a: True)
    bars, real_progress = [], cli_svm.progress
    monkeypatch.setattr(cli_svm, "progress", lambda: bars.append(real_progress()) or bars[-1])
    res = invoke("svm", "multiclass", "--train-size", "300", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    [task] = bars[0].tasks
    assert (task.description, task.finished, task.fields["info"]) == ("Q1 exact", True, "certificate")


def independent_soft_svm(C: float) -> tuple[float, float, float, int, int, int]:
    """Q3 on digits 3 vs 8 computed without mlhw: (objective, training error, test error, n_train, n_test, support
    vectors). Digits
    from scikit-learn's load_digits split as documented (pixels / 16, a seed-0 permutation, its last 500 the test
    set), the 3s labelled +1 and the 8s -1, and the primal with a free bias, 1/2 ||w||^2 + C/2 sum max(0, 1 - y
    (w.x + b))^2, minimised by L-BFGS; the errors counted by hand (a score >= 0 reads +1). The support vectors are
    the samples with alpha_i > 0, which by Q3(c)'s xi_i = (alpha_i + beta_i)/C with beta = 0 are those with xi_i > 0:
    inside the margin, y_i (w.x_i + b) < 1 (none of digits' within 1e-4 of it at C = 0.1, 1, 10)."""
    from scipy.optimize import minimize
    from sklearn.datasets import load_digits

    raw = load_digits()
    perm = np.random.RandomState(0).permutation(len(raw.target))
    (Xtr, ytr), (Xte, yte) = [
        (raw.data[rows][keep] / 16.0, np.where(raw.target[rows][keep] == 3, 1.0, -1.0))
        for rows in (perm[:-500], perm[-500:])
        for keep in [np.isin(raw.target[rows], (3, 8))]
    ]
    A = np.hstack([Xtr, np.ones((len(Xtr), 1))])

    def objective(theta):
        slack = np.maximum(0.0, 1.0 - ytr * (A @ theta))
        reg = theta.copy()
        reg[-1] = 0.0  # the bias is free
        return 0.5 * reg @ reg + 0.5 * C * slack @ slack, reg - C * A.T @ (ytr * slack)

    fit = minimize(objective, np.zeros(A.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 0})
    w, b = fit.x[:-1], fit.x[-1]
    margins = ytr * (Xtr @ w + b)
    assert np.abs(margins - 1).min() > 1e-5  # no sample within L-BFGS's rounding of the margin
    errors = []
    for X, y in ((Xtr, ytr), (Xte, yte)):
        scores = X @ w + b
        assert np.abs(scores).min() > 1e-5  # no image within rounding of the boundary (closest: 3.4e-4, C = 0.01)
        errors.append(float(np.mean(np.where(scores >= 0, 1.0, -1.0) != y)))
    return float(fit.fun), errors[0], errors[1], len(ytr), len(yte), int(np.sum(margins < 1))


def test_svm_soft_errors_are_those_of_an_independent_fit_on_digits_3_and_8(workdir):
    """`svm soft --classes 3,8 --C 0.01`'s training and test errors (and objective) against independent_soft_svm,
    which shares no code with mlhw. No other test read a command's errors: test labels flipped in the command's
    wiring (a test error of 1 - e) passed test_svm and the rest of this file."""
    C = 0.01  # errors on both sets, and unequal (6/264, 4/93): from C = 1 on both are 0, which tells nothing
    res = invoke("svm", "soft", "--classes", "3,8", "--C", C, "--json", "--tracking-uri", f"sqlite:///{workdir}/m.db")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    objective, train_error, test_error, n_train, n_test, support = independent_soft_svm(C)
    assert (rep["n_train"], rep["n_test"]) == (n_train, n_test) == (264, 93)
    assert rep["primal_objective"] == pytest.approx(objective, rel=1e-7)
    assert 0 < test_error < 0.5 and train_error not in (0, test_error)
    assert rep["train_error"] == pytest.approx(train_error, abs=1e-12)
    assert rep["test_error"] == pytest.approx(test_error, abs=1e-12)
    assert rep["support_vectors"] == support  # the dual's alpha_i > 0 against the primal's margins < 1, by L-BFGS


@pytest.mark.parametrize("profile", ["ci", "digits", "paper"])
def test_the_committed_baselines_q3_rows_are_those_of_an_independent_fit(profile):
    """`mlhw check` holds every reproduction to results/<profile>/tables/svm.csv, the soft SVM's objective to one
    part in a million: those committed numbers (written by mlhw) against independent_soft_svm, for every C."""
    table = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / profile / "tables" / "svm.csv")
    rows = table[table["question"] == "Q3 soft SVM"]
    assert len(rows) >= 1
    for _, row in rows.iterrows():
        found = re.fullmatch(r"digits 3vs8, C=([0-9.e+-]+)", row["setting"])
        assert found, row["setting"]
        objective, train_error, test_error, _, _, support = independent_soft_svm(float(found[1]))
        assert row["objective"] == pytest.approx(objective, rel=1e-7), row["setting"]
        assert (row["train error"], row["test error"]) == (
            pytest.approx(train_error, abs=1e-12),
            pytest.approx(test_error, abs=1e-12),
        ), row["setting"]
        # gated by `mlhw check` too, and read from the dual alone: a count of alpha_i > 0 against its meaning
        assert int(row["support vectors"]) == support, row["setting"]  # (a column of "-" for Q1 too)


def test_svm_soft_says_how_many_samples_of_its_two_classes_it_kept(workdir):
    """`svm soft --train-size 500` trains on the 3s and 8s of a 500-image subset (100 here): the table said
    'training samples 100' without why, and no test count."""
    res = invoke("svm", "soft", "--train-size", "500", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in res.stdout.splitlines() if "│" in line}
    assert rows["training samples (its two classes)"] == "100" and rows["test samples"] == "93"
    help_text = " ".join(invoke("svm", "soft", "--help").stdout.split())
    assert "the SVM keeps its two --classes" in help_text.replace("│ ", "")


def test_a_large_svm_soft_shows_its_stages_and_says_what_it_did_not_solve(workdir, monkeypatch):
    """`svm soft` on MNIST worked for minutes without a word, and above 6,000 samples its table lost the dual's
    rows without saying so. A large problem now shows its stages (plain lines in a log), and the table names what
    was not solved, and why."""
    from mlhw import svm as core
    from mlhw.cli import svm as cli_svm

    uri = f"sqlite:///{workdir}/mlflow.db"
    quiet = invoke("svm", "soft", "--tracking-uri", uri)
    assert quiet.exit_code == 0 and "Q3 soft SVM:" not in quiet.stderr  # digits 3 vs 8: a second, nothing to say
    monkeypatch.setattr(cli_svm, "LARGE_Q3", 1_000)
    monkeypatch.setattr(core, "DUAL_MAX_SAMPLES", 200)
    res = invoke("svm", "soft", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "Q3 soft SVM: stage 4/4" in res.stderr and "done" in res.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in res.stdout.splitlines() if "│" in line}
    n = int(rows["training samples (its two classes)"])
    assert n > 200 and rows["dual, duality gap, KKT residuals"] == (
        f"not solved: {n} samples > 200 (a smaller --train-size)"
    )
    assert rows["Newton converged"] == "yes" and "duality gap (relative)" not in rows
    assert any(k.startswith("Q3(d):") for k in rows) and any(k.startswith("Q3(a):") for k in rows)


def test_a_large_q3_without_its_dual_still_fails_a_newton_that_stopped_short():
    """Above 6,000 samples Q3 skips the dual, so neither `converged` nor the gap existed and a Newton that ran out
    of iterations passed `svm soft`, reproduce and check alike. Newton's own flag is in every report now."""
    rng = np.random.RandomState(0)
    X = rng.randn(40, 3)
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    rep = svm.soft_report(X, y, 1.0)
    assert rep["primal_converged"] == 1.0 and svm.soft_failure(rep) is None
    big = {k: v for k, v in rep.items() if k not in ("converged", "duality_gap", "primal_certificate_gap")}
    assert svm.soft_failure(big) is None
    assert svm.soft_failure(big | {"primal_converged": 0.0}) == (
        "Newton did not converge: the primal objective is not the optimum"
    )


def test_the_backprop_check_catches_a_gradient_off_by_a_thousandth(monkeypatch):
    """Part 1 (a)'s hand-written backprop is a theory check now (vs autograd and central differences on the
    assignment's [784, 40, 10] network), not only a unit test: a bias gradient 0.1% off fails both rows."""
    from mlhw.mlp import Network

    assert all(c.passed for c in theory.check_backprop())
    real = Network.backprop
    monkeypatch.setattr(Network, "backprop", lambda *a, **k: [(w, b * 1.001) for w, b in real(*a, **k)])
    assert not any(c.passed for c in theory.check_backprop())


def test_the_backprop_check_covers_the_output_layer_too(monkeypatch):
    """The gradient check compares every layer's weights and biases: the output layer's weight gradient alone 0.1%
    off fails both rows. A check that compared only the first layer against autograd passed the test above (whose
    error is in every layer's bias)."""
    from mlhw.mlp import Network

    real = Network.backprop

    def last_layer_off(*a, **k):
        grads = real(*a, **k)
        return grads[:-1] + [(grads[-1][0] * 1.001, grads[-1][1])]

    monkeypatch.setattr(Network, "backprop", last_layer_off)
    auto, fd = theory.check_backprop()
    assert not auto.passed and auto.max_error == pytest.approx(1e-3, rel=1e-6)
    assert not fd.passed


def test_q1_tests_a_minimiser_that_could_have_errors():
    """Q1's "f = 0 => zero training error" was tested on the certificate W alone, scaled until every margin is 1,
    which has zero error by construction. The linear program's minimiser (HiGHS) is tested too."""
    rows = {c.check: c for c in theory.check_q1(*theory.separable_blobs(), "blobs")}
    row = rows["training error of the minimisers: certificate (scaled softmax fit), lp (HiGHS)"]
    assert row.passed and row.max_error == 0.0


def test_svm_soft_logs_the_two_classes_it_trained_on_as_its_inputs(workdir):
    """Its dataset inputs said digits' 1,297 / 500 images while the run trained on the 264 / 93 of 3 and 8."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    assert invoke("svm", "soft", "--tracking-uri", uri).exit_code == 0
    client, (run,) = runs_of(uri)
    inputs = {i.dataset.name: json.loads(i.dataset.profile)["num_rows"] for i in run.inputs.dataset_inputs}
    assert inputs == {"digits-3v8-training": 264, "digits-3v8-test": 93}
    assert json.loads(run.data.tags["mlhw.dataset_sizes"]) == {"train": 264, "test": 93}
    assert run.data.metrics["data/n_train"] == 264  # the run's own count agrees
    # solver timings sit with the system metrics (the run showed 30 metrics at the top level)
    assert {"system/primal_seconds", "system/dual_seconds"} <= set(run.data.metrics)
    assert not {"primal_seconds", "dual_seconds"} & set(run.data.metrics)
    # and the rest by solver: each section a group in the UI (25 metrics at the top level before)
    sections = {m.split("/")[0] for m in run.data.metrics if "/" in m}
    assert sections == {"system", "train", "test", "primal", "dual", "kkt", "qp", "liblinear", "solution", "data"}
    assert all("/" in m for m in run.data.metrics), sorted(run.data.metrics)  # none left outside a section
    assert {"primal/objective", "dual/objective", "kkt/duality_gap", "liblinear/relative_difference"} <= set(
        run.data.metrics
    )
    # the last six flat names (a walk-through found `objective` beside `primal/objective`): what the solution is
    assert {m for m in run.data.metrics if m.split("/")[0] in ("solution", "data")} == {
        "solution/converged",
        "solution/newton_iterations",
        "solution/q3a_relative_difference",
        "solution/support_vectors",
        "data/n_test",
        "data/n_train",
    }


def test_a_runs_params_are_what_it_reads(workdir):
    """The exact Q1 showed params lr=1.0 and steps=2000 it never reads, and subset sizes as the string 'None'."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    assert invoke("svm", "multiclass", "--train-size", "300", "--tracking-uri", uri).exit_code == 0
    _, (run,) = runs_of(uri)
    params = run.data.params
    assert not {"lr", "steps"} & set(params) and params["method"] == "exact"
    assert params["train_size"] == "300" and params["test_size"] == "all"
    # named as every single command's run, "part · what (data)": it read "svm.q1 exact (digits 300/all)"
    assert run.info.run_name == "svm.q1 · exact method (digits 300/all)"
    assert invoke("svm", "soft", "--tracking-uri", uri).exit_code == 0
    assert {r.info.run_name for r in runs_of(uri)[1]} >= {"svm.q3 · 3 vs 8, C=1 (digits)"}
    # nor a metric solution/steps = 0, a count of steps it never takes
    assert "solution/steps" not in run.data.metrics and "solution/objective" in run.data.metrics


def test_the_subgradient_method_logs_its_steps(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ["--method", "subgradient", "--steps", "7", "--train-size", "100", "--tracking-uri", uri]
    assert invoke("svm", "multiclass", *args).exit_code == 0
    _, (run,) = runs_of(uri)
    assert run.data.metrics["solution/steps"] == 7
    assert "mlhw.diverged_step" not in run.data.tags


@pytest.mark.parametrize("lr", ["1e308", "1e307"])
def test_a_diverged_subgradient_run_is_recorded_and_tests_no_claim(workdir, lr):
    """--lr 1e308: f went nan, numpy printed five RuntimeWarnings, and the verdict read "theorem holds: NO" (nan > 0 is
    false); at 1e307, f = inf "held". A diverged run tests neither claim: it says so, and records the step."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ["--method", "subgradient", "--steps", "5", "--lr", lr, "--train-size", "60", "--check", "--json"]
    res = invoke("svm", "multiclass", *args, "--tracking-uri", uri)
    assert res.exit_code == 1, res.output  # --check: the theorem was not shown to hold
    assert "RuntimeWarning" not in res.stderr, res.stderr
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    assert rec["diverged_step"] >= 1 and rec["objective"] in (None, math.inf)  # JSON has no nan: null
    _, (run,) = runs_of(uri)
    assert run.info.status == "FINISHED" and run.data.tags["mlhw.diverged_step"] == str(rec["diverged_step"])
    table = invoke("svm", "multiclass", *args[:-1], "--tracking-uri", uri)
    assert "not tested: the subgradient method diverged at step" in " ".join(table.stdout.split())


def test_running_out_of_memory_is_one_line_and_a_failed_run(workdir, monkeypatch):
    """Q1's LP on all of MNIST asked numpy for 5.27 GiB: a 60-line traceback. It is one line now, exit 1, and the
    run it started is FAILED with the traceback in error.txt."""
    from mlhw import svm as core

    def too_big(*a, **k):
        raise MemoryError("Unable to allocate 5.27 GiB for an array with shape (450000, 1571) and data type int64")

    monkeypatch.setattr(core, "multiclass_report", too_big)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "multiclass", "--tracking-uri", uri)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith("error: out of memory (Unable to allocate 5.27 GiB for an array with shape (450000, 1571)")
    )
    client, (run,) = runs_of(uri)
    assert run.info.status == "FAILED"
    assert "MemoryError" in Path(client.download_artifacts(run.info.run_id, "error.txt", str(workdir))).read_text()


def test_a_data_dir_from_the_environment_is_no_mistake_on_digits(workdir, monkeypatch):
    """MLHW_DATA_DIR serves every command; set for MNIST, it must not refuse a digits run (only a --data-dir typed
    beside digits is refused), nor does --no-download, which asks for nothing."""
    monkeypatch.setenv("MLHW_DATA_DIR", str(workdir / "mnist"))
    res = invoke("svm", "soft", "--no-download", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output


def test_an_exact_q1_too_large_to_solve_is_refused_before_any_run(workdir, monkeypatch):
    """`svm multiclass --dataset mnist --train-size 20000` (an LP of 180,000 constraints) ran 20 minutes and ran out
    of memory, its run left RUNNING when the kernel killed it. Above Q1_LP_MAX_ROWS it is refused up front, with
    the largest --train-size that fits; reproduce checks the same before its runs (for any dataset but digits)."""
    from mlhw import runs
    from mlhw.config import MulticlassSVMConfig

    monkeypatch.setattr(runs, "Q1_LP_MAX_ROWS", 2_000)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "multiclass", "--train-size", "300", "--tracking-uri", uri)
    assert_one_line_error(
        res, "--train-size: 300 samples: the exact Q1 may need a linear program of 2,700 constraints, more than 2,000"
    )
    assert "--train-size 222 or fewer, or --method subgradient" in res.stderr
    assert_nothing_created(workdir, uri)
    ok = invoke("svm", "multiclass", "--train-size", "222", "--tracking-uri", uri)
    assert ok.exit_code == 0, ok.output
    sub = invoke(
        "svm", "multiclass", "--train-size", "300", "--method", "subgradient", "--steps", 5, "--tracking-uri", uri
    )
    assert sub.exit_code == 0, sub.output
    whole = invoke("svm", "multiclass", "--tracking-uri", uri)  # no --train-size: the dataset is what is too large
    assert_one_line_error(
        whole, "--dataset: all 1,297 training samples of digits: the exact Q1 may need a linear program of 11,673"
    )
    assert runs.DataSource.may_be_unusable(MulticlassSVMConfig(dataset="mnist"))
    assert not runs.DataSource.may_be_unusable(MulticlassSVMConfig(dataset="mnist", method="subgradient"))


def test_svm_soft_says_whether_its_residuals_are_within_tolerance(workdir, monkeypatch):
    """The table listed a column of residuals (1e-15s beside a 9e-10) with no tolerance and no verdict, where
    `svm multiclass` says "theorem holds": a student checking a derivation had to judge each number alone."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("svm", "soft", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert re.search(r"residuals within tolerance +│ +yes: all within 1e-8 \(beta, liblinear: 1e-6\)", res.stdout)
    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {"w_residual": 1e-3})
    res = invoke("svm", "soft", "--tracking-uri", uri)
    assert re.search(r"residuals within tolerance +│ +NO: w 1\.0e-03 > 1e-08", res.stdout), res.stdout


def test_svm_soft_verdict_names_what_it_judged_when_the_dual_is_skipped():
    """Above 6,000 samples (MNIST 3 vs 8) there is no dual, so no gap and no KKT residuals: the row said 'yes: all
    within 1e-8' of the three residuals left. It names them; a whole report still reads 'all'."""
    from mlhw.cli.svm import Q3_TOLERANCES, _q3_verdict

    whole = {key: 0.0 for _, key, _ in Q3_TOLERANCES}
    assert _q3_verdict(whole) == "yes: all within 1e-8 (beta, liblinear: 1e-6)"
    no_dual = {"qp_dual_max_beta": 1e-9, "q3a_relative_difference": 0.0, "liblinear_relative_difference": 0.0}
    assert _q3_verdict(no_dual) == "yes: beta, liblinear within 1e-6 (Q3(a): 1e-8)"
    assert _q3_verdict(no_dual | {"qp_dual_max_beta": float("nan")}) == "NO: beta nan > 1e-06"


def test_multiclass_table_says_its_method_in_words_and_its_test_set(workdir):
    """The table read 'method │ certificate' (a name from the code: that a W with every margin >= 1 was found, so
    f = 0 is the minimum) and gave the training set's size but not the test set's its test error is on."""
    res = invoke("svm", "multiclass", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output
    assert "Q1 multiclass hinge on digits (1,297 train / 500 test, 10 classes)" in res.stdout
    assert re.search(r"method +│ +exact: a W with f = 0 │", res.stdout), res.stdout


def test_svm_soft_verdict_tolerances_are_mlhw_theorys():
    """`svm soft`'s verdict row judges each residual with a tolerance of its own table (Q3_TOLERANCES, spelt there
    so the CLI does not import the solvers to start): each must be the one `mlhw theory` holds that residual to
    (theory.check_q3, matched here by its claim), the gap the exit code's (svm.GAP_TOLERANCE), or the row and the
    theory checks could disagree on one run."""
    from mlhw.cli.svm import Q3_TOLERANCES

    claims = {
        "w_residual": "w = sum alpha_i y_i x_i",
        "bias_residual": "bias from the dual = bias primal",
        "qp_vs_newton_relative_difference": "xi eliminated: same optimum",
        "qp_dual_vs_active_set": "max over alpha, beta = max over alpha",
        "xi_residual": "xi = (alpha + beta)/C",
        "equality_residual": "sum alpha_i y_i = 0 (free bias)",
        "complementary_slackness": "complementary slackness",
        "q3a_relative_difference": "xi >= 0 leaves the optimum",
        "qp_dual_max_beta": "beta = 0 at the optimum",
        "liblinear_relative_difference": "= liblinear (LinearSVC)",
    }
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 4), np.where(rng.rand(30) > 0.5, 1.0, -1.0)
    theirs = {c.claim: c.tolerance for c in theory.check_q3(X, y, "random")}
    ours = {key: tol for _, key, tol in Q3_TOLERANCES}
    assert set(ours) == set(claims) | {"duality_gap"}
    for key, claim in claims.items():
        assert ours[key] == theirs[claim], (key, claim)
    assert ours["duality_gap"] == svm.GAP_TOLERANCE


def test_svm_runs_are_named_for_the_settings_that_set_them_apart(workdir):
    """Q3 with a free, a regularized and no bias were three runs all named 'svm.q3 · 3 vs 8, C=1 (digits)', and Q1
    with and without its bias feature, or by two step sizes, shared a name too: the MLflow UI's run list could not
    tell them apart, nor the table's title which one it printed. Each now says what is not the default."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    commands = {
        ("soft",): "svm.q3 · 3 vs 8, C=1 (digits)",
        ("soft", "--bias", "none"): "svm.q3 · 3 vs 8, C=1, bias none (digits)",
        ("soft", "--bias", "regularized", "--seed", "3"): "svm.q3 · 3 vs 8, C=1, bias regularized, seed 3 (digits)",
        ("multiclass", "--train-size", "200"): "svm.q1 · exact method (digits 200/all)",
        ("multiclass", "--train-size", "200", "--no-bias"): "svm.q1 · exact method, no bias (digits 200/all)",
        ("multiclass", "--train-size", "200", "--method", "subgradient", "--steps", "5", "--lr", "0.5"): (
            "svm.q1 · subgradient method, 5 steps, lr 0.5 (digits 200/all)"
        ),
    }
    titles = {}
    for args in commands:
        res = invoke("svm", *args, "--tracking-uri", uri)
        assert res.exit_code == 0, res.output
        titles[args] = res.stdout.splitlines()[0].strip()
    assert sorted(r.info.run_name for r in runs_of(uri)[1]) == sorted(commands.values())
    # the printed title says them too: Q3's said its bias already, Q1's neither its bias nor its step size
    assert titles[("multiclass", "--train-size", "200", "--no-bias")].endswith("10 classes, no bias)")
    subgradient = next(args for args in commands if "subgradient" in args)
    assert titles[subgradient].endswith("10 classes, 5 steps, lr 0.5)"), titles[subgradient]


def _soft_rows(res) -> dict[str, str]:
    return {line.split("│")[1].strip(): line.split("│")[2].strip() for line in res.stdout.splitlines() if "│" in line}


@pytest.mark.parametrize(
    "key, said",
    [
        # the two QPs of Q3(a) against each other only: both stopping short alike read "yes"
        ("qp_vs_newton_relative_difference", "NO: Q3(a) vs Newton 1.0e-03 > 1e-08"),
        ("bias_residual", "NO: b 1.0e-03 > 1e-08"),  # the dual's b, which `mlhw theory` checks, was not shown
        ("qp_dual_vs_active_set", "NO: Q3(d) vs active set 1.0e-03 > 1e-08"),
    ],
)
def test_svm_soft_shows_and_judges_every_q3_relation_mlhw_theory_checks(workdir, monkeypatch, key, said):
    """`mlhw theory` checks the bias recovered from the dual, Q3(a)'s QP against Newton and Q3(d)'s general QP
    against the active set; `svm soft` showed none of the three, and its verdict said 'yes: all within 1e-8' with
    any of them off by 1e-3."""
    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {key: 1e-3})
    res = invoke("svm", "soft", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output  # the exit code is the gap's and the solvers' (README)
    rows = _soft_rows(res)
    assert rows["residuals within tolerance"] == said, rows
    assert "0.001" in rows.values()


@pytest.mark.parametrize("bias", ["none", "regularized"])
def test_svm_soft_does_not_show_a_free_bias_constraint_it_does_not_have(workdir, monkeypatch, bias):
    """sum alpha_i y_i = 0 is the free bias's constraint (from dL/db = 0); with the bias penalised or absent the run
    logs 0 for it, and the table printed that 0 and counted it among the residuals 'within 1e-8'. Without a bias there
    is no b to recover from the dual either."""
    real = svm.soft_report
    monkeypatch.setattr(svm, "soft_report", lambda *a, **k: real(*a, **k) | {"equality_residual": 1.0})
    res = invoke("svm", "soft", "--bias", bias, "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output
    rows = _soft_rows(res)
    assert rows["sum alpha_i y_i (free bias: 0)"] == f"- (bias {bias}: no such constraint)"
    assert rows["residuals within tolerance"] == "yes: all within 1e-8 (beta, liblinear: 1e-6)"
    assert ("|b (Newton) - b (from the dual)|" in rows) == (bias != "none")
    liblinear = {"none": "liblinear (no bias), rel. diff", "regularized": "liblinear (b penalised), rel. diff"}
    assert liblinear[bias] in rows  # it read "liblinear (none bias)"


def test_a_free_bias_runs_liblinear_objective_says_whose_problem_it_is(workdir):
    """With a free bias, liblinear/objective (5.185801 on digits 3 vs 8, C = 1) is the objective of the problem with
    its bias penalised, logged beside primal/objective (5.185426) and a relative difference of 2e-16: nothing in the
    run said the two were of different problems (report.json's liblinear_formulation alone). A tag says it; the
    difference is that variant's, solved here independently (bias folded into the features, liblinear's C/2)."""
    from mlhw.runs import LIBLINEAR_PROBLEM

    uri = f"sqlite:///{workdir}/mlflow.db"
    for bias in ("free", "none"):
        assert invoke("svm", "soft", "--bias", bias, "--tracking-uri", uri).exit_code == 0
    client, runs = runs_of(uri)
    by_bias = {r.data.params["bias"]: r for r in runs}
    free = by_bias["free"]
    assert free.data.tags["mlhw.liblinear_problem"] == LIBLINEAR_PROBLEM["free"]
    assert "not primal/objective's problem" in LIBLINEAR_PROBLEM["free"]
    m = free.data.metrics
    assert m["liblinear/objective"] != pytest.approx(m["primal/objective"], rel=1e-6)  # another problem indeed
    assert m["liblinear/objective"] == pytest.approx(penalised_bias_optimum(C=1.0), rel=1e-7)
    assert by_bias["none"].data.tags["mlhw.liblinear_problem"] == "this run's problem (no bias)"


def test_a_residual_of_a_constraint_the_formulation_lacks_is_not_logged_as_a_passed_check(workdir):
    """Without a free bias there is no sum alpha_i y_i = 0 (and without a bias no b to recover from the dual): the
    runs logged kkt/equality_residual (and kkt/bias_residual) as 0, in the UI a check that passed exactly. They are
    not metrics of such a run, and report.json holds null for them; a free bias's run logs both, computed."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    for bias in ("free", "regularized", "none"):
        assert invoke("svm", "soft", "--bias", bias, "--tracking-uri", uri).exit_code == 0
    client, runs = runs_of(uri)
    for run in runs:
        bias, m = run.data.params["bias"], run.data.metrics
        report = json.loads(Path(client.download_artifacts(run.info.run_id, "report.json", str(workdir))).read_text())
        absent = {"free": set(), "regularized": {"equality_residual"}, "none": {"equality_residual", "bias_residual"}}
        for key in ("equality_residual", "bias_residual"):
            if key in absent[bias]:
                assert f"kkt/{key}" not in m and report[key] is None, (bias, key)
            else:
                assert m[f"kkt/{key}"] == report[key] and report[key] < 1e-8, (bias, key)
        assert m["kkt/xi_residual"] == report["xi_residual"]  # the others as before


def penalised_bias_optimum(C: float) -> float:
    """min 1/2 ||(w, b)||^2 + C/2 sum max(0, 1 - y (w.x + b))^2 on digits 3 vs 8 (as independent_soft_svm builds it,
    without mlhw), by L-BFGS: the problem liblinear solves for a free-bias row."""
    from scipy.optimize import minimize
    from sklearn.datasets import load_digits

    raw = load_digits()
    rows = np.random.RandomState(0).permutation(len(raw.target))[:-500]
    keep = np.isin(raw.target[rows], (3, 8))
    A = np.hstack([raw.data[rows][keep] / 16.0, np.ones((int(keep.sum()), 1))])
    y = np.where(raw.target[rows][keep] == 3, 1.0, -1.0)

    def objective(theta):
        slack = np.maximum(0.0, 1.0 - y * (A @ theta))
        return 0.5 * theta @ theta + 0.5 * C * slack @ slack, theta - C * A.T @ (y * slack)

    fit = minimize(objective, np.zeros(A.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 0})
    return float(fit.fun)
