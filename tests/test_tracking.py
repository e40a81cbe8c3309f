"""The tracking layer's own guarantees: the store (URI policy, fast failure, the experiment), the run
lifecycle (FINISHED / FAILED / KILLED, metric sections, standard tags) and the claim protocol."""

import math
import re
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import (
    assert_nothing_created,
    assert_one_line_error,
    database_locked,
    free_port,
    invoke,
    light_spec,
    reproduce_tiny,
    runs_of,
    server_gone,
)
from mlflow import MlflowClient

from mlhw.claims import Claimed, alive, by_identity, claimer, end_stale, mark_dead
from mlhw.errors import MLHWError
from mlhw.lifecycle import (
    HEARTBEAT_TAG,
    IDENTITY_TAG,
    WORKER_TAG,
    Terminated,
    logged_value,
    metric_key,
    metric_name,
    stamp_seconds,
    standard_tags,
    tracked_run,
    utc_stamp,
    worker_id,
)
from mlhw.store import Store, check_uri, moved_artifacts, resolve_uri, sqlite_client, sqlite_path


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds); each test takes its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def store(db, request):
    return Store(db, request.node.name)


# --- the store -----------------------------------------------------------------------------------------


def test_experiment_created_by_another_process_meanwhile_is_used(workdir, monkeypatch):
    uri = f"sqlite:///{workdir}/mlflow.db"
    first = Store(uri, "shared")
    real = MlflowClient.get_experiment_by_name
    calls = {"n": 0}

    def late(self, name):  # the first lookup misses it, as if the other process had not committed yet
        calls["n"] += 1
        return None if calls["n"] == 1 else real(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", late)
    second = Store(uri, "shared")
    assert second.experiment_id == first.experiment_id and calls["n"] == 2


def test_the_default_database_is_the_one_of_the_current_directory_every_time(tmp_path, monkeypatch):
    """MLflow keeps one store per URI string in a process: with the relative default (sqlite:///mlflow.db) a second
    command in another directory of the same process (a notebook, a script calling the CLI twice) read and wrote the
    first directory's database. Two directories, one process, the default URI: each has its own runs."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, n in ((first, 1), (second, 2)):
        folder.mkdir()
        monkeypatch.chdir(folder)
        store = Store(None, "mlhw")
        for i in range(n):
            with tracked_run(store, f"run {i}", {"i": i}, {"mlhw.kind": "svm_soft"}):
                pass
    assert [len(runs_of(f"sqlite:///{d}/mlflow.db")[1]) for d in (first, second)] == [1, 2]


def test_processes_creating_one_new_database_at_once_all_open_it(workdir):
    """Three processes open the same new SQLite store at the same instant (two commands started together in a
    fresh folder): each ran MLflow's migrations on the others' half-made tables and failed ("table
    _alembic_tmp_metrics already exists"), every time in 4 of 4 trials here; now one at a time."""
    import multiprocessing

    from helpers import open_store_at_once

    ctx = multiprocessing.get_context("spawn")
    uri = f"sqlite:///{workdir}/together.db"
    barrier, answers = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=open_store_at_once, args=(uri, barrier, answers)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [answers.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert got == ["ok"] * 3, got
    client = MlflowClient(uri)
    assert [e.name for e in client.search_experiments() if e.name == "together"] == ["together"]
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith("together")) == ["together.db"]


def test_experiment_is_tagged_for_model_development_and_artifacts_sit_beside_the_db(db):
    store = Store(db, "fresh")
    exp = MlflowClient(db).get_experiment(store.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.artifact_location == (sqlite_path(db).parent / "mlartifacts").as_uri()
    client = MlflowClient(db)  # an experiment made by hand (or an older mlhw) gets the tag when opened
    old = client.create_experiment("old")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    Store(db, "old")
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_no_experiment_is_created_when_asked_not_to(db):
    store = Store(db, "absent", create=False)
    assert store.experiment_id is None and store.search() == []
    assert MlflowClient(store.uri).get_experiment_by_name("absent") is None


def test_store_sets_no_global_mlflow_state(db, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    store = Store(db, "global-state")
    with tracked_run(store, "r"):
        assert mlflow.active_run() is None
    assert mlflow.get_tracking_uri() == before
    assert "MLFLOW_TRACKING_URI" not in __import__("os").environ


def test_uri_resolution(workdir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri(None) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///env.db")
    assert resolve_uri(None) == "sqlite:///env.db" and resolve_uri("sqlite:///cli.db") == "sqlite:///cli.db"
    assert str(sqlite_path("sqlite:////tmp/x/m.db")) == "/tmp/x/m.db" and sqlite_path("http://h:1") is None


@pytest.mark.parametrize("uri", ["file:./mlruns", "./mlruns", "mlruns"])
def test_file_store_is_refused(workdir, uri):
    with pytest.raises(MLHWError, match="file store is deprecated"):
        Store(uri)
    assert not (workdir / "mlruns").exists()


@pytest.mark.parametrize(
    "uri, meant",
    [
        ("mlflow.db", "sqlite:///mlflow.db"),  # the default's own file, typed as a path
        ("sqlite://mlflow.db", "sqlite:///mlflow.db"),  # one slash short: SQLAlchemy reads mlflow.db as a host
        ("/tmp/x/m.db", "sqlite:////tmp/x/m.db"),
        ("mlruns", None),  # a folder: the file store, said as before
        ("sqlite:/mlflow.db", None),  # a URL of another form: no bare path (it read sqlite:///sqlite:/mlflow.db)
        ("sqlite:mlflow.db", None),
        ("C:\\runs\\m.db", "sqlite:///C:\\runs\\m.db"),  # a drive letter is no scheme (2b83db5 took it for one)
        ("D:/runs/m.db", "sqlite:///D:/runs/m.db"),
    ],
)
def test_a_database_file_typed_as_a_path_is_answered_with_its_url(workdir, uri, meant):
    """`--tracking-uri mlflow.db` was refused naming only the form, sqlite:///PATH.db: the URL to type was one step
    away, and the message did not take it."""
    with pytest.raises(MLHWError, match="is not supported") as e:
        Store(uri)
    if meant is None:
        assert "for the database file" not in str(e.value)
    else:
        assert str(e.value).endswith(f"; for the database file {meant[len('sqlite:///') :]}: {meant}"), str(e.value)
    assert not list(workdir.iterdir())  # nothing made: no mlflow.db, no mlruns/


@pytest.mark.parametrize(
    "uri, meant",
    [
        ("localhost:5000", "http://localhost:5000"),  # MLflow takes `localhost` for the scheme
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("tracking-host:5000/mlflow", "http://tracking-host:5000/mlflow"),  # a server under a path prefix
        ("host:port", None),  # no port number: no address
        ("C:\\runs\\m.db", None),  # a Windows path: the database file's hint alone
        ("htp://127.0.0.1:5000", None),  # a scheme, misspelt: the form is said
    ],
)
def test_a_server_address_without_its_scheme_is_answered_with_its_url(workdir, monkeypatch, uri, meant):
    """`MLFLOW_TRACKING_URI=localhost:5000` (the address `mlflow server` prints, http:// dropped) was refused naming
    only the form, http://HOST:PORT: the URL to type was one step away."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    res = invoke("mlp", "train", "--epochs", 1)
    line = assert_one_line_error(res, f"$MLFLOW_TRACKING_URI {uri!r} is not supported")
    if meant is None:
        assert "for the server at" not in line
    else:
        assert line.endswith(f"; for the server at {uri}: {meant}"), line
    assert not list(workdir.iterdir())  # nothing made: no mlflow.db, no mlruns/


# Broken stores: each fails in seconds with one line naming --tracking-uri, the URI and the reason.
STORES = {
    "unwritable place": (lambda d: "sqlite:////proc/x.db", ["sqlite:////proc/x.db", "/proc"]),
    "missing folder": (lambda d: f"sqlite:///{d}/nope/x.db", ["nope", "does not exist"]),
    "not a SQLite file": (lambda d: f"sqlite:///{d}/notes.db", ["notes.db", "not a SQLite database"]),
    "a folder": (lambda d: f"sqlite:///{d}/folder.db", ["folder.db", "not a writable file"]),
    "unreachable server": (lambda d: f"http://127.0.0.1:{free_port()}", ["http://127.0.0.1:", "not reachable"]),
    # every run FAILED after training, with a 70-line NotADirectoryError
    "artifacts a file": (lambda d: f"sqlite:///{d}/art/m.db", ["mlartifacts", "is a file, not a folder"]),
}

TINY = {
    "version": 1,
    "suites": {"svm_soft": {"kind": "svm_soft", "part": "svm.q3"}},
    "profiles": {"p": {"defaults": {"dataset": "digits"}}},
}


@pytest.mark.parametrize("command", ["mlp train", "reproduce"])
@pytest.mark.parametrize("case", list(STORES))
def test_broken_store_fails_fast_with_one_line(workdir, case, command):
    (workdir / "notes.db").write_text("these are notes, not a database\n")
    (workdir / "folder.db").mkdir()
    (workdir / "art").mkdir()
    (workdir / "art" / "mlartifacts").write_text("a file where the artifacts go\n")
    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    make_uri, needles = STORES[case]
    uri = make_uri(workdir)
    argv = (
        ["mlp", "train", "--epochs", 1]
        if command == "mlp train"
        else ["reproduce", "--profile", "p", "--file", workdir / "exp.yaml"]
    )
    t0 = time.time()
    res = invoke(*argv, "--tracking-uri", uri)
    # MLflow's own retries would take minutes; 30 s leaves room for a loaded machine's cold imports (6 s alone,
    # 10.4 s seen under load with a 10 s bound)
    assert time.time() - t0 < 30, "a broken store must fail in seconds, not after MLflow's retries"
    assert_one_line_error(res, "--tracking-uri", *needles)
    assert (workdir / "notes.db").read_text() == "these are notes, not a database\n"  # never turned into a db
    assert not (workdir / "nope").exists() and not (workdir / "mlflow.db").exists()
    assert not (workdir / "art" / "m.db").exists()
    assert_nothing_created(workdir)


@pytest.mark.parametrize(
    "uri, why",
    [
        ("http://host:notaport", "Port could not be cast to integer value as 'notaport'"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://exa mple:5000", "URL can't contain control characters"),
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://a\nb:5000", "control characters"),
    ],
    ids=["nonnumeric port", "unclosed IPv6", "space in host", "port out of range", "newline in host"],
)
@pytest.mark.parametrize("source", ["--tracking-uri", "$MLFLOW_TRACKING_URI"])
def test_a_malformed_server_uri_is_one_line(workdir, monkeypatch, uri, why, source):
    """http.client.InvalidURL (nonnumeric port, control characters) and urllib's ValueError (an unclosed IPv6
    address) were tracebacks, exit 1: probe_server caught only a server that did not answer."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    argv = ["reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--dry-run"]
    if source == "--tracking-uri":
        res = invoke(*argv, "--tracking-uri", uri)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        res = invoke(*argv)
    shown = uri if uri.isprintable() else repr(uri)
    assert_one_line_error(res, f"{source} {shown}: not a valid URL (", why)
    assert_nothing_created(workdir)


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "--profile", "ci"],
        ["mlp", "train", "--epochs", 1],
        ["tables", "--profile", "ci"],
        ["check", "--profile", "ci"],
    ],
    ids=["reproduce", "mlp train", "tables", "check"],
)
def test_an_experiment_deleted_in_mlflow_is_refused_before_anything_runs(ci_copy, workdir, argv):
    """A reproduction showed its plan ("12 runs: 12 pending": the deleted experiment's runs are hidden with it), then
    failed on MLflow's 'The experiment 1 must be in the 'active' state' with a traceback; every command now names
    the experiment and how to restore it, and writes nothing."""
    client, runs = runs_of(ci_copy, all_lifecycles=True)
    exp_id = client.get_experiment_by_name("mlhw").experiment_id
    client.delete_experiment(exp_id)
    report = {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()}
    res = invoke(*argv, "--tracking-uri", ci_copy)
    assert_one_line_error(
        res,
        f"--experiment mlhw: deleted in {ci_copy} (experiment id {exp_id})",
        f"`MLFLOW_TRACKING_URI={ci_copy} mlflow experiments restore --experiment-id {exp_id}`",
        "or name another --experiment",
    )
    assert sorted(r.info.run_id for r in runs_of(ci_copy, all_lifecycles=True)[1]) == sorted(
        r.info.run_id for r in runs
    )
    assert {p: p.read_bytes() for p in (workdir / "results").rglob("*") if p.is_file()} == report


def test_a_moved_or_copied_store_is_read_beside_it_and_new_runs_are_refused(workdir):
    """A store made in one folder (mlflow.db and mlartifacts/ beside it), then copied elsewhere and the original
    moved away: MLflow's experiment names the old folder (an absolute path). `mlhw tables` failed with a traceback
    ("Failed to download artifacts from path 'plan.json'") and a new run recreated the old folder; now the copy is
    read from its own mlartifacts/, and a command that would write names the move and exits 2 before any run."""
    import shutil

    first = workdir / "first"
    first.mkdir()
    (first / "exp.yaml").write_text(yaml.safe_dump(TINY))
    uri = f"sqlite:///{first}/mlflow.db"
    res = invoke("reproduce", "--profile", "p", "--file", first / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    copy = workdir / "copy"
    shutil.copytree(first, copy)
    # a copy whose original is still there writes where MLflow says, the original's folder (as it always did)
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", f"sqlite:///{copy}/mlflow.db")
    assert res.exit_code == 0, res.output
    shutil.move(first, workdir / "moved-away")
    curi = f"sqlite:///{copy}/mlflow.db"
    store = Store(curi, create=False)
    assert store.moved == (first / "mlartifacts", copy / "mlartifacts")
    res = invoke("tables", "--profile", "p", "--tracking-uri", curi, "--results-dir", copy / "again")
    assert res.exit_code == 0, res.output
    assert (copy / "again" / "p" / "tables" / "svm.csv").read_text() == (
        workdir / "results" / "p" / "tables" / "svm.csv"
    ).read_text()
    _, before = runs_of(curi, all_lifecycles=True)
    for argv in (
        ["mlp", "train", "--epochs", 1],
        ["reproduce", "--profile", "p", "--file", copy / "exp.yaml", "--force"],
    ):
        res = invoke(*argv, "--tracking-uri", curi)
        assert_one_line_error(res, "--tracking-uri", str(first / "mlartifacts"), "is gone", "move the database back")
    assert not first.exists()  # the old folder is not made again
    assert len(runs_of(curi, all_lifecycles=True)[1]) == len(before)
    # an experiment whose artifacts are elsewhere by design, or beside the database, is not "moved"
    assert moved_artifacts(copy / "mlflow.db", (copy / "mlartifacts").as_uri()) is None
    assert moved_artifacts(copy / "mlflow.db", "s3://bucket/artifacts") is None
    assert moved_artifacts(copy / "mlflow.db", (workdir / "shared-artifacts").as_uri()) is None


@pytest.mark.parametrize("via_env", [True, False])
def test_a_tracking_uri_with_stray_whitespace_is_refused(workdir, monkeypatch, via_env):
    """MLFLOW_TRACKING_URI='sqlite:///mlflow.db ' made a second store ('mlflow.db ', with a space) and reran all."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    uri = f"sqlite:///{workdir}/mlflow.db "
    if via_env:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = [] if via_env else ["--tracking-uri", uri]
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", *args)
    assert_one_line_error(res, "MLFLOW_TRACKING_URI" if via_env else "--tracking-uri", "whitespace")
    assert sorted(p.name for p in workdir.iterdir()) == ["exp.yaml"]


def test_a_sqlite_query_key_its_driver_ignores_is_refused_before_anything_is_written(workdir, monkeypatch):
    """MLFLOW_TRACKING_URI='sqlite:///mlflow.db?mode=ro' printed SQLAlchemy's three-line warning that it ignores
    'mode', then wrote the runs all the same."""
    db = workdir / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}?mode=ro")
    res = invoke("mlp", "train", "--epochs", 1)
    assert_one_line_error(res, "$MLFLOW_TRACKING_URI", "'mode' is no key of SQLite's driver", "only read")
    assert not db.exists() and not (workdir / "mlartifacts").exists()
    res = invoke("tables")  # a command that only reads: refused the same way, without the hint
    assert "only read" not in assert_one_line_error(res, "'mode' is no key")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    res = invoke("svm", "soft", "--tracking-uri", f"sqlite:///file:{db}?mode=ro&uri=true")
    assert_one_line_error(res, "--tracking-uri", "uri=true (a SQLite URI) is not supported")
    assert_nothing_created(workdir)
    # the driver's own keys pass (the store template's test uses ?timeout=30 for real)
    check_uri(f"sqlite:///{db}?timeout=30&check_same_thread=false")
    with pytest.raises(MLHWError, match="'foo' is no key"):
        check_uri(f"sqlite:///{db}?timeout=30&foo=1", writable=False)


def test_a_database_without_its_driver_says_which_package_to_add(workdir):
    """postgresql:// said only "ModuleNotFoundError: No module named 'psycopg'"."""
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", "postgresql://u:p@127.0.0.1:9/db")
    assert_one_line_error(res, "--tracking-uri postgresql://", "database driver (psycopg)", "uv add 'psycopg[binary]'")
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", "mysql://u@127.0.0.1:9/db")
    assert_one_line_error(res, "--tracking-uri mysql://", "database driver (MySQLdb)", "uv add 'mysqlclient'")
    assert_nothing_created(workdir)


def test_check_uri_accepts_a_new_database_in_a_writable_folder(workdir):
    check_uri(f"sqlite:///{workdir}/new.db")
    assert not (workdir / "new.db").exists()  # checking creates nothing
    assert [p.name for p in workdir.iterdir()] == []


# --- the run lifecycle -----------------------------------------------------------------------------------


def test_run_endings(store):
    with tracked_run(store, "ok", params={"lr": 0.1, "hidden": [40]}) as log:
        log.log_metrics({"x": 1.0}, step=0)
    with pytest.raises(ValueError), tracked_run(store, "boom"):
        raise ValueError("bad")
    with pytest.raises(KeyboardInterrupt), tracked_run(store, "ctrl-c"):
        raise KeyboardInterrupt
    with pytest.raises(Terminated), tracked_run(store, "sigterm"):
        raise Terminated()
    runs = {r.info.run_name: r for r in store.search()}
    assert {k: r.info.status for k, r in runs.items()} == {
        "ok": "FINISHED",
        "boom": "FAILED",
        "ctrl-c": "KILLED",
        "sigterm": "KILLED",
    }
    assert runs["ok"].data.metrics == {"x": 1.0}
    assert runs["ok"].data.params == {"lr": "0.1", "hidden": "[40]"}
    assert "ValueError: bad" in store.download_text(runs["boom"].info.run_id, "error.txt")
    for name in ("ok", "ctrl-c", "sigterm"):
        assert "error.txt" not in {a.path for a in store.client.list_artifacts(runs[name].info.run_id)}


def test_sigterm_during_the_finished_write_leaves_the_run_finished(store, monkeypatch):
    """SIGTERM while the run is being marked FINISHED: a SQLite store's call holds it until the write is
    committed, and it is then acted on inside the lifecycle, which ended the finished run KILLED (its work lost:
    the next reproduce trains it again). It stays FINISHED; the signal still stops the process."""
    import os
    import signal

    def on_term(signum, frame):
        raise Terminated()

    inner = store.client._client  # under the UninterruptedClient: what a signal-deferring call wraps
    real = inner.set_terminated

    def terminated_then_sigterm(run_id, status=None, *args, **kwargs):
        real(run_id, status, *args, **kwargs)
        if status == "FINISHED":
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        monkeypatch.setattr(inner, "set_terminated", terminated_then_sigterm)
        with pytest.raises(Terminated), tracked_run(store, "done"):
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    (run,) = store.search()
    assert run.info.status == "FINISHED"


def test_sigterm_right_after_the_run_is_created_still_ends_it_killed(store, monkeypatch):
    """SIGTERM delivered inside create_run, after the run exists (a poller saw it RUNNING and signalled at
    once): it used to escape before the lifecycle's try, leaving the run RUNNING with nobody to end it."""
    import os
    import signal

    def on_term(signum, frame):
        raise Terminated()

    real = store.client.create_run

    def create_run_then_sigterm(*args, **kwargs):
        run = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, before create_run returns
        return run

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        monkeypatch.setattr(store.client, "create_run", create_run_then_sigterm)
        with pytest.raises(Terminated), tracked_run(store, "early"):
            pytest.fail("the body must not run")
    finally:
        signal.signal(signal.SIGTERM, previous)
    (run,) = store.search()
    assert run.info.run_name == "early" and run.info.status == "KILLED"


def test_metrics_are_logged_in_sections(store):
    row = {"train_loss": 0.5, "train_acc": 0.8, "val_acc": 0.7, "test_acc": 0.75, "epoch_seconds": 1.5, "objective": 2}
    with tracked_run(store, "r") as log:
        log.log_metrics(row, step=1)
        log.log_metrics({"train_loss": 0.25, "val_acc": None}, step=2)  # None: not logged
    (run,) = store.search()
    assert run.data.metrics == {
        "train/loss": 0.25,
        "train/acc": 0.8,
        "val/acc": 0.7,
        "test/acc": 0.75,
        "system/epoch_seconds": 1.5,
        "solution/objective": 2.0,
    }
    history = sorted(store.client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]
    for key in row:
        assert metric_key(metric_name(key)) == key
    assert metric_name("train_loss") == "train/loss" and metric_name("epoch_seconds") == "system/epoch_seconds"
    # Q3's soft SVM: by solver, the optimality relations together, the timings as system metrics
    for key, name in [
        ("primal_objective", "primal/objective"),
        ("primal_seconds", "system/primal_seconds"),
        ("dual_objective", "dual/objective"),
        ("qp_dual_n", "qp/dual_n"),
        ("liblinear_relative_difference", "liblinear/relative_difference"),
        ("w_residual", "kkt/w_residual"),
        ("duality_gap", "kkt/duality_gap"),
        ("support_vectors", "solution/support_vectors"),  # the last names outside a section (a walk-through)
        ("objective", "solution/objective"),
        ("q3a_relative_difference", "solution/q3a_relative_difference"),
        ("n_train", "data/n_train"),
    ]:
        assert metric_name(key) == name and metric_key(name) == key
    assert metric_key("objective") == "objective"  # as a store written before the sections holds it


def test_an_infinite_metric_reads_back_as_infinite(store):
    """SQLite has no infinity: MLflow stores +-inf as +-1.797e308. A diverged run's inf loss read back that way
    printed as a 309-digit number in the tables and entered means and spreads as a finite loss."""
    from mlhw.report import Entry, record

    with tracked_run(store, "r") as log:
        log.log_metrics({"train_loss": math.inf, "train_acc": 0.1, "val_loss": -math.inf}, step=1)
    (run,) = store.search()
    assert run.data.metrics["train/loss"] == sys.float_info.max  # what the store gives back
    rec = record(Entry("s", "r", "id", {"kind": "svm_soft"}), run, store)
    assert rec["train_loss"] == math.inf and rec["val_loss"] == -math.inf and rec["train_acc"] == 0.1
    assert logged_value(1e308) == 1e308 and logged_value(-sys.float_info.max) == -math.inf


def test_standard_tags_and_nesting(store):
    tags = standard_tags("mlhw test", "what this run is for")
    with tracked_run(store, "parent", tags=tags) as parent, tracked_run(store, "child", parent=parent.run_id):
        pass
    runs = {r.info.run_name: r for r in store.search()}
    t = runs["parent"].data.tags
    assert t["mlflow.source.name"] == "mlhw test" and t["mlflow.note.content"] == "what this run is for"
    assert t["mlflow.user"] and len(t["mlflow.source.git.commit"]) == 40
    assert t[WORKER_TAG] == worker_id() and abs(stamp_seconds(t[HEARTBEAT_TAG]) - time.time()) < 60
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t[HEARTBEAT_TAG])  # a date in the UI, not 1795808244
    assert runs["child"].data.tags["mlflow.parentRunId"] == runs["parent"].info.run_id


# --- the claim protocol ------------------------------------------------------------------------------------


def test_claims_prefer_the_finished_run(store):
    claim = claimer()
    with tracked_run(store, "first", tags={IDENTITY_TAG: "h1"}, claim=claim):
        pass
    with pytest.raises(Claimed), tracked_run(store, "second", tags={IDENTITY_TAG: "h1"}, claim=claim):
        pytest.fail("a finished config must not run again")
    assert [r.info.run_name for r in store.search()] == ["first"]  # the loser deleted itself
    _, everything = runs_of(store.uri, store.experiment_name, all_lifecycles=True)
    loser = [r for r in everything if r.info.run_name == "second"]
    assert len(loser) == 1 and loser[0].info.status == "KILLED" and loser[0].info.lifecycle_stage == "deleted"


def test_a_competitor_stamped_earlier_but_committed_after_the_first_look_still_owns_it(store, monkeypatch):
    """Two reproduce processes on one busy server both trained a config: a start time is the client's clock when it
    sends the request, so a run stamped earlier can commit after the other's search, and both owned it. The claim
    looks again once such a request has landed; here the competitor commits during that wait."""
    from mlhw import claims

    tags = standard_tags("mlhw test") | {IDENTITY_TAG: "h9"}
    waits = []

    def competitor_lands(seconds):  # the other process's create_run, sent before ours, committed now
        waits.append(seconds)
        mine = next(r for r in store.search() if r.info.run_name == "mine")
        store.client.create_run(
            store.experiment_id,
            run_name="theirs",
            start_time=mine.info.start_time - 5,
            tags=tags | {HEARTBEAT_TAG: str(int(time.time()))},
        )

    monkeypatch.setattr(claims, "_wait", competitor_lands)
    with pytest.raises(Claimed), tracked_run(store, "mine", tags=tags, claim=claimer()):
        pytest.fail("the run stamped earlier owns this identity")
    assert len(waits) == 1 and 0.02 <= waits[0] <= 2.0
    assert [r.info.run_name for r in store.search()] == ["theirs"]


def test_claims_let_the_earliest_live_run_own_an_identity_and_ignore_stale_ones(store):
    stale = store.client.create_run(store.experiment_id, run_name="dead", tags={IDENTITY_TAG: "h2"})
    store.client.set_tag(stale.info.run_id, HEARTBEAT_TAG, str(int(time.time()) - 3600))
    tags = standard_tags("mlhw test") | {IDENTITY_TAG: "h2"}  # a fresh heartbeat, as every mlhw run has
    with tracked_run(store, "mine", tags=tags, claim=claimer(stale_after=60)) as log:
        mine = log.run_id  # the stale RUNNING run does not own it
        with pytest.raises(Claimed), tracked_run(store, "late", tags=tags, claim=claimer()):
            pytest.fail("a live run owns this identity")
    settled = by_identity(store, stale_after=60)
    assert settled["h2"].run_id == mine and settled["h2"].status == "FINISHED"
    assert not alive(store.client.get_run(stale.info.run_id), 60)
    end_stale(store, store.client.get_run(stale.info.run_id))
    dead = store.client.get_run(stale.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["mlhw.dead"] == "stale heartbeat"


def test_a_run_whose_process_ended_on_this_machine_is_dead_at_once(store):
    """Its heartbeat is fresh, but its process is gone (SIGKILL, the OOM killer): a reproduce started within
    STALE_SECONDS took the run as running elsewhere, left it out of its report and exited 0."""
    import subprocess

    from mlhw.lifecycle import PROCESS_TAG, process_gone, process_id

    if process_id() is None:
        pytest.skip("no /proc: a process is known gone by its heartbeat alone")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tag = process_id(child.pid)
        run = store.client.create_run(
            store.experiment_id,
            run_name="its run",
            tags={IDENTITY_TAG: "h3", HEARTBEAT_TAG: str(int(time.time())), PROCESS_TAG: tag},
        )
        assert not process_gone(tag) and alive(store.client.get_run(run.info.run_id), 60)
    finally:
        child.kill()
        child.wait()
    assert process_gone(tag) and not alive(store.client.get_run(run.info.run_id), 60)
    assert by_identity(store, stale_after=60)["h3"].status == "STALE"
    end_stale(store, store.client.get_run(run.info.run_id))
    dead = store.client.get_run(run.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["mlhw.dead"] == "process gone"


def test_a_process_is_known_gone_only_on_its_own_machine():
    from mlhw.lifecycle import process_gone, process_id

    mine = process_id()
    if mine is None:
        pytest.skip("no /proc")
    machine, pid, started = mine.rsplit("/", 2)
    assert not process_gone(mine)  # this process lives
    assert process_gone(f"{machine}/{pid}/{int(started) + 1}")  # its pid, but another process's start: reused
    boot, namespace = machine.split("/")
    other_boot = "0" * len(boot)
    assert not process_gone(f"{other_boot}/{namespace}/{pid}/{int(started) + 1}")  # another machine (or boot)
    assert not process_gone(f"{boot}/pid:[1]/{pid}/{int(started) + 1}")  # another container's pid namespace
    for unknown in (None, "", "host:123", f"{machine}/x/1"):
        assert not process_gone(unknown)  # a store written before the tag, or by someone else: the heartbeat decides


def test_runs_of_dead_workers_are_marked_killed(store):
    a = store.client.create_run(store.experiment_id, run_name="a", tags={WORKER_TAG: "host:1"})
    b = store.client.create_run(store.experiment_id, run_name="b", tags={WORKER_TAG: "host:2"})
    assert mark_dead(store, {"host:1"}, "worker process died") == 1
    assert store.client.get_run(a.info.run_id).info.status == "KILLED"
    assert store.client.get_run(a.info.run_id).data.tags["mlhw.dead"] == "worker process died"
    assert store.client.get_run(b.info.run_id).info.status == "RUNNING"


def test_a_sigterm_inside_a_store_write_lets_the_write_finish_and_the_run_end_killed(db, request):
    """SIGTERM landing inside SQLAlchemy's flush (seen under load: a run's inputs being logged) left that
    transaction's connection alive in the traceback's frames; SQLite then refused every later write ('database is
    locked') and the run could not be marked KILLED. The write is simulated holding SQLite's write lock when the
    signal comes: the store's calls defer the signal until they return, so the lock is gone before KILLED."""
    import os
    import signal
    import sqlite3

    from mlhw import lifecycle

    store = Store(db, request.node.name)
    inner = getattr(store.client, "_client", store.client)  # the MlflowClient inside the signal-deferring wrapper
    real = inner.log_batch

    sent = []

    def log_batch(*args, **kwargs):
        if not sent:  # one SIGTERM, in the first write
            sent.append(1)
            con = sqlite3.connect(sqlite_path(db), timeout=0)
            con.execute("BEGIN IMMEDIATE")  # the write lock, as a flush in progress holds it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs here, on the main thread, unless deferred
            con.rollback()
            con.close()
        return real(*args, **kwargs)

    inner.log_batch = log_batch
    before = signal.signal(signal.SIGTERM, lifecycle.terminate)
    try:
        with pytest.raises(Terminated):
            with tracked_run(store, "cut", params={"lr": 0.1}):
                pass
    finally:
        signal.signal(signal.SIGTERM, before)
        lifecycle.expect_sigterm()  # forget it: later tests in this process
    (run,) = store.client.search_runs([store.experiment_id])
    assert run.info.status == "KILLED" and run.data.params["lr"] == "0.1"  # the write finished, then the stop


def test_a_finished_run_settles_its_identity_whatever_came_after(tmp_path):
    from mlhw.claims import by_identity
    from mlhw.lifecycle import HEARTBEAT_TAG, IDENTITY_TAG
    from mlhw.store import Store

    store = Store(f"sqlite:///{tmp_path}/mlflow.db", "k")
    done = store.client.create_run(store.experiment_id, tags={IDENTITY_TAG: "h"})
    store.client.set_terminated(done.info.run_id, "FINISHED")
    time.sleep(0.01)
    later = store.client.create_run(store.experiment_id, tags={IDENTITY_TAG: "h", HEARTBEAT_TAG: "0"})
    store.client.set_terminated(later.info.run_id, "FAILED")
    s = by_identity(store)["h"]
    assert (s.run_id, s.status) == (done.info.run_id, "FINISHED")


def test_a_reproductions_run_keeps_its_identity_when_a_single_command_reruns_it(tmp_path):
    """A single command rerunning a reproduction's config (its precision forced, say) must not swap the run that
    `mlhw tables` and `mlhw check` read: the results on disk were built from it. A reproduction's own rerun
    (`--force`) does replace it: the newest run a reproduction made settles the identity."""
    store = Store(f"sqlite:///{tmp_path}/mlflow.db", "k")

    def finished(**tags):
        run = store.client.create_run(store.experiment_id, tags={IDENTITY_TAG: "h", **tags})
        store.client.set_terminated(run.info.run_id, "FINISHED")
        time.sleep(0.01)
        return run.info.run_id

    first = finished(**{"mlhw.suites": "cnn_optimizers"})
    finished()  # `mlhw cnn train --precision fp32`: same identity, no suites
    assert by_identity(store)["h"].run_id == first
    forced = finished(**{"mlhw.suites": "cnn_optimizers"})  # `reproduce --force`
    finished()
    assert by_identity(store)["h"].run_id == forced


def test_run_names_tell_apart_runs_that_differ_in_model_size_or_subsets():
    """`cnn train --width 0.125 --image-size 67` and the paper model had one name; so had SVMs on subsets."""
    from mlhw.config import CNNConfig, MulticlassSVMConfig
    from mlhw.labels import data_note

    assert data_note(CNNConfig(dataset="cifar10", epochs=2)) == "cifar10 10%, 2 epochs"  # the preset: no note
    small = CNNConfig(dataset="cifar10", width=0.125, image_size=67, epochs=2)
    assert data_note(small) == "cifar10 10%, width 0.125, 67 px, 2 epochs"
    assert data_note(CNNConfig(dataset="digits", width=1.0)) == "digits, width 1, 10 epochs"
    assert data_note(CNNConfig(dataset="digits", batch_size=32)) == "digits, batch 32, 10 epochs"  # as the MLP's
    # SGD's momentum too: `cnn train --optimizer sgd --momentum 0.9` had plain SGD's name and result line
    sgd = CNNConfig(dataset="digits", optimizer="sgd", momentum=0.9)
    assert data_note(sgd) == "digits, momentum 0.9, 10 epochs"
    assert data_note(MulticlassSVMConfig(dataset="mnist", train_size=50)) == "mnist 50/all"


def test_time_tags_are_utc_dates_and_stores_written_before_still_read():
    """mlhw.heartbeat and mlhw.compiled_at read 1795808244 and 1795808253688 in the UI (unix seconds and ms). They are
    ISO 8601 dates now; the numbers an older store holds are still read, each in its unit."""
    import datetime

    moment = datetime.datetime(2026, 11, 27, 19, 55, 1, 123000, tzinfo=datetime.UTC).timestamp()
    assert utc_stamp(moment) == "2026-11-27T19:55:01.123Z"
    assert stamp_seconds(utc_stamp(moment)) == pytest.approx(moment, abs=1e-3)
    assert stamp_seconds("1795808244") == 1795808244.0  # a heartbeat of before: seconds
    assert stamp_seconds("1795808253688") == pytest.approx(1795808253.688)  # a compiled_at of before: ms
    assert stamp_seconds(None) is None and stamp_seconds("") is None and stamp_seconds("soon") is None
    assert utc_stamp(moment) < utc_stamp(moment + 0.001) < utc_stamp(moment + 86400)  # in time order as text


def test_an_unusable_tracking_uri_is_named_by_where_it_came_from(tmp_path, monkeypatch):
    """No --tracking-uri passed, $MLFLOW_TRACKING_URI set: the error said '--tracking-uri http://...'."""
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    res = invoke("svm", "soft")
    assert_one_line_error(res, f"$MLFLOW_TRACKING_URI http://127.0.0.1:{port}: server not reachable")
    res = invoke("svm", "soft", "--tracking-uri", f"sqlite:///{tmp_path}/nowhere/mlflow.db")
    assert_one_line_error(res, f"--tracking-uri sqlite:///{tmp_path}/nowhere/mlflow.db: folder")


# --- the store failing once open (a server gone, a full disk) -------------------------------------------------------


def disk_full():
    """A full disk as MLflow's SQLAlchemy store raises it: sqlite3's error, SQLAlchemy's around it (its first line
    the autoflush note, then the SQL), MLflow's around that."""
    import sqlite3

    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as e:
            raise sqlalchemy.exc.OperationalError(
                "(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush block)\n"
                "[SQL: INSERT INTO tags]",
                {},
                e,
            ) from e
    except sqlalchemy.exc.OperationalError as e:
        err = MlflowException(message=e)
        err.__cause__ = e
        return err


def test_a_store_that_would_fail_again_is_down_and_a_locked_database_is_not():
    """A locked database is a failure of the moment: it stopped a whole reproduction once store failures did."""
    from mlhw.executors import failed_unit
    from mlhw.store import store_down

    assert store_down(server_gone()) and store_down(disk_full())
    assert not store_down(database_locked()) and not store_down(ValueError("a bug"))
    locked = failed_unit(database_locked(), "sqlite:///m.db")
    assert (
        locked.error == "the tracking store --tracking-uri sqlite:///m.db failed (database is locked)"
        and not locked.store_down
    )
    assert failed_unit(server_gone(), "http://h:1").store_down


def test_ending_a_claimed_run_deletes_it_even_where_its_ending_failed_otherwise():
    """A run another process claimed is ended and deleted; a failed ending that is not the store going down (here a
    locked database, then an odd error) skipped the deletion, and the run stayed listed beside its owner's."""
    from types import SimpleNamespace

    from mlhw.lifecycle import end_quietly

    for failure in (database_locked(), ValueError("odd")):
        deleted = []

        def fail(*_a, failure=failure, **_k):
            raise failure

        client = SimpleNamespace(set_terminated=fail, delete_run=deleted.append)
        log = SimpleNamespace(flush=lambda: None, client=client, run_id="r1")
        assert end_quietly(log, "KILLED", delete=True) and deleted == ["r1"]
    client = SimpleNamespace(set_terminated=lambda *a: (_ for _ in ()).throw(server_gone()), delete_run=deleted.append)
    assert not end_quietly(SimpleNamespace(flush=lambda: None, client=client, run_id="r2"), "KILLED", delete=True)


def test_a_locked_database_in_one_unit_leaves_the_others_to_run(workdir, monkeypatch):
    from mlhw import claims, executors

    (workdir / "exp.yaml").write_text(yaml.safe_dump(THREE_UNITS))
    uri = f"sqlite:///{workdir}/m.db"
    first = []

    def locked_once(*a, **kw):
        real = claims.claimer(*a, **kw)

        def claim(store, run):
            if not first:
                first.append(run)
                raise database_locked()
            return real(store, run)

        return claim

    monkeypatch.setattr(executors, "claimer", locked_once)
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 1, res.output
    n_failed = int(re.search(r", (\d+) failed", summary_line(res))[1])
    assert summary_line(res).startswith(f"ran {5 - n_failed} of 5 runs") and "not started" not in res.stderr, res.stderr


def test_a_store_failure_is_said_by_its_root_cause_and_nothing_else_is_taken_for_one():
    from mlflow.exceptions import MlflowException

    from mlhw.store import import_mlflow, store_failure

    assert store_failure(disk_full()) == "database or disk is full"
    assert store_failure(server_gone()) == "[Errno 111] Connection refused"
    assert store_failure(MlflowException("RESOURCE_EXHAUSTED\nsecond line")) == "RESOURCE_EXHAUSTED"
    # the store answered and refused what mlhw asked: mlhw's bug, whose traceback stays (it read "the store failed")
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    refused = MlflowException("Changing param values is not allowed.", error_code=INVALID_PARAMETER_VALUE)
    assert store_failure(refused) is None
    for other in (ValueError("a bug"), KeyError("x"), sqlite3_error()):  # not the store's: the traceback stays
        assert store_failure(other) is None
    import logging

    import_mlflow()  # MLflow logged each database error with its traceback at ERROR before raising it
    assert logging.getLogger("mlflow.store.db.utils").getEffectiveLevel() > logging.ERROR


def sqlite3_error():
    import sqlite3

    return sqlite3.OperationalError("mlhw's own cache")


def assert_store_failed(res, uri: str) -> str:
    """Exit 1, no traceback, no MLflow words; the last line says the store failed, where and why."""
    assert res.exit_code == 1, (res.exit_code, res.output)
    assert "Traceback" not in res.output and "autoflush" not in res.output and "[SQL" not in res.output, res.output
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the tracking store --tracking-uri {uri} failed (database or disk is full); "), last
    assert "RUNNING" in last, last
    return last


@pytest.mark.parametrize("command", ["mlp train", "reproduce"])
def test_a_store_that_fails_once_open_is_one_line_and_exit_1(workdir, monkeypatch, command):
    """A full disk (or a server gone) at the first write: a reproduction's suite parents, a single command's run.
    MLflow's exception escaped as a traceback of 60 lines, exit 1."""
    from mlhw.lifecycle import RunLogger

    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    uri = f"sqlite:///{workdir}/m.db"

    def full(self):
        raise disk_full()

    monkeypatch.setattr(RunLogger, "flush", full)
    argv = ["mlp", "train", "--epochs", 1] if command == "mlp train" else ["reproduce", "--profile", "p", "--file"]
    res = invoke(*argv, *[workdir / "exp.yaml"] * (command == "reproduce"), "--tracking-uri", uri)
    last = assert_store_failed(res, uri)
    assert ("the next `mlhw reproduce` ends them" in last) == (command == "reproduce"), last


def test_a_store_that_fails_in_a_run_and_in_the_compile_is_one_line_each(workdir, monkeypatch):
    """Each unit the store failed said MLflow's dozen lines (the SQL and its 25 parameters); the compile after it
    ended in a traceback through collect -> by_identity -> search."""
    from mlhw import executors, report
    from mlhw.store import Store

    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    uri = f"sqlite:///{workdir}/m.db"

    def failing_claimer(*a, **kw):
        def claim(store, run):
            raise disk_full()

        return claim

    def full(self, filter_string=""):
        raise disk_full()

    real_write = report.write_report

    def write_on_a_full_disk(*a, **kw):
        monkeypatch.setattr(Store, "search", full)
        return real_write(*a, **kw)

    monkeypatch.setattr(executors, "claimer", failing_claimer)
    monkeypatch.setattr(report, "write_report", write_on_a_full_disk)
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert_store_failed(res, uri)
    failed = [line for line in res.stderr.splitlines() if "failed" in line and not line.startswith(("error", "ran"))]
    assert len(failed) == 1, res.stderr
    flat = " ".join(res.stderr.split())  # (the console wraps the line where the test's folder makes it long)
    assert f"failed: the tracking store --tracking-uri {uri} failed (database or disk is full):" in flat, failed


THREE_UNITS = light_spec("p", epochs=1, train_size=100)


def summary_line(res) -> str:
    return next(line for line in res.stderr.splitlines() if line.startswith("ran "))


def test_a_store_that_fails_in_a_unit_starts_no_unit_after_it(workdir, monkeypatch):
    """A tracking server gone in the middle of a reproduction: each unit after it failed the same way, the next one
    after 2-3 s of MLflow's retries (68 s for the 27 units left of a digits reproduction), each with its own line."""
    from mlhw import executors

    (workdir / "exp.yaml").write_text(yaml.safe_dump(THREE_UNITS))
    uri = f"sqlite:///{workdir}/m.db"
    claims = []

    def gone(*a, **kw):
        def claim(store, run):
            claims.append(run)
            raise server_gone()

        return claim

    monkeypatch.setattr(executors, "claimer", gone)
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 1, res.output
    assert len(claims) == 1, claims  # the first unit's first run; no unit started after it
    # the unit's line and the failed run's at the end; nothing of the units not started
    assert " ".join(res.stderr.split()).count("[Errno 111] Connection refused") == 2, res.stderr  # (lines wrap)
    n_failed = int(re.search(r", (\d+) failed", summary_line(res))[1])
    assert summary_line(res).endswith(f", {5 - n_failed} not started once the tracking store failed"), res.stderr


def test_a_store_that_fails_in_a_worker_starts_no_unit_after_it(workdir, monkeypatch):
    """The same with --jobs 2: the two workers take a unit each, both fail; the third unit is never sent."""
    halted_in_workers(workdir, monkeypatch, "dead_store_worker")


def halted_in_workers(workdir: Path, monkeypatch, initializer: str):
    """THREE_UNITS with --jobs 2 and the worker initializer of helpers named: the two workers take a unit each and
    fail it on the store; the third unit is never sent. Returns the result."""
    from mlhw import executors

    (workdir / "exp.yaml").write_text(yaml.safe_dump(THREE_UNITS))
    uri = f"sqlite:///{workdir}/m.db"
    monkeypatch.setattr(executors, "prepare_worker", getattr(__import__("helpers"), initializer))
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, "--jobs", 2)
    assert res.exit_code == 1, res.output
    starts = [line for line in res.stderr.splitlines() if "] start " in line]
    assert len(starts) == 2, res.stderr
    n_failed = int(re.search(r", (\d+) failed", summary_line(res))[1])
    assert 0 < n_failed < 5 and summary_line(res).endswith(
        f", {5 - n_failed} not started once the tracking store failed"
    ), res.stderr
    return res


def test_a_worker_that_cannot_open_the_store_starts_no_unit_after_it(workdir, monkeypatch):
    """A server gone before the workers' first unit: each unit failed to open the store, said as
    'MLHWError: --tracking-uri ...', and the next one was started all the same."""
    res = halted_in_workers(workdir, monkeypatch, "unopened_store_worker")
    flat = " ".join(res.stderr.split())  # (lines wrap, a long path inside itself)
    assert "failed: --tracking-uri sqlite:" in flat and "server not reachable" in flat and "MLHWError" not in flat


def test_a_store_that_fails_while_it_is_opened_is_said_by_its_root_cause(workdir):
    """A server gone between the probe and the first request: 'MlflowException: API request to http://...
    failed with exception HTTPConnectionPool(...): Max retries exceeded with url: /api/2.0/mlflow/experi' (cut)."""
    from mlhw.store import Store

    class Gone:
        def get_experiment_by_name(self, name):
            raise server_gone()

    uri = f"sqlite:///{workdir}/m.db"
    with pytest.raises(MLHWError) as err:
        Store(uri, client=Gone())
    assert str(err.value) == f"--tracking-uri {uri}: [Errno 111] Connection refused"


def test_a_store_gone_at_the_report_is_not_asked_again_to_end_each_suite_parent(workdir, monkeypatch):
    """The server gone after the runs: the report failed, then each suite parent was ended FAILED in three calls
    (metrics, error.txt, status), each after MLflow's retries: 25-35 s of a dead server's digits reproduction went
    there. One failed ending is enough; the others stay RUNNING, and the next reproduce ends them."""
    from mlflow import MlflowClient

    from mlhw import report

    (workdir / "exp.yaml").write_text(yaml.safe_dump(THREE_UNITS))
    uri = f"sqlite:///{workdir}/m.db"
    calls, down = [], []
    real_end = MlflowClient.set_terminated

    def gone_at_the_report(*a, **kw):
        down.append(True)
        raise server_gone()

    def gone(self, run_id, *a, **kw):
        if not down:  # the runs end as they do
            return real_end(self, run_id, *a, **kw)
        calls.append(run_id)
        raise server_gone()

    with monkeypatch.context() as m:
        m.setattr(report, "write_report", gone_at_the_report)
        m.setattr(MlflowClient, "set_terminated", gone)
        res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 1, res.output
    assert (
        res.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: the tracking store --tracking-uri {uri} failed ([Errno 111] Connection refused); ")
    ), res.stderr
    assert len(calls) == 1, calls  # the first parent's ending failed; the two others were not tried
    parents = [r for r in runs_of(uri)[1] if r.data.tags.get("mlhw.kind") == "suite"]
    assert len(parents) == 3 and all(r.info.status == "RUNNING" for r in parents), parents
    assert MlflowClient.set_terminated is real_end
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output  # (the parents' process is this one, alive: a later process ends them)


def test_a_single_command_whose_store_fails_mid_run_says_what_ends_the_run_it_left(workdir, monkeypatch):
    """A single command keeps no plan: 'runs it was writing may be left RUNNING' said nothing of what ends them (a
    reproduction's says its next run does), and nothing did. The next command on the experiment now does."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir}/m.db"

    def gone(*_a, **_k):
        raise server_gone()

    monkeypatch.setattr(MlflowClient, "log_batch", gone)  # the run exists; its params and metrics go nowhere
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", uri)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: the tracking store --tracking-uri {uri} failed ([Errno 111] Connection refused); runs it was "
        "writing may be left RUNNING (the next mlhw command that trains or solves on this experiment, once the store "
        "is back, marks them FAILED)"
    )


@pytest.mark.parametrize("command", ["tables", "check"])
def test_a_read_only_command_whose_store_fails_says_it_left_nothing_running(workdir, monkeypatch, command):
    """`tables` and `check` write no run, yet said "runs it was writing may be left RUNNING" as a reproduction does."""

    from mlhw.store import Store

    uri = f"sqlite:///{workdir}/m.db"
    sqlite_client(uri).create_experiment("mlhw")

    def failing(*_a, **_k):
        raise disk_full()

    monkeypatch.setattr(Store, "search", failing)
    baseline = Path(__file__).resolve().parents[1] / "results" / "ci"
    extra = ["--baseline", baseline] if command == "check" else ["--results-dir", workdir / "r"]
    res = invoke(command, "--profile", "ci", "--tracking-uri", uri, *extra)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the tracking store --tracking-uri {uri} failed (database or disk is full); it "), (
        last
    )
    assert "may be left RUNNING" not in last and ("writes nothing" in last or "is as it was" in last), last


def test_a_worker_whose_device_fails_fails_each_unit_by_its_device(workdir, monkeypatch):
    """The store is opened first (its failure stops the units after it) but was kept when the device then failed:
    the worker's next unit found a store and no data source nor device, and raised KeyError('source') out of the
    worker, which ended the whole reproduction with a traceback (before, each unit said the device's error)."""
    from mlhw import executors

    (workdir / "exp.yaml").write_text(yaml.safe_dump(THREE_UNITS))
    uri = f"sqlite:///{workdir}/m.db"
    monkeypatch.setattr(executors, "prepare_worker", __import__("helpers").deviceless_worker)
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri, "--jobs", 2)
    assert res.exit_code == 1, res.output
    assert not isinstance(res.exception, KeyError) and "KeyError" not in res.output, res.output
    lines = [line for line in res.stderr.splitlines() if "] failed: " in line]
    assert len(lines) == 3 and all("CUDA is not available on this machine" in line for line in lines), res.stderr
    assert "not started" not in summary_line(res), res.stderr  # not the store's failure: every unit was tried


# --- oracles for mutants the suite let through (hand mutation testing of the tracking layer, round 2) ------------


def test_a_sigterm_before_the_finished_write_commits_ends_the_run_killed(store, monkeypatch):
    """The other side of the test above: SIGTERM lands inside the FINISHED write, before it is committed. The run
    is not finished: it ends KILLED, not left RUNNING for a later reproduce to take for a live one."""
    inner = store.client._client
    real = inner.set_terminated

    def sigterm_before_finished(run_id, status=None, *args, **kwargs):
        if status == "FINISHED":
            raise Terminated()
        return real(run_id, status, *args, **kwargs)

    monkeypatch.setattr(inner, "set_terminated", sigterm_before_finished)
    with pytest.raises(Terminated), tracked_run(store, "almost"):
        pass
    (run,) = store.search()
    assert run.info.status == "KILLED"


def test_a_tag_set_twice_before_a_deferred_write_keeps_its_last_value(store):
    """A run's tags ride in its next batch: set twice before it is sent, the later value is the run's."""
    from mlhw.lifecycle import RunLogger

    run = store.client.create_run(store.experiment_id)
    log = RunLogger(store, run.info.run_id, defer=True)
    log.set_tags({"mlhw.stage": "first", "mlhw.kept": "yes"})
    log.set_tags({"mlhw.stage": "second"})
    log.flush()
    tags = store.client.get_run(run.info.run_id).data.tags
    assert (tags["mlhw.stage"], tags["mlhw.kept"]) == ("second", "yes")


def test_a_flush_keeps_every_batch_within_mlflows_limits_and_sends_everything():
    """MLflow's log_batch takes at most 1000 metrics, 100 params, 100 tags and 1000 items in all (its REST server
    refuses more; a SQLite store does not check): 1000 metrics, 150 params and 150 tags pending at once go as batches
    within those limits, and all of them go."""
    from types import SimpleNamespace

    from mlhw.lifecycle import RunLogger

    batches = []

    class Client:
        def log_batch(self, run_id, metrics=(), params=(), tags=()):
            batches.append((len(metrics), len(params), len(tags)))

    log = RunLogger(SimpleNamespace(client=Client()), "r", defer=True)
    log.log_params({f"p{i}": i for i in range(150)})
    log.set_tags({f"t{i}": i for i in range(150)})
    for step in range(1000):
        log.log_metrics({"train_loss": 1.0}, step)
    log.flush()
    assert all(m <= 1000 and p <= 100 and t <= 100 and m + p + t <= 1000 for m, p, t in batches), batches
    assert [sum(b[i] for b in batches) for i in range(3)] == [1000, 150, 150]


def test_a_search_returns_every_page_of_runs(store, monkeypatch):
    """MLflow gives at most 1000 runs a page: a store of more (a few reproductions of a 30-run sweep) must be read to
    its last page, or the older runs' identities look never run."""
    from types import SimpleNamespace

    from mlflow.store.entities.paged_list import PagedList

    def run(i):
        return SimpleNamespace(info=SimpleNamespace(run_id=f"r{i}", artifact_uri=f"file:///a/{i}"))

    pages = {None: PagedList([run(0), run(1)], "page 2"), "page 2": PagedList([run(2)], "page 3")}
    pages["page 3"] = PagedList([run(3)], None)

    class Client:
        def search_runs(self, experiment_ids, filter_string, max_results, page_token, order_by):
            return pages[page_token]

    monkeypatch.setattr(store, "client", Client())
    assert [r.info.run_id for r in store.search()] == ["r0", "r1", "r2", "r3"]


def test_ending_stale_runs_leaves_another_programs_run_alone(store):
    """A RUNNING run that another program logs to the experiment has no heartbeat for mlhw to read: it is not mlhw's
    to end. mlhw's own RUNNING run with a heartbeat from 1970 is stale, and ends FAILED."""
    from mlhw.plan import end_stale_runs

    foreign = store.client.create_run(store.experiment_id, tags={"team": "theirs"}).info.run_id
    ours = store.client.create_run(store.experiment_id, tags={HEARTBEAT_TAG: "0", IDENTITY_TAG: "h"}).info.run_id
    end_stale_runs(None, store, stale_after=60)
    status = {r.info.run_id: r.info.status for r in store.search()}
    assert status == {foreign: "RUNNING", ours: "FAILED"}


def test_mlhw_tables_reads_its_own_profiles_newest_finished_reproduction(store):
    """`mlhw tables --profile p` takes, per suite, the newest FINISHED suite parent of profile p: not a newer one of
    another profile (its runs are not p's), nor a newer one that a stop or a failure ended (its reproduction never
    made a report)."""
    import json

    from mlhw.report import scope_from_store

    def parent(profile, status, start, identity):
        tags = {"mlhw.kind": "suite", "mlhw.suite": "svm_multiclass", "mlhw.profile": profile}
        run_id = store.client.create_run(store.experiment_id, start_time=start, tags=tags).info.run_id
        plan = [{"suite": "svm_multiclass", "label": "", "identity": identity, "config": {"kind": "svm_multiclass"}}]
        store.client.log_text(run_id, json.dumps(plan), "plan.json")
        store.client.set_terminated(run_id, status)

    parent("p", "FINISHED", 1_000, "ours")
    parent("q", "FINISHED", 2_000, "another profile's")
    parent("p", "KILLED", 3_000, "a stopped reproduction's")
    parent("p", "FAILED", 4_000, "a failed reproduction's")
    assert [e.identity for e in scope_from_store(store, "p").entries] == ["ours"]
    assert [e.identity for e in scope_from_store(store, "q").entries] == ["another profile's"]


def test_a_run_names_a_training_fraction_other_than_the_whole_pool():
    """'cifar10 10%': any fraction below the whole pool is in a run's name (75% as well as 10%), the whole pool none."""
    from mlhw.config import CNNConfig
    from mlhw.labels import data_note

    assert data_note(CNNConfig(dataset="cifar10", train_fraction=0.75, epochs=2)) == "cifar10 75%, 2 epochs"
    assert data_note(CNNConfig(dataset="cifar10", train_fraction=1.0, epochs=2)) == "cifar10, 2 epochs"


def test_a_single_command_spares_a_run_whose_process_still_runs_here(workdir):
    """A single command ended every RUNNING run whose heartbeat was stale, as reproduce does: one of a process still
    running on this machine (suspended by Ctrl-Z, stalled) too, FAILED with `mlhw.dead`, though this command trains
    nothing in its place and that process goes on once resumed. A run whose process is gone is still ended."""
    import subprocess

    from mlhw.lifecycle import PROCESS_TAG, process_id

    uri = f"sqlite:///{workdir}/m.db"
    client = sqlite_client(uri)  # a copy of the empty template, as mlhw makes a store: no migrations
    experiment = client.create_experiment("mlhw")
    gone = subprocess.Popen(["sleep", "60"])
    processes = {"gone": process_id(gone.pid)}
    gone.kill()
    gone.wait()
    suspended = subprocess.Popen(["sleep", "60"])
    try:
        processes["suspended"] = process_id(suspended.pid)
        assert all(processes.values())  # (Linux: /proc tells them)
        stale = utc_stamp(time.time() - 3600)
        runs = {
            name: client.create_run(
                experiment, run_name=name, tags={"mlhw.kind": "mlp", HEARTBEAT_TAG: stale, PROCESS_TAG: process}
            ).info.run_id
            for name, process in processes.items()
        }
        res = invoke("theory", "--no-digits", "--tracking-uri", uri)  # (its digits checks: 4 s more)
        assert res.exit_code == 0, res.output
        assert client.get_run(runs["suspended"]).info.status == "RUNNING"
        assert "mlhw.dead" not in client.get_run(runs["suspended"]).data.tags
        assert client.get_run(runs["gone"]).info.status == "FAILED"
        # and says so (it was ended without a word): the one it ended, and why
        ended = "ended 1 run left RUNNING by a process that is gone or silent: FAILED, tag mlhw.dead says why"
        assert f"{ended} (1 process gone)" in res.stderr, res.stderr
        res = invoke("theory", "--no-digits", "--tracking-uri", uri)
        assert res.exit_code == 0 and "ended" not in res.stderr, res.output  # nothing left to end: nothing said
    finally:
        suspended.kill()
        suspended.wait()


def test_a_single_command_leaves_another_machines_run_until_its_heartbeat_is_long_late(workdir):
    """A single command ended another machine's RUNNING runs 60 s after their last heartbeat, reproduce's default:
    a reproduction there with --stale-after 600 (or a clock a minute off) lost live runs to any `mlhw theory` here,
    and another reproduce trained them again. A single command, which trains nothing in their place, waits
    SINGLE_COMMAND_STALE_SECONDS; a run of this machine whose process is gone is still ended at once."""
    import subprocess

    from mlhw.claims import SINGLE_COMMAND_STALE_SECONDS
    from mlhw.lifecycle import PROCESS_TAG, process_id

    uri = f"sqlite:///{workdir}/m.db"
    client = sqlite_client(uri)  # a copy of the empty template, as mlhw makes a store: no migrations
    experiment = client.create_experiment("mlhw")
    gone = subprocess.Popen(["sleep", "60"])
    here = process_id(gone.pid)
    gone.kill()
    gone.wait()
    elsewhere = "another-machine-id/4242/123456"  # a machine this one knows nothing of
    late = {"late": 300, "long late": SINGLE_COMMAND_STALE_SECONDS + 60}
    runs = {
        name: client.create_run(
            experiment,
            run_name=name,
            tags={"mlhw.kind": "mlp", HEARTBEAT_TAG: utc_stamp(time.time() - seconds), PROCESS_TAG: elsewhere},
        ).info.run_id
        for name, seconds in late.items()
    }
    runs["gone here"] = client.create_run(
        experiment,
        run_name="gone here",
        tags={"mlhw.kind": "mlp", HEARTBEAT_TAG: utc_stamp(time.time() - 5), PROCESS_TAG: here},
    ).info.run_id
    assert invoke("theory", "--no-digits", "--tracking-uri", uri).exit_code == 0
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"late": "RUNNING", "long late": "FAILED", "gone here": "FAILED"}


def test_an_up_to_date_reproduce_says_the_runs_it_ended(workdir):
    """An older reproduction killed on the same store left runs RUNNING: the next reproduce, with nothing to train,
    marked them FAILED under `up to date: 12 runs` alone; the UI then showed failed runs no command had named."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert reproduce_tiny(workdir).exit_code == 0
    uri = f"sqlite:///{workdir}/mlflow.db"
    client, _ = runs_of(uri)
    experiment = client.get_experiment_by_name("mlhw").experiment_id
    stale = utc_stamp(time.time() - 3600)
    ids = [
        client.create_run(experiment, run_name=f"killed {i}", tags={"mlhw.kind": "mlp", HEARTBEAT_TAG: stale})
        for i in range(2)
    ]
    res = reproduce_tiny(workdir)
    assert res.exit_code == 0, res.output
    ended = "ended 2 runs left RUNNING by a process that is gone or silent: FAILED, tag mlhw.dead says why"
    assert f"{ended} (2 stale heartbeat)" in res.stderr and "up to date: 5 runs" in res.stderr, res.stderr
    assert {client.get_run(r.info.run_id).info.status for r in ids} == {"FAILED"}
