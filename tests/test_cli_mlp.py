"""`mlhw mlp` through typer's CliRunner; MLflow contents read back from a temporary SQLite store."""

import json

import pytest
from helpers import write_mnist_idx
from mlflow import MlflowClient
from typer.testing import CliRunner

from mlhw.cli import app

runner = CliRunner()
FAST = ["--epochs", "2"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def store(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    return uri, MlflowClient(uri)


def all_runs(client):
    exp = client.get_experiment_by_name("mlhw")
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_help_teaches_and_version():
    res = invoke("--help")
    assert res.exit_code == 0 and "mlp" in res.output
    res = invoke("mlp", "sweep", "--help")
    assert res.exit_code == 0 and "--lrs" in res.output and "Tracking" in res.output
    res = invoke("--version")
    assert res.exit_code == 0 and res.output.startswith("mlhw ")


def test_train_logs_one_complete_run(workdir):
    uri, client = store(workdir)
    res = invoke("mlp", "train", *FAST, "--tracking-uri", uri, "--json")
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.strip().splitlines()[-1])
    (run,) = all_runs(client)
    assert run.info.status == "FINISHED" and run.info.run_id == line["run_id"]
    assert run.data.params["lr"] == "0.1" and run.data.params["batch_size"] == "10"
    tags = run.data.tags
    assert tags["mlhw.part"] == "mlp.c" and tags["mlhw.dataset"] == "digits"
    assert len(tags["mlhw.config_hash"]) == 16 and len(tags["mlhw.dataset_fingerprint"]) == 16
    history = client.get_metric_history(run.info.run_id, "test_acc")
    assert [m.step for m in history] == [0, 1, 2]
    assert history[-1].value == pytest.approx(line["test_acc"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"history.csv"}
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} == {"digits-training", "digits-test"}


def test_sweep_groups_children_and_draws_the_figure(workdir):
    uri, client = store(workdir)
    res = invoke("mlp", "sweep", "--lrs", "0.01,0.1,1e30", *FAST, "--tracking-uri", uri, "--json")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["lr"] for x in lines] == [0.01, 0.1, 1e30]
    assert lines[2]["diverged_epoch"] == 1 and lines[2]["train_loss"] is None  # NaN -> null in JSON
    runs = all_runs(client)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "mlp-sweep"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 4 and len(children) == 3
    assert all(r.info.status == "FINISHED" for r in runs)
    diverged = [r for r in children if "diverged" in r.data.tags]
    assert len(diverged) == 1 and diverged[0].data.params["lr"] == "1e+30"
    assert (workdir / "results" / "digits" / "figures" / "mlp_lr_sweep.png").stat().st_size > 10_000
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "figures")] == ["figures/mlp_lr_sweep.png"]


def test_mnist_from_data_dir(workdir):
    uri, client = store(workdir)
    write_mnist_idx(workdir / "mnist", 300, 50, side=28)
    res = invoke(
        "mlp",
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        workdir / "mnist",
        "--train-size",
        100,
        "--test-size",
        20,
        "--epochs",
        1,
        "--tracking-uri",
        uri,
        "--json",
    )
    assert res.exit_code == 0, res.output
    (run,) = all_runs(client)
    assert run.data.tags["mlhw.dataset"] == "mnist"
    assert json.loads(run.data.tags["mlhw.dataset_sizes"]) == {"train": 100, "test": 20}


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["--lr", "0"], "--lr: Input should be greater than 0"),
        (["--lr", "-1"], "--lr: Input should be greater than 0"),
        (["--batch-size", "0"], "--batch_size: Input should be greater than 0"),
        (["--dataset", "foo"], "--dataset: Input should be 'digits' or 'mnist'"),
        (["--hidden", "40,x"], "--hidden '40,x'"),
        (["--tracking-uri", "sqlite:////nonexistent-dir/x/mlflow.db"], "directory /nonexistent-dir/x/ does not exist"),
        (["--tracking-uri", "./mlruns"], "not supported"),
        (["--dataset", "mnist", "--data-dir", "empty", "--no-download"], "MNIST not found in empty/"),
        (["--device", "cuda:7"], "--device cuda:7"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_logged(workdir, args, culprit):
    uri, client = store(workdir)
    if "--tracking-uri" not in args:
        args = args + ["--tracking-uri", uri]
    res = invoke("mlp", "train", *FAST, *args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], res.stderr
    if (workdir / "mlflow.db").exists():
        assert all_runs(client) == []
    assert not (workdir / "results").exists()


def test_bad_rate_in_sweep(workdir):
    res = invoke("mlp", "sweep", "--lrs", "0.1,-2", *FAST)
    assert res.exit_code == 2 and "--lrs lr: Input should be greater than 0 (got -2.0)" in res.stderr
