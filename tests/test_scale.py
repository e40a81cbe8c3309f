"""Shared tracking server, parallel and Ray executors, concurrent invocations, killed and failing workers.

A real `mlflow server` (SQLite backend, local artifact root, 127.0.0.1, a free port) is started once
for this module; each test uses its own experiment so that tests do not see each other's runs.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from helpers import assert_one_line_error, free_port, local_server, runs_of, wait_for
from scale_common import args, finished_per_hash, mlhw_process, wait_for_running, write_project
from typer.testing import CliRunner

from mlhw.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def server_root(tmp_path_factory):
    """The local server's folder: its store is server.db there."""
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server(server_root):
    with local_server(server_root) as uri:
        yield uri


@pytest.fixture
def project(workdir):
    return write_project(workdir)


def test_jobs_2_against_a_live_server(server, project):
    exp = f"jobs-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--jobs", 2))
    assert res.exit_code == 0, [x for x in res.stderr.splitlines() if "failed" in x or "Error" in x]
    client, runs = runs_of(server, exp)
    counts = finished_per_hash(runs)
    assert len(counts) == 5 and set(counts.values()) == {1}  # 2 rates + 2 variants + 1 svm, once each
    cnn = [r for r in runs if r.data.tags.get("mlhw.kind") == "cnn"][0]
    assert [m.step for m in client.get_metric_history(cnn.info.run_id, "val/acc")] == [1]
    assert {a.path for a in client.list_artifacts(cnn.info.run_id)} == {"history.csv"}
    assert len({r.data.tags["mlhw.worker"] for r in runs if r.data.tags["mlhw.kind"] != "suite"}) == 2  # 2 workers
    assert sum(r.data.tags["mlhw.kind"] == "suite" for r in runs) == 3 and all(
        r.info.status == "FINISHED" for r in runs
    )
    assert (project / "results" / "small" / "REPORT.md").exists()
    assert "View run" not in res.output  # MLflow's own two lines per ended run, among the progress lines
    again = runner.invoke(app, args(server, exp, "--jobs", 2))
    assert again.exit_code == 0 and again.stderr.startswith("up to date: 5 runs, profile small")
    assert len(runs_of(server, exp)[1]) == len(runs)


def test_ray_executor_against_a_live_server(server, project):
    exp = f"ray-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--executor", "ray", "--only", "cnn_optimizers", "--only", "svm_soft"))
    assert res.exit_code == 0, res.output
    _, runs = runs_of(server, exp)
    assert len(finished_per_hash(runs)) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags["mlhw.worker"] for r in runs}) >= 1


def test_ray_progress_says_a_unit_started_when_its_task_starts(server, project, monkeypatch):
    """On a cluster of one CPU the units run one after another: each `start` line comes when its task starts (not
    two ahead of the ends), and a unit's time is its own. Every unit was said `start` as it was sent,
    and timed from then (on the 2-core machine the ci profile's theory: `done: theory (19.4 s)` for its 4.5 s)."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # ray.init sets its own SIGTERM handler (it exits) in this process: put back after, as mlhw's connect_ray does
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        exp = f"ray-progress-{uuid.uuid4().hex[:6]}"
        res = runner.invoke(
            app, args(server, exp, "--executor", "ray", "--only", "cnn_optimizers", "--only", "svm_soft")
        )
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, handler)
    assert res.exit_code == 0, res.output
    lines = [x for x in res.stderr.splitlines() if re.match(r"\[runs? [\d-]+ of 3\] (start|done)", x)]
    assert len(lines) == 6, lines
    # one at a time: the next task's start may be said just before the end of the one it followed, never two ahead
    in_flight = [sum(1 if " start " in x else -1 for x in lines[: k + 1]) for k in range(len(lines))]
    assert max(in_flight) <= 2 and in_flight[-1] == 0, lines
    seconds = [float(re.search(r"\((\d+\.\d) s;", x).group(1)) for x in lines if " done: " in x]
    run_line = next(x for x in res.stderr.splitlines() if x.startswith("ran 3 of 3 runs in "))
    total = float(re.search(r"in (\d+\.\d) s", run_line).group(1))
    assert sum(seconds) <= total + 1, (seconds, total)  # one after another: no unit's time holds another's


def test_a_failed_ray_task_says_what_it_raised(monkeypatch):
    """A task that raised outside work()'s own handling (mlhw missing on a node: the task's function does not
    unpickle) failed its unit with Ray's first line alone: the task's name and process, in terminal colours
    (`Ray task failed: RayTaskError(ModuleNotFoundError): \\x1b[36mray::work()\\x1b[39m (pid=7, ip=10.0.0.5)`)."""
    import types

    from ray.exceptions import RayTaskError, WorkerCrashedError

    from mlhw import executors

    cause = ModuleNotFoundError("No module named 'mlhw'")
    failure = RayTaskError(
        "work",
        'Traceback (most recent call last):\nModuleNotFoundError: No module named "mlhw"',
        cause,
        pid=7,
        ip="10.0.0.5",
    ).as_instanceof_cause()

    class Cluster:  # ray, as the executor uses it, whose one task raised `failure`
        def is_initialized(self):
            return True

        def remote(self, **_):
            return lambda fn: types.SimpleNamespace(remote=lambda *a: "ref")

        def wait(self, refs, num_returns=1, timeout=None):
            return list(refs)[:1], list(refs)[1:]

        def get(self, ref):
            raise failure

    monkeypatch.setattr(executors, "import_ray", Cluster)
    monkeypatch.setattr(executors.RayEvents, "open", classmethod(lambda cls: None))
    ray_executor = executors.RayExecutor(None, executors.Settings("http://127.0.0.1:9", "x", device="cpu"), "auto")
    unit = [types.SimpleNamespace(name="svm_soft (digits, 3 vs 8)", parent=None, to_dict=dict)]
    [result] = ray_executor.run([unit], lambda ev: None)
    assert "ModuleNotFoundError: No module named 'mlhw'" in result.error and "\x1b" not in result.error, result.error
    assert "(pid=7, ip=10.0.0.5)" in result.error, result.error
    crashed = executors.ray_task_failure(WorkerCrashedError())
    assert crashed.startswith("Ray task failed: WorkerCrashedError: The worker died"), crashed


def test_jobs_2_on_sqlite_write_through_one_writer(project):
    """No server: the workers' writes go through the parent's relay; the store read back directly has every
    config finished once, by two worker processes, and a second reproduce finds nothing to do."""
    # An absolute URI: MLflow caches a store per URI string in a process, and this test runs in pytest's, where
    # an earlier test's "sqlite:///mlflow.db" (another working directory) may still be open.
    uri = f"sqlite:///{project}/mlflow.db"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--jobs", "2", "--tracking-uri", uri])
    assert res.exit_code == 0, [x for x in res.stderr.splitlines() if "failed" in x or "Error" in x]
    client, runs = runs_of(uri)
    counts = finished_per_hash(runs)
    seen = [(r.info.run_name, r.info.status, r.data.tags.get("mlhw.dead")) for r in runs]
    assert len(counts) == 5 and set(counts.values()) == {1}, (seen, res.stderr[-3000:])
    assert len({r.data.tags["mlhw.worker"] for r in runs if r.data.tags["mlhw.kind"] != "suite"}) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    cnn = [r for r in runs if r.data.tags.get("mlhw.kind") == "cnn"][0]
    assert [m.step for m in client.get_metric_history(cnn.info.run_id, "val/acc")] == [1]
    assert {a.path for a in client.list_artifacts(cnn.info.run_id)} == {"history.csv"}  # logged via the relay
    again = runner.invoke(app, ["reproduce", "--profile", "small", "--jobs", "2", "--tracking-uri", uri])
    assert again.exit_code == 0 and again.stderr.startswith("up to date: 5 runs, profile small")


def test_ray_refuses_sqlite(project):
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--executor", "ray"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "needs a tracking server" in res.stderr
    assert "mlflow server --backend-store-uri sqlite:///mlflow.db" in res.stderr
    # the server it suggests starts without MLflow's job runner: 7 idle processes of ~240 MB each, for GenAI jobs
    assert "`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server" in " ".join(res.stderr.split())
    assert not (project / "mlflow.db").exists()


def test_ray_not_installed_is_refused_before_any_run(project, monkeypatch):
    """It was found by the executor, after the suite parent runs existed (they ended FAILED)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--executor", "ray"])
    assert_one_line_error(res, "--executor ray needs Ray")
    assert not (project / "mlflow.db").exists()


@pytest.mark.parametrize(
    "more, culprit",
    [
        (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "--ray-address 127.0.0.1:1: no Ray cluster answers"),
        (["--executor", "ray", "--ray-address", "ray://:10001"], "--ray-address 'ray://:10001': use auto, or a"),
        (["--ray-address", "auto"], "--ray-address auto: only with --executor ray"),
        # ignored in silence: the cluster decides how many tasks run at once
        (["--executor", "ray", "--jobs", "2"], "--jobs 2: only with --executor local"),
        (["--executor", "ray", "--jobs", "auto"], "--jobs auto: only with --executor local"),
    ],
)
def test_a_ray_address_is_checked_before_any_run(project, monkeypatch, more, culprit):
    """ray.init retried a closed port for more than two minutes, after the suite parent runs existed."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "ray" else real(name, *a))
    t0 = time.time()
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", "http://127.0.0.1:9", *more])
    assert_one_line_error(res, culprit)
    assert time.time() - t0 < 10 and not (project / "mlflow.db").exists()


def test_mlhw_jobs_set_for_local_reproductions_does_not_stop_a_ray_one(project, monkeypatch, ray_finds):
    """MLHW_JOBS, set once for every reproduce, is not refused under --executor ray as an explicit --jobs is: the
    command goes on (here to the tracking server's check)."""
    monkeypatch.setenv("MLHW_JOBS", "2")
    res = runner.invoke(
        app, ["reproduce", "--profile", "small", "--tracking-uri", "http://127.0.0.1:9", "--executor", "ray"]
    )
    assert_one_line_error(res, "--tracking-uri http://127.0.0.1:9: server not reachable")


@pytest.fixture
def ray_finds(monkeypatch):
    """What Ray's own search for a cluster on this machine finds (ray._private.services: the address `ray start`
    recorded, and the running instances' GCS addresses), set by the test: not whatever this machine runs now."""
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def finds(recorded=None, running=()):
        monkeypatch.setattr(services, "find_bootstrap_address", lambda temp_dir=None: recorded)
        monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset(running))

    finds()
    return finds


def test_ray_auto_without_a_cluster_is_refused_before_any_run(server, project, ray_finds):
    """README's own example, `--executor ray --ray-address auto`, with no Ray cluster running: the plan printed, the
    suite parent runs were made, then ray.init's ConnectionError ('Could not find any running Ray instance'), a
    traceback, exit 1, the parents left FAILED."""
    exp = f"ray-auto-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--executor", "ray", "--ray-address", "auto"))
    assert_one_line_error(res, "--ray-address auto: no running Ray instance found on this machine", "ray start --head")
    assert runs_of(server, exp, all_lifecycles=True)[1] == [] and not (project / "results").exists()


@pytest.mark.parametrize(
    "env, more, recorded, culprit",
    [
        # ray.init read RAY_ADDRESS where no --ray-address was given, and retried it for minutes (the parents made)
        ("127.0.0.1:1", [], None, "RAY_ADDRESS=127.0.0.1:1: no Ray cluster answers there (Connection refused)"),
        ("127.0.0.1:1", ["--ray-address", "auto"], None, "RAY_ADDRESS=127.0.0.1:1: no Ray cluster answers there"),
        ("nohost", [], None, "RAY_ADDRESS='nohost': use auto, or a cluster's host:port"),
        ("auto", [], None, "RAY_ADDRESS=auto: no running Ray instance found on this machine"),
        # an address Ray takes as it is: the line named no culprit ("'': use auto"; "--executor ray: ' ': ...")
        (None, ["--ray-address", ""], None, "--ray-address '': use auto, or a cluster's host:port"),
        (" ", [], None, "RAY_ADDRESS=' ': use auto, or a cluster's host:port"),
        # the cluster `ray start` recorded, gone since (a machine restarted without `ray stop`)
        (None, ["--ray-address", "auto"], "DEAD", "--ray-address auto: no Ray cluster answers at 127.0.0.1:"),
        (None, [], "DEAD", "--executor ray: no Ray cluster answers at 127.0.0.1:"),
    ],
    ids=[
        *("RAY_ADDRESS", "RAY_ADDRESS over auto", "RAY_ADDRESS no port", "RAY_ADDRESS=auto", "empty", "blank"),
        *("auto stale", "stale"),
    ],
)
def test_the_ray_cluster_ray_would_join_is_checked_before_any_run(
    project, monkeypatch, ray_finds, env, more, recorded, culprit
):
    """Where --ray-address is absent or auto, Ray joins RAY_ADDRESS, else the cluster this machine last started:
    they went unchecked (RAY_ADDRESS=127.0.0.1:1 hung for more than 4 minutes after the parents were made)."""
    if env is not None:
        monkeypatch.setenv("RAY_ADDRESS", env)
    ray_finds(recorded=f"127.0.0.1:{free_port()}" if recorded == "DEAD" else None)
    t0 = time.time()
    res = runner.invoke(
        app, ["reproduce", "--profile", "small", "--tracking-uri", "http://127.0.0.1:9", "--executor", "ray", *more]
    )
    line = assert_one_line_error(res, culprit)
    assert recorded is None or "`ray stop` forgets it" in line
    assert time.time() - t0 < 10 and not (project / "mlflow.db").exists()


def test_no_ray_cluster_and_no_address_starts_a_local_one(project, ray_finds):
    """Nothing to check where Ray starts a local instance: the command goes on (here to the tracking server's check)."""
    res = runner.invoke(
        app, ["reproduce", "--profile", "small", "--tracking-uri", "http://127.0.0.1:9", "--executor", "ray"]
    )
    assert_one_line_error(res, "--tracking-uri http://127.0.0.1:9: server not reachable")


def test_sigterm_while_ray_connects_ends_the_command_before_any_run(server, project, ray_finds, monkeypatch):
    """ray.init sets its own SIGTERM handler while it connects (sys.exit(15)): a SIGTERM then (`timeout`, a CI
    cancel, during a connection that took minutes) left the suite parent runs FAILED, not KILLED, exit 15. It now
    connects before the suite parents exist: exit 143, and no run."""
    import ray

    def init(**_):  # what Ray's handler does with a SIGTERM that lands while it connects
        sys.exit(signal.SIGTERM)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    exp = f"ray-term-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--executor", "ray"))
    assert res.exit_code == 143 and res.stderr.strip().splitlines()[-1].startswith("terminated (SIGTERM)"), res.stderr
    _, runs = runs_of(server, exp, all_lifecycles=True)
    assert runs == [], [(r.info.run_name, r.info.status) for r in runs]


def refused_connection(address: str) -> ConnectionError:
    """What ray.init raises where a cluster from `ray start` (Ray 2.60: token authentication on) is joined by its
    host:port without the token: a ConnectionError whose cause names the token (after ~20 s of retries)."""
    try:
        raise RuntimeError(
            "Failed to connect to GCS. Last connection error: Traceback (most recent call last):\n"
            "ray.exceptions.AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing or "
            "incorrect."
        )
    except RuntimeError as cause:
        try:
            raise ConnectionError(f"Failed to connect to Ray cluster at {address}") from cause
        except ConnectionError as exc:
            return exc


@pytest.mark.parametrize("via_env", [False, True], ids=["--ray-address", "RAY_ADDRESS"])
def test_a_cluster_that_refuses_the_connection_is_one_line_before_any_run(
    server, project, ray_finds, monkeypatch, via_env
):
    """Something answers at the address (the TCP check passes) but Ray does not connect: `ray start --head`'s
    cluster joined by host:port without its token (`RAY_ADDRESS=192.0.2.2:6379 mlhw reproduce --executor ray`), another
    Ray version, another program's port. ray.init raised after the suite parent runs existed: 20 s (minutes at
    another program's port) of Ray's retries, then its traceback, exit 1, the parents left FAILED."""
    import ray

    listening = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listening.getsockname()[1]}"
    calls = []

    def init(address=None, **_):
        calls.append(address)
        raise refused_connection(address or os.environ["RAY_ADDRESS"])

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    if via_env:
        monkeypatch.setenv("RAY_ADDRESS", address)
    exp = f"ray-refused-{uuid.uuid4().hex[:6]}"
    more = [] if via_env else ["--ray-address", address]
    with listening:
        res = runner.invoke(app, args(server, exp, "--executor", "ray", *more))
    culprit = f"RAY_ADDRESS={address}" if via_env else f"--ray-address {address}"
    assert_one_line_error(
        res, f"{culprit}: Ray did not connect: ConnectionError: Failed to connect", "RAY_AUTH_MODE=token"
    )
    assert len(calls) == 1 and runs_of(server, exp, all_lifecycles=True)[1] == []
    assert not (project / "results").exists()


def test_unreachable_server_fails_fast(project):
    t0 = time.time()
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", f"http://127.0.0.1:{free_port()}"])
    assert_one_line_error(res, "--tracking-uri http://127.0.0.1:", "not reachable")
    assert time.time() - t0 < 10
    assert not (project / "results").exists() and not (project / "mlflow.db").exists()


def test_ui_on_a_server_store_prints_the_servers_own_link_and_starts_nothing(server, workdir, monkeypatch):
    """`mlhw ui` with $MLFLOW_TRACKING_URI=http://... started `mlflow ui --backend-store-uri http://...`, which died
    with a model-registry traceback in its log: exit 2, blamed on `--port 5000`. The server is its own UI."""
    from mlhw.store import Store

    experiment = f"ui-{uuid.uuid4().hex[:8]}"
    exp_id = Store(server, experiment).experiment_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    t0 = time.time()
    res = runner.invoke(app, ["ui", "--experiment", experiment])
    assert res.exit_code == 0, res.output
    assert time.time() - t0 < 10  # nothing is started, nor waited for
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith(f"MLflow UI: {server}/#/experiments/{exp_id}/runs?workflowType=machine_learning  (")
    assert "nothing started here" in lines[0] and "--port" not in lines[0]
    assert not (workdir / "mlflow.db").exists() and not (workdir / "mlruns").exists()
    # a --port has nothing to serve: said, not silently dropped
    res = runner.invoke(app, ["ui", "--port", "5001", "--experiment", experiment])
    assert res.exit_code == 0 and "--port 5001 is not used" in res.stdout.splitlines()[0], res.output


def test_a_single_commands_run_left_running_is_ended_by_the_next_command(server, workdir):
    """A single command whose process ended mid-run (the server lost, a SIGKILL) left its run RUNNING for ever: only
    `reproduce` ended dead runs, and a single command's experiment may never see one. The next command ends it."""
    from mlflow import MlflowClient

    experiment = f"single-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", "mlp", "train", "--epochs", "100000", "--tracking-uri", server,
         "--experiment", experiment],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = MlflowClient(server)
    try:

        def running():
            exp = client.get_experiment_by_name(experiment)
            return exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")

        (left,) = wait_for(running, proc, timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert client.get_run(left.info.run_id).info.status == "RUNNING"
    res = runner.invoke(app, ["mlp", "train", "--epochs", "1", "--tracking-uri", server, "--experiment", experiment])
    assert res.exit_code == 0, res.output
    dead = client.get_run(left.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["mlhw.dead"] == "process gone"


def test_a_run_whose_server_did_not_answer_is_not_asked_again_to_end_it(server, workdir, monkeypatch):
    """A server that hangs: each call costs MLflow's retries of a 30 s timeout (93 s), and the failed run was then
    asked three times more to end it (its metrics, error.txt, its status): a unit failed after 281 s, not 93. It is
    left RUNNING, and the next command ends it."""
    from helpers import server_gone
    from mlflow import MlflowClient

    experiment = f"hung-{uuid.uuid4().hex[:8]}"
    asked = []
    real_log_batch = MlflowClient.log_batch

    def gone(self, run_id, *a, **kw):
        asked.append("log_batch")
        raise server_gone()

    def terminated(self, run_id, *a, **kw):
        asked.append("set_terminated")

    with monkeypatch.context() as m:
        m.setattr(MlflowClient, "log_batch", gone)
        m.setattr(MlflowClient, "set_terminated", terminated)
        m.setattr(MlflowClient, "log_text", lambda *a, **kw: asked.append("log_text"))
        res = runner.invoke(
            app, ["mlp", "train", "--epochs", "1", "--tracking-uri", server, "--experiment", experiment]
        )
    assert res.exit_code == 1, res.output
    assert res.stderr.strip().splitlines()[-1].startswith(f"error: the tracking store --tracking-uri {server} failed")
    assert asked == ["log_batch"], asked  # the call that failed, and nothing after it
    assert MlflowClient.log_batch is real_log_batch
    client = MlflowClient(server)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "RUNNING"  # for the next command to end (this process lives: by its heartbeat)


def test_a_store_that_failed_mid_reproduction_writes_no_half_report(server, project, monkeypatch):
    """The server hung through a unit's retries, then answered again by the report: the report replaced
    results/<profile>/ with one of half the runs (those not started missing), and each call before it cost MLflow's
    retries. A store that failed a unit is not asked for a report: the command ends with the store's one line."""
    from helpers import server_gone
    from mlflow import MlflowClient

    from mlhw import executors
    from mlhw.lifecycle import PROCESS_TAG, process_id

    experiment = f"halfway-{uuid.uuid4().hex[:8]}"
    real, units = executors.claimer, []

    def second_unit_gone(*a, **kw):
        claim = real(*a, **kw)

        def maybe(store, run):
            units.append(run.info.run_name)
            if len(units) == 2:  # the first unit's run is done; the server goes away, and comes back
                raise server_gone()
            return claim(store, run)

        return maybe

    with monkeypatch.context() as m:
        m.setattr(executors, "claimer", second_unit_gone)
        res = runner.invoke(app, args(server, experiment))
    assert res.exit_code == 1, res.output
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: the tracking store --tracking-uri {server} failed ([Errno 111] Connection refused); runs it was "
        "writing may be left RUNNING (the next `mlhw reproduce` ends them and resumes)"
    )
    assert "compiling the report" not in res.stderr
    assert not (project / "results").exists()
    # the store answers: it resumes, and the report is whole. The runs left RUNNING name this test's process, which
    # lives on, where a real next reproduce is another process, started after the failed one ended, and ends them at
    # once: they are given the tag of a process that has ended (--stale-after 15, its least, waited 15 s here)
    gone = subprocess.Popen(["sleep", "60"])
    ended = process_id(gone.pid)
    gone.kill()
    gone.wait()
    client = MlflowClient(server)
    left = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], "attributes.status = 'RUNNING'"
    )
    assert left and ended, left  # (Linux: /proc tells a process's start)
    for run in left:
        client.set_tag(run.info.run_id, PROCESS_TAG, ended)
    res = runner.invoke(app, args(server, experiment))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (project / "results" / "small" / "tables").glob("*.csv")) == [
        "mlp_lr_sweep.csv", "sgd_vs_adam.csv", "svm.csv"
    ]  # fmt: skip


def test_a_single_command_on_a_server_links_its_experiments_runs(server, workdir):
    """'tracking: http://...:PORT (experiment 'x'); open it in a browser': the server's address opens its experiment
    list, in MLflow 3's GenAI view. The line now gives the experiment's runs, as `mlhw ui` links them."""
    from mlhw.store import Store

    experiment = f"link-{uuid.uuid4().hex[:8]}"
    res = runner.invoke(app, ["svm", "soft", "--tracking-uri", server, "--experiment", experiment])
    assert res.exit_code == 0, res.output
    exp_id = Store(server, experiment, create=False).experiment_id
    assert res.stdout.strip().splitlines()[-1] == (
        f"tracking: {server} (experiment {experiment!r}); its runs: "
        f"{server}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    )


@pytest.mark.parametrize("suffix", ["/api", "/api/2.0/mlflow"])
def test_a_path_after_the_servers_address_is_said_as_such_not_as_a_server_down(server, workdir, suffix):
    """`http://HOST:PORT/api` answered 404 at /health: 'server not reachable (HTTP 404); start one with `mlflow
    server ...`', of a server that was running."""
    res = runner.invoke(app, ["mlp", "train", "--epochs", "1", "--tracking-uri", server + suffix])
    line = assert_one_line_error(res, f"--tracking-uri {server}{suffix}: answers, but is no MLflow server's address")
    assert "HTTP 404" in line and "not reachable" not in line and "start one" not in line
    assert not list(workdir.iterdir())  # nothing made


def test_two_concurrent_invocations_never_run_a_config_twice(server, project):
    exp = f"race-{uuid.uuid4().hex[:6]}"
    a = mlhw_process(project, *args(server, exp))
    b = mlhw_process(project, *args(server, exp))
    outs = [p.communicate(timeout=300) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    _, runs = runs_of(server, exp)
    counts = finished_per_hash(runs)
    assert len(counts) == 5 and set(counts.values()) == {1}, counts
    assert all(r.info.status == "FINISHED" for r in runs)


def test_sigkilled_reproduce_leaves_a_dead_run_that_is_rerun_at_once(server, server_root, project):
    """Its heartbeat is seconds old, but its process is gone on this machine (mlhw.process): the next reproduce,
    started at once, reruns it instead of taking it as running elsewhere (it left it out and exited 0)."""
    exp = f"kill-{uuid.uuid4().hex[:6]}"
    proc = mlhw_process(project, *args(server, exp, "--only", "cnn_optimizers", "--set", "epochs=4"))
    victim_id, _ = wait_for_running(server_root / "server.db", exp, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    client, runs = runs_of(server, exp)
    victim = client.get_run(victim_id)
    assert victim.info.status == "RUNNING"  # nobody could end it
    res = runner.invoke(app, args(server, exp, "--only", "cnn_optimizers", "--set", "epochs=4"))
    assert res.exit_code == 0, res.output
    assert "1 stale" in res.stderr
    dead = client.get_run(victim.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["mlhw.dead"] == "process gone"
    _, runs = runs_of(server, exp)
    counts = finished_per_hash(runs)
    assert len(counts) == 2 and counts[victim.data.tags["mlhw.config_hash"]] == 1
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []  # the dead suite parent too


def test_a_config_that_cannot_run_fails_the_plan_before_any_run(server, project):
    """image_size 50 is below AlexNet's minimum: refused while planning, not inside a worker."""
    exp = f"early-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--jobs", 2, "--set", "cnn_optimizers.image_size=50"))
    assert_one_line_error(res, "--set cnn_optimizers.image_size: must be >= 67 (got 50)")
    assert runs_of(server, exp)[1] == [] and not (project / "results").exists()


def test_a_raising_worker_marks_its_run_failed_and_the_others_finish(server, project, monkeypatch):
    """CNN training raises inside the worker processes once its runs have started."""
    from mlhw import executors

    monkeypatch.setattr(executors, "prepare_worker", __import__("helpers").failing_cnn_worker)
    exp = f"raise-{uuid.uuid4().hex[:6]}"
    res = runner.invoke(app, args(server, exp, "--jobs", 2))
    assert res.exit_code == 1
    assert "injected failure inside the worker" in res.stderr
    client, runs = runs_of(server, exp)
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 2 and all(r.data.tags["mlhw.kind"] == "cnn" for r in failed)
    text = client.download_artifacts(failed[0].info.run_id, "error.txt", str(project / "dl"))
    assert "RuntimeError: injected failure inside the worker" in open(text).read()
    assert len(finished_per_hash(runs)) == 3  # both rates and the SVM
    assert [r for r in runs if r.info.status == "RUNNING"] == []
