"""A run stopped part-way (Ctrl-C, SIGTERM, a hangup; or an exception) keeps the metrics it had logged, up to the
step it reached: its history up to there is in the store (a KILLED AlexNet of 30 epochs held 4), but nothing said
how far it got (no history.csv, no tag). Its tag mlhw.stopped_after_step says it; a finished run has none."""

import pytest

from mlhw.lifecycle import Terminated, tracked_run
from mlhw.store import Store

STOPPED_TAG = "mlhw.stopped_after_step"


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path}/mlflow.db", "mlhw")


def _epochs(log, n):
    for epoch in range(n + 1):  # epoch 0: the initialisation, as an MLP logs it
        log.log_metrics({"train_loss": 1.0 / (epoch + 1), "test_acc": 0.1 * epoch}, step=epoch)


def test_a_stopped_run_says_the_step_it_reached_and_keeps_its_history(store):
    with pytest.raises(KeyboardInterrupt), tracked_run(store, "ctrl-c") as log:
        _epochs(log, 4)
        raise KeyboardInterrupt
    with pytest.raises(Terminated), tracked_run(store, "sigterm") as log:
        _epochs(log, 2)
        raise Terminated()
    with pytest.raises(ValueError), tracked_run(store, "boom") as log:
        _epochs(log, 3)
        raise ValueError("bad")
    with tracked_run(store, "ok") as log:
        _epochs(log, 5)
    with pytest.raises(KeyboardInterrupt), tracked_run(store, "before any epoch"):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), tracked_run(store, "after a summary at step 0") as log:
        _epochs(log, 3)
        log.log_metrics({"best_acc": 0.3}, step=0)  # the furthest step, not the last one logged
        raise KeyboardInterrupt
    runs = {r.info.run_name: r for r in store.search()}
    assert {k: (r.info.status, r.data.tags.get(STOPPED_TAG)) for k, r in runs.items()} == {
        "ctrl-c": ("KILLED", "4"),
        "sigterm": ("KILLED", "2"),
        "boom": ("FAILED", "3"),
        "ok": ("FINISHED", None),
        "before any epoch": ("KILLED", None),
        "after a summary at step 0": ("KILLED", "3"),
    }
    history = store.client.get_metric_history(runs["ctrl-c"].info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
