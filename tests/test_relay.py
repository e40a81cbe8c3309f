"""`--jobs N` on a SQLite store: the workers' MLflow calls go through one writer (mlhw.relay).

Oracles: the store read back directly (every write of every process is there, once), MLflow's own
exceptions raised in the caller, and a call interrupted between request and answer not shifting the
answers of later calls (a manager proxy would otherwise read the stale answer as the next one's).
"""

import multiprocessing
import signal
import time

import pytest
from helpers import fake_relay_manager, relay_writer, runs_of
from mlflow.exceptions import MlflowException

from mlhw.relay import RelayedClient, RelayManager


@pytest.fixture
def relay(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    manager = RelayManager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        yield uri, manager.Relay(uri)
    finally:
        manager.shutdown()


def test_processes_writing_at_once_through_the_relay_lose_nothing(relay):
    uri, proxy = relay
    client = RelayedClient(proxy)
    exp = client.create_experiment("relay")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=relay_writer, args=(proxy, exp, 60, f"w{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    direct, runs = runs_of(uri, "relay")  # read back without the relay
    assert sorted(r.info.run_name for r in runs) == ["w0", "w1", "w2"]
    for r in runs:
        assert r.info.status == "FINISHED" and r.data.tags["at"] == "59"
        history = direct.get_metric_history(r.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == list(range(60))


def test_mlflow_errors_reach_the_caller_as_mlflow_errors(relay):
    _, proxy = relay
    client = RelayedClient(proxy)
    with pytest.raises(MlflowException, match="nope"):
        client.get_run("nope")
    assert client.get_experiment_by_name("absent") is None  # the connection still works after an error
    with pytest.raises(AttributeError):
        client._private  # noqa: B018 - private names are not relayed (copy and pickle probe them)


def test_a_call_interrupted_before_its_answer_does_not_shift_later_answers():
    manager = fake_relay_manager()
    client = RelayedClient(manager.FakeRelay())
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(KeyboardInterrupt):
            client.slow(1.0)  # SIGTERM/Ctrl-C arrive while the worker waits for the answer
        time.sleep(1.0)  # the relay finishes the call and answers on the old connection
        assert client.echo(5) == 5  # not "slow"
        assert client.echo("x") == "x"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        manager.shutdown()
