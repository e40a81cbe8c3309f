"""The MLflow layer's own guarantees: experiment creation races, run endings, refused stores."""

import pytest
from mlflow import MlflowClient

from mlhw.errors import MLHWError
from mlhw.tracking import Tracker


def test_experiment_created_by_another_process_meanwhile_is_used(workdir, monkeypatch):
    uri = f"sqlite:///{workdir}/mlflow.db"
    first = Tracker(uri, "shared")
    real = MlflowClient.get_experiment_by_name
    calls = {"n": 0}

    def late(self, name):  # the first lookup misses it, as if the other process had not committed yet
        calls["n"] += 1
        return None if calls["n"] == 1 else real(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", late)
    second = Tracker(uri, "shared")
    assert second.experiment_id == first.experiment_id and calls["n"] == 2


def test_run_endings(workdir):
    tracker = Tracker(f"sqlite:///{workdir}/mlflow.db")
    with tracker.run("ok") as log:
        log.log_metrics({"x": 1.0}, step=0)
    with pytest.raises(ValueError), tracker.run("boom") as log:
        raise ValueError("bad")
    with pytest.raises(KeyboardInterrupt), tracker.run("ctrl-c"):
        raise KeyboardInterrupt
    runs = {r.info.run_name: r for r in tracker.all_runs()}
    assert {k: r.info.status for k, r in runs.items()} == {"ok": "FINISHED", "boom": "FAILED", "ctrl-c": "KILLED"}
    assert runs["ok"].data.metrics == {"x": 1.0}
    assert "ValueError: bad" in tracker.download_text(runs["boom"].info.run_id, "error.txt")


def test_claims_prefer_the_finished_run(workdir):
    from mlhw.tracking import Claimed

    tracker = Tracker(f"sqlite:///{workdir}/mlflow.db", claim_runs=True)
    with tracker.run("first", tags={"mlhw.config_hash": "h1"}):
        pass
    with pytest.raises(Claimed), tracker.run("second", tags={"mlhw.config_hash": "h1"}):
        pytest.fail("a finished config must not run again")
    assert [r.info.run_name for r in tracker.all_runs()] == ["first"]  # the loser deleted itself


def test_file_store_is_refused(workdir):
    with pytest.raises(MLHWError, match="file store is deprecated"):
        Tracker("file:./mlruns")
