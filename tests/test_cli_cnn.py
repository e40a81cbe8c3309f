"""`mlhw cnn` through the CLI; runs read back from MLflow."""

import json

import pytest
from helpers import invoke, runs_of, write_cifar_batches

SMALL = ["--width", "0.125", "--epochs", "1", "--precision", "fp32"]


def test_train_one_variant(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--epochs", 2, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    client, (run,) = runs_of(uri)
    assert run.info.status == "FINISHED" and rec["run_id"] == run.info.run_id
    assert run.data.params["optimizer"] == "adam" and run.data.params["image_size"] == "67"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]
    assert run.data.metrics["test_acc"] == pytest.approx(rec["test_acc"])
    assert run.data.tags["mlhw.dataset"] == "digits"


def test_compare_all_runs_shared_variant_once(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "all", *SMALL, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [r["variant"] for r in recs] == ["sgd-0.005", "adam-5e-05", "adam-0.005", "adam-5e-05-plain"]
    client, runs = runs_of(uri)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "cnn-compare"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(children) == 4
    shared = [r for r in children if r.data.tags["variant"] == "adam-5e-05"][0]
    assert shared.data.tags["mlhw.part"] == "cnn.abc"
    for p in "abc":
        assert (workdir / "results" / "digits" / "figures" / f"cnn_part_{p}.png").exists()
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert arts == {f"tables/cnn_part_{p}.md" for p in "abc"}
    assert "BN+Dropout" in res.stderr  # the tables go to stderr with --json


def test_paper_configuration_is_one_flag_away(workdir):
    """CIFAR-10 from python batches in --data-dir: the assignment's 5,000 validation images."""
    write_cifar_batches(workdir / "c" / "cifar-10-batches-py", per_batch=1010, n_test=40)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke(
        "cnn",
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        workdir / "c",
        "--image-size",
        67,
        *SMALL,
        "--json",
        "--tracking-uri",
        uri,
    )
    assert res.exit_code == 0, res.output
    client, (run,) = runs_of(uri)
    assert json.loads(run.data.tags["mlhw.dataset_sizes"]) == {"train": 5, "val": 5000, "test": 40}
    assert run.data.params["train_fraction"] == "0.1"  # 10% of the 50 left in the pool


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["train", "--optimizer", "rmsprop"], "--optimizer: Input should be 'sgd' or 'adam'"),
        (["train", "--lr", "0"], "--lr: Input should be greater than 0"),
        (["train", "--lr", "-0.1"], "--lr: Input should be greater than 0"),
        (["train", "--image-size", "50"], "--image-size 50 is too small for AlexNet's topology: the minimum is 67 px"),
        (["train", "--dataset", "cifar10", "--data-dir", "none", "--no-download"], "CIFAR-10 not found in none/"),
        (["train", "--dataset", "imagenet"], "--dataset: Input should be 'digits' or 'cifar10'"),
        (["train", "--precision", "fp8"], "--precision 'fp8'"),
        (["compare", "--part", "d"], "--part 'd'"),
    ],
)
def test_bad_input(workdir, args, culprit):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", *args, "--tracking-uri", uri)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], res.stderr
    assert runs_of(uri)[1] == []
