"""SQLite stores that passed the store's check and should not have.

A writable database in a folder that is not: SQLite writes its journal beside the database, so every write failed
("unable to open database file") after the plan, exit 1; it must be refused before anything runs, as an unwritable
database file is. Another program's SQLite database: MLflow added its 65 tables to it. And input the store took, or
blamed on the wrong option: an in-memory database, an experiment name longer than MLflow allows."""

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import assert_nothing_created, assert_one_line_error, invoke

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
