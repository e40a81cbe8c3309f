"""`mlhw reproduce` end to end on tiny profiles: idempotent, resumable, tables equal to MLflow."""

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from mlhw.cli import app
from mlhw.tracking import free_port

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

TINY = {
    "version": 1,
    "suites": {
        "mlp_lr_sweep": {
            "kind": "mlp",
            "part": "mlp.b",
            "base": {"epochs": 2, "train_size": 200, "test_size": 50},
            "grid": {"lr": [0.1, 1.0]},
        },
        "mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2}},
        "cnn_optimizers": {
            "kind": "cnn",
            "part": "cnn.a",
            "base": {"epochs": 1, "width": 0.125, "image_size": 67},
            "grid": {"variant": ["sgd-0.005", "adam-5e-05"]},
        },
        "cnn_batchnorm": {
            "kind": "cnn",
            "part": "cnn.c",
            "base": {"epochs": 1, "width": 0.125, "image_size": 67},
            "grid": {"variant": ["adam-5e-05-plain", "adam-5e-05"]},
        },
        "svm_soft": {"kind": "svm_soft", "part": "svm.q3"},
    },
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}, "suites": {"mlp_full": {"seeds": [8, 9]}}}},
}


def reproduce(workdir, *args):
    return runner.invoke(
        app,
        [
            "reproduce",
            "--profile",
            "tiny",
            "--file",
            str(workdir / "exp.yaml"),
            "--tracking-uri",
            f"sqlite:///{workdir}/mlflow.db",
            *map(str, args),
        ],
    )


def runs(workdir):
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    return client, client.search_runs([client.get_experiment_by_name("mlhw").experiment_id])


@pytest.fixture
def tiny(workdir):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    return workdir


def test_second_run_executes_nothing_and_tables_equal_mlflow(tiny):
    res = reproduce(tiny)
    assert res.exit_code == 0, res.output
    assert "ran 8 runs" in res.stderr  # 2 + 2 + 2 + 1 (shared adam-5e-05 once) + 1
    client, first = runs(tiny)
    assert all(r.info.status == "FINISHED" for r in first)
    res = reproduce(tiny)
    assert res.exit_code == 0 and "ran 0 runs" in res.stderr and "0 distinct runs to execute" in res.stderr
    assert len(runs(tiny)[1]) == len(first)  # no duplicates
    root = tiny / "results" / "tiny"
    for name in ("mlp_lr_sweep", "mlp_full", "sgd_vs_adam", "batchnorm_dropout", "svm"):
        for ext in ("md", "csv", "tex"):
            assert (root / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert (root / "REPORT.md").read_text().count("## ") >= 6
    full = pd.read_csv(root / "tables" / "mlp_full.csv")
    accs = [r.data.metrics["test_acc"] for r in first if r.data.tags["mlhw.part"] == "mlp.c"]
    assert full.loc[0, "n"] == 2 and full.loc[0, "test_acc_mean"] == pytest.approx(sum(accs) / 2, rel=1e-12)
    cnn = pd.read_csv(root / "tables" / "sgd_vs_adam.csv")
    by_variant = {r.data.tags["variant"]: r.data.metrics for r in first if r.data.tags.get("mlhw.kind") == "cnn"}
    for _, row in cnn.iterrows():
        assert row["val_acc_mean"] == pytest.approx(by_variant[row["variant"]]["val_acc"], rel=1e-12)


def test_interrupted_run_is_killed_and_rerun(tiny, monkeypatch):
    import mlhw.cnn

    real = mlhw.cnn.train_cnn
    calls = {"n": 0}

    def interrupt_second(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(mlhw.cnn, "train_cnn", interrupt_second)
    res = reproduce(tiny, "--only", "cnn_optimizers")
    assert res.exit_code == 130
    _, after = runs(tiny)
    assert sorted(r.info.status for r in after) == ["FINISHED", "KILLED"]
    monkeypatch.setattr(mlhw.cnn, "train_cnn", real)
    res = reproduce(tiny, "--only", "cnn_optimizers")
    assert res.exit_code == 0 and "ran 1 runs" in res.stderr and "1 killed" in res.stderr


def test_a_failing_run_does_not_stop_the_others(tiny, monkeypatch):
    import mlhw.svm

    def broken(*a, **kw):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(mlhw.svm, "solve_primal", broken)
    res = reproduce(tiny, "--only", "svm_soft", "--only", "mlp_full")
    assert res.exit_code == 1 and "solver exploded" in res.stderr
    client, after = runs(tiny)
    failed = [r for r in after if r.info.status == "FAILED"]
    assert len(failed) == 1 and sum(r.info.status == "FINISHED" for r in after) == 2
    assert "error.txt" in {a.path for a in client.list_artifacts(failed[0].info.run_id)}
    monkeypatch.undo()
    res = reproduce(tiny, "--only", "svm_soft", "--only", "mlp_full")
    assert res.exit_code == 0 and "ran 1 runs" in res.stderr


def test_invalid_file_runs_nothing(tiny):
    bad = dict(TINY, suites=dict(TINY["suites"], mlp_full={"kind": "mlp", "part": "x", "base": {"lr": -1}}))
    (tiny / "exp.yaml").write_text(yaml.safe_dump(bad))
    res = reproduce(tiny)
    assert res.exit_code == 2
    assert (
        res.stderr.strip()
        == f"error: {tiny / 'exp.yaml'}: suites.mlp_full.base.lr: Input should be greater than 0 (got -1)"
    )
    assert not (tiny / "results").exists()


def test_ci_profile_end_to_end_sane_numbers(workdir):
    """The repository's own experiments.yaml, the CI-sized profile: every table, the report, sane ranges."""
    shutil.copy(REPO / "experiments.yaml", workdir / "experiments.yaml")
    res = runner.invoke(app, ["reproduce", "--profile", "ci", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"])
    assert res.exit_code == 0, res.output
    root = workdir / "results" / "ci"
    names = ["mlp_lr_sweep", "mlp_full", "sgd_vs_adam", "adam_lr", "batchnorm_dropout", "svm", "theory"]
    tables = {n: pd.read_csv(root / "tables" / f"{n}.csv") for n in names}
    for n in ("mlp_lr_sweep", "mlp_full"):
        assert tables[n]["test_acc_mean"].between(0, 1).all()
    assert tables["mlp_full"]["test_acc_mean"].iloc[0] > 0.8  # 5 epochs on digits
    for n in ("sgd_vs_adam", "adam_lr", "batchnorm_dropout"):
        assert tables[n]["val_acc_mean"].between(0, 1).all() and len(tables[n]) == 2
    svm = tables["svm"]
    assert svm.loc[svm["question"].str.startswith("Q1"), "objective"].iloc[0] == 0.0
    assert tables["theory"]["passed"].all() and len(tables["theory"]) == 27
    report = (root / "REPORT.md").read_text()
    assert "not the assignment's" in report and "![" in report and "## Environment" in report
    for fig in ("mlp_lr_sweep", "sgd_vs_adam", "adam_lr", "batchnorm_dropout"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_ui_serves_the_store_on_localhost(workdir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, status = time.time() + 90, None
        while time.time() < deadline and status is None:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
