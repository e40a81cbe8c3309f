"""SQLite stores that passed the store's check and should not have.

A writable database in a folder that is not: SQLite writes its journal beside the database, so every write failed
("unable to open database file") after the plan, exit 1; it must be refused before anything runs, as an unwritable
database file is. Another program's SQLite database: MLflow added its 65 tables to it. And input the store took, or
blamed on the wrong option: an in-memory database, an experiment name longer than MLflow allows."""

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_nothing_created, assert_one_line_error, database_locked, invoke

from mlhw.errors import MLHWError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def locked_folder(workdir):
    """A folder holding a writable SQLite database, in which no file can be created."""
    folder = workdir / "store"
    folder.mkdir()
    with sqlite3.connect(folder / "m.db") as con:
        con.execute("create table experiments (x)")  # as an MLflow store has
    if os.geteuid() == 0:  # root ignores file modes: the immutable attribute stops it
        if subprocess.run(["chattr", "+i", folder], capture_output=True).returncode != 0:
            pytest.skip("no folder can be made unwritable for root here (chattr +i)")
        yield folder
        subprocess.run(["chattr", "-i", folder], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.mark.parametrize("argv", [["mlp", "train", "--epochs", 1], ["theory", "--no-digits"]])
def test_a_writable_database_in_an_unwritable_folder_is_refused_first(locked_folder, argv):
    db = locked_folder / "m.db"
    assert os.access(db, os.W_OK)
    res = invoke(*argv, "--tracking-uri", f"sqlite:///{db}")
    assert_one_line_error(res, "--tracking-uri", str(locked_folder), "journal")


def test_another_programs_sqlite_database_is_refused_and_left_alone(workdir):
    db = workdir / "app.db"
    with sqlite3.connect(db) as con:
        con.execute("create table notes (t text)")
        con.execute("insert into notes values ('keep')")
    before = db.read_bytes()
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", f"sqlite:///{db}")
    assert_one_line_error(res, "--tracking-uri", str(db), "tables: notes", "not an MLflow store")
    assert db.read_bytes() == before


@pytest.mark.parametrize("via", ["option", "variable"])
@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "sqlite:///%3Amemory%3A?timeout=5"])
def test_an_in_memory_database_is_refused(workdir, monkeypatch, via, uri):
    """sqlite:///:memory: was taken: the runs vanished at exit, their artifacts stayed in ./mlartifacts, and the
    command's last line offered `mlhw ui --tracking-uri sqlite:///:memory:` to browse them."""
    if via == "variable":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        res = invoke("mlp", "train", "--epochs", 1)
    else:
        res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", uri)
    where = "$MLFLOW_TRACKING_URI" if via == "variable" else "--tracking-uri"
    assert_one_line_error(res, f"{where} {uri}", "in-memory")
    assert_nothing_created(workdir)
    assert not (workdir / "mlartifacts").exists()


@pytest.mark.parametrize("argv", [["mlp", "train", "--epochs", 1], ["reproduce", "--profile", "ci"]])
def test_an_experiment_name_too_long_for_mlflow_blames_the_option(workdir, argv):
    """A 600-character --experiment: MLflow's "'name' exceeds the maximum length of 500 characters" was said as the
    tracking URI's fault."""
    shutil.copy(REPO / "experiments.yaml", workdir)
    res = invoke(*argv, "--experiment", "x" * 600)
    line = assert_one_line_error(res, "--experiment xxx", "600 characters", "500")
    assert "tracking-uri" not in line and "TRACKING_URI" not in line, line
    assert_nothing_created(workdir)
    from mlflow.utils.validation import MAX_EXPERIMENT_NAME_LENGTH

    from mlhw.store import MAX_EXPERIMENT_NAME

    assert MAX_EXPERIMENT_NAME == MAX_EXPERIMENT_NAME_LENGTH  # mlhw's copy of MLflow's limit


def store_with_artifacts_at(db: Path, location: str) -> str:
    """A SQLite store whose experiment `mlhw` keeps its artifacts at `location` (as `mlflow server` makes it:
    mlflow-artifacts:/1), made without a server."""
    from mlhw.store import sqlite_client

    uri = f"sqlite:///{db}"
    sqlite_client(uri).create_experiment("mlhw", artifact_location="mlflow-artifacts:/1")  # (a template's copy)
    with sqlite3.connect(db) as con:
        con.execute("update experiments set artifact_location = ? where name = 'mlhw'", (location,))
    return uri


@pytest.mark.parametrize("argv", [["mlp", "train", "--epochs", 1], ["reproduce", "--profile", "ci"]])
def test_a_store_last_used_through_a_server_is_refused_before_any_run(workdir, argv):
    """Its experiment's artifacts are at mlflow-artifacts:/1, which only the server resolves: the run trained, then
    failed at its first artifact (exit 1, a FAILED run; reproduce: a FAILED suite parent)."""
    shutil.copy(REPO / "experiments.yaml", workdir)
    uri = store_with_artifacts_at(workdir / "m.db", "mlflow-artifacts:/1")
    res = invoke(*argv, "--tracking-uri", uri)
    assert_one_line_error(res, f"--tracking-uri {uri}", "experiment 'mlhw'", "mlflow-artifacts:/1", "http://")
    assert_nothing_created(workdir, uri)


def test_an_artifact_location_whose_package_is_missing_is_refused_before_any_run(workdir, monkeypatch):
    """s3://... without boto3: a 70-line traceback ending in ModuleNotFoundError after training, the run FAILED."""
    monkeypatch.setitem(sys.modules, "boto3", None)  # not importable, whether or not it is installed
    uri = store_with_artifacts_at(workdir / "m.db", "s3://bucket/x")
    res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", uri)
    assert_one_line_error(res, f"--tracking-uri {uri}", "experiment 'mlhw'", "s3://bucket/x", "boto3", "uv add")
    assert_nothing_created(workdir, uri)


def test_a_servers_own_artifact_store_is_left_to_it():
    """Through the server (an http tracking URI), mlflow-artifacts:/1 is where the artifacts go: not refused."""
    from types import SimpleNamespace

    from mlhw.store import Store

    store = SimpleNamespace(uri="http://127.0.0.1:1", artifact_location="mlflow-artifacts:/1", experiment_name="mlhw")
    Store.check_remote_artifacts(store)
    with pytest.raises(MLHWError, match="foo://x"):  # a scheme MLflow has no repository for
        Store.check_remote_artifacts(SimpleNamespace(uri=store.uri, artifact_location="foo://x", experiment_name="e"))


@pytest.mark.parametrize("lock", ["exclusive", "immediate"])
def test_a_database_locked_by_another_process_is_refused_as_locked(workdir, monkeypatch, lock):
    """Held in an exclusive transaction, it was said to be 'not a SQLite database (database is locked)'; held for
    writing (a reserved lock), the command failed at its first write after 25 s, exit 1."""
    from mlhw import store

    db = workdir / "m.db"
    uri = f"sqlite:///{db}"
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute("create table experiments (x)")  # as an MLflow store has
    before = db.read_bytes()
    monkeypatch.setattr(store, "SQLITE_TIMEOUT", 0.2, raising=False)  # (seconds, not 5)
    holder = sqlite3.connect(db, isolation_level=None)  # another connection: SQLite locks it as another process's
    holder.execute(f"begin {lock}")
    try:
        res = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", uri)
        waited = invoke("mlp", "train", "--epochs", 1, "--tracking-uri", f"{uri}?timeout=0.3")  # the URL's own wait
    finally:
        holder.execute("rollback")
        holder.close()
    line = assert_one_line_error(res, f"--tracking-uri {uri}", f"{db} is locked by another process", "0.2 s")
    assert "not a SQLite database" not in line, line
    assert db.read_bytes() == before and sorted(p.name for p in workdir.iterdir()) == ["m.db"]
    assert_one_line_error(waited, "is locked by another process, which held it past 0.3 s")


@pytest.mark.parametrize("command", ["mlp train", "reproduce"])
def test_a_store_that_fails_before_the_first_run_says_no_run_was_left(workdir, monkeypatch, command):
    """Locked after the checks, before its first run: "runs it was writing may be left RUNNING", with none made."""
    from mlflow import MlflowClient

    def locked(*_a, **_k):
        raise database_locked("INSERT INTO runs")

    monkeypatch.setattr(MlflowClient, "create_run", locked)
    shutil.copy(REPO / "experiments.yaml", workdir)
    uri = f"sqlite:///{workdir}/m.db"
    argv = ["mlp", "train", "--epochs", 1] if command == "mlp train" else ["reproduce", "--profile", "ci"]
    res = invoke(*argv, "--tracking-uri", uri)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"error: the tracking store --tracking-uri {uri} failed (database is locked); it had created no run"
    monkeypatch.undo()
    assert_nothing_created(workdir, uri)


@pytest.mark.parametrize("command", ["mlp train", "reproduce"])
def test_a_full_disk_under_the_artifacts_alone_is_the_stores_failure_in_one_line(workdir, monkeypatch, command):
    """The artifacts' folder on a full disk, the database's with room: a traceback from MLflow's local_artifact_repo
    ending in 'OSError: [Errno 28] No space left on device', exit 1 (a full disk under both said it in one line)."""
    import errno

    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def full(self, local_file, artifact_path=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(workdir / "mlartifacts"))

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", full)
    shutil.copy(REPO / "experiments.yaml", workdir)
    uri = f"sqlite:///{workdir}/m.db"
    argv = ["mlp", "train", "--epochs", 1] if command == "mlp train" else ["reproduce", "--profile", "ci"]
    res = invoke(*argv, "--tracking-uri", uri)
    assert res.exit_code == 1 and "Traceback" not in res.output and "Errno" not in res.output, res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}"
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: the tracking store --tracking-uri {uri} failed (No space left on device); runs "), (
        last
    )
    assert not (workdir / "results").exists()  # (not said as the report's folder failing)
