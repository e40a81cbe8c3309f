"""The fixed cost of a reproduce (what is not training) is cut without changing what is written: each figure is
drawn once (the suite parent logs the report's own PNG), a report reads local artifacts in place, and a dataset
checked before the runs is not read again by the first run."""

import os

import numpy as np
import pytest
import yaml
from helpers import invoke, runs_of, write_mnist_idx
from mlflow.exceptions import MlflowException

import mlhw.plots
from mlhw import data
from mlhw.errors import MLHWError
from mlhw.store import Store, local_artifact_path

SWEEP = {
    "version": 1,
    "suites": {
        "mlp_lr_sweep": {
            "kind": "mlp",
            "part": "mlp.b",
            "base": {"epochs": 1, "train_size": 100, "test_size": 50},
            "grid": {"lr": [0.1, 1.0]},
        },
    },
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}}},
}


def test_each_figure_is_drawn_once_and_the_suite_parent_holds_the_reports_png(workdir, monkeypatch):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(SWEEP))
    saved = []
    real = mlhw.plots.save
    monkeypatch.setattr(mlhw.plots, "save", lambda fig, path, **kw: saved.append(path) or real(fig, path, **kw))
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("reproduce", "--profile", "tiny", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert [p.name for p in saved] == ["mlp_lr_sweep.png"]  # was twice: for the report, then for the parent
    client, runs = runs_of(uri)
    (parent,) = [r for r in runs if r.data.tags.get("mlhw.kind") == "suite"]
    got = client.download_artifacts(parent.info.run_id, "figures/mlp_lr_sweep.png", str(workdir / "dl"))
    png = workdir / "results" / "tiny" / "figures" / "mlp_lr_sweep.png"
    assert open(got, "rb").read() == png.read_bytes() and png.stat().st_size > 10_000


def test_text_artifacts_of_searched_runs_are_read_in_place(workdir, monkeypatch):
    store = Store(f"sqlite:///{workdir}/mlflow.db", "in-place")
    run = store.client.create_run(store.experiment_id, run_name="r")
    store.client.log_text(run.info.run_id, "epoch,loss\n0,1.5\n", "history.csv")
    unseen = store.client.create_run(store.experiment_id, run_name="unseen")
    store.client.log_text(unseen.info.run_id, "theirs\n", "a.txt")
    (found,) = store.search("attributes.run_name = 'r'")
    real = store.client.download_artifacts
    calls = []
    monkeypatch.setattr(store.client, "download_artifacts", lambda *a: calls.append(a) or real(*a))
    assert store.download_text(found.info.run_id, "history.csv") == "epoch,loss\n0,1.5\n"
    assert calls == []  # read where the artifacts lie, no copy through a temporary folder
    assert store.download_text(unseen.info.run_id, "a.txt") == "theirs\n"  # not searched: MLflow's download
    assert len(calls) == 1
    with pytest.raises(MLHWError, match=f"run {found.info.run_id} has no artifact nope.csv"):  # one line, exit 2
        store.download_text(found.info.run_id, "nope.csv")


def test_an_absent_history_is_no_curves_but_a_failing_store_is_an_error(workdir, monkeypatch):
    """The report's reader caught every exception as "an older run without history.csv": a server failing while
    it read a run's history made the curves vanish and Part 2 (c) say "not reached" instead of failing."""
    store = Store(f"sqlite:///{workdir}/mlflow.db", "absent")
    run = store.client.create_run(store.experiment_id, run_name="r").info.run_id
    older = store.client.create_run(store.experiment_id, run_name="older").info.run_id
    store.client.log_text(run, "epoch,loss\n0,1.5\n", "history.csv")
    store.client.log_text(older, "x\n", "report.json")
    store.search("attributes.run_name != ''")  # seen: read in place
    assert store.download_text_if_any(run, "history.csv") == "epoch,loss\n0,1.5\n"
    assert store.download_text_if_any(older, "history.csv") is None
    remote = Store(f"sqlite:///{workdir}/mlflow.db", "absent")  # runs not searched: through MLflow, as on a server
    assert remote.download_text_if_any(older, "history.csv") is None
    assert remote.download_text_if_any(run, "history.csv") == "epoch,loss\n0,1.5\n"

    def down(*_):
        raise MlflowException("503 Service Unavailable")

    monkeypatch.setattr(remote.client, "download_artifacts", down)
    with pytest.raises(MlflowException, match="503"):
        remote.download_text_if_any(run, "history.csv")
    assert remote.download_text_if_any(older, "history.csv") is None  # absent is still absent


def test_local_artifact_path_only_for_local_paths(tmp_path):
    assert local_artifact_path(tmp_path.as_uri()) == tmp_path
    assert local_artifact_path(str(tmp_path)) == tmp_path
    assert local_artifact_path(f"file://localhost{tmp_path}") == tmp_path
    assert local_artifact_path((tmp_path / "a b").as_uri()) == tmp_path / "a b"  # percent-escapes decoded
    for uri in (None, "", "mlflow-artifacts:/1/abc/artifacts", "s3://bucket/1/abc", "relative/mlruns",
                f"file://otherhost{tmp_path}"):  # fmt: skip
        assert local_artifact_path(uri) is None, uri


def test_checked_files_are_read_once_then_again_when_they_change(tmp_path, monkeypatch):
    write_mnist_idx(tmp_path, 60, 12, gz=False, side=28)
    data._last_loaded.clear()
    fp = data.check_dataset("mnist", tmp_path)  # the pre-flight check reads and hashes the files
    first = data.load("mnist", tmp_path)
    real = data._read_bytes
    with monkeypatch.context() as m:
        m.setattr(data, "_read_bytes", lambda path: pytest.fail(f"read again: {path}"))
        assert data.load("mnist", tmp_path) is first  # the run's read: the checked dataset itself
        assert data.dataset_fingerprint("mnist", tmp_path) == fp == first.fingerprint()
    assert data._read_bytes is real
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    st = labels.stat()
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x0b")  # same size, a bad label: only the mtime tells
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(MLHWError, match="label 11"):
        data.load("mnist", tmp_path)  # changed: read (and checked) again, not served from memory
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x01")
    os.utime(labels, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    second = data.load("mnist", tmp_path)
    assert second is not first and np.array_equal(second.train.x, first.train.x)
    assert [d.name for d in data._last_loaded.values()] == ["mnist"]  # one copy per dataset, not one per read


# --- deferred logging loses nothing (found by review: a failed flush dropped its batch) ----------------


@pytest.mark.parametrize("error", [MlflowException("database is locked"), KeyboardInterrupt()])
def test_a_flush_that_fails_keeps_its_batch_for_the_runs_end(tmp_path, monkeypatch, error):
    """The first metrics batch fails once (a locked store, a server error, SIGTERM as Terminated): the run
    still ends (FAILED or KILLED) with its params and the metrics of that batch."""
    import mlhw.lifecycle as lc

    monkeypatch.setattr(lc, "FLUSH_SECONDS", 0.0)
    store = Store(f"sqlite:///{tmp_path}/mlflow.db")
    real, failed = store.client.log_batch, []

    def flaky(run_id, metrics=(), params=(), tags=()):
        if metrics and not failed:
            failed.append(1)
            raise error
        return real(run_id, metrics=metrics, params=params, tags=tags)

    monkeypatch.setattr(store.client, "log_batch", flaky)
    with pytest.raises(type(error)):
        with lc.tracked_run(store, "r", params={"lr": 0.1, "seed": 8}) as log:
            log.set_tags({"mlhw.note": "x"})
            log.log_metrics({"train_loss": 1.0}, step=0)
    run = store.client.get_run(log.run_id)
    assert failed and run.info.status == ("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
    assert run.data.params == {"lr": "0.1", "seed": "8"}
    assert run.data.metrics == {"train/loss": 1.0} and run.data.tags["mlhw.note"] == "x"


def test_a_runs_params_are_in_the_store_as_soon_as_it_opens(tmp_path):
    """A process killed (SIGKILL, out of memory) before its first flush leaves a run that still shows its config."""
    from mlhw.lifecycle import tracked_run

    store = Store(f"sqlite:///{tmp_path}/mlflow.db")
    with tracked_run(store, "r", params={"lr": 0.1, "seed": 8}) as log:
        assert store.client.get_run(log.run_id).data.params == {"lr": "0.1", "seed": "8"}
