"""mlhw.store_template: a new SQLite store made as a copy of the empty database MLflow made before. The oracle is
MLflow itself: a store from the template holds what MLflow's own migrations make, row for row."""

import os
import sqlite3

import mlflow.store.db.utils as db_utils
import pytest

from mlhw import store_template
from mlhw.store import Store


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache of its own, empty (conftest's is shared by the whole session, its template made long ago)."""
    monkeypatch.setenv("MLHW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


def _no_migrations(monkeypatch):
    def refuse(engine):
        raise AssertionError("MLflow ran its migrations: the template was not used")

    monkeypatch.setattr(db_utils, "_initialize_tables", refuse)


def _dump(path, folder):
    """Every table's schema and rows, less what differs between any two new databases: the clock's times, and
    the folder the store is in (its experiment's artifacts sit beside it)."""
    con = sqlite3.connect(path)
    schema = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    rows = {}
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        cur = con.execute(f'SELECT * FROM "{table}" ORDER BY 1')
        names = [d[0] for d in cur.description]
        rows[table] = [
            tuple(
                "<time>" if n in ("creation_time", "last_update_time") else str(v).replace(str(folder), "<folder>")
                for n, v in zip(names, row, strict=True)
            )
            for row in cur.fetchall()
        ]
    con.close()
    return schema, rows


def test_a_store_from_the_template_is_the_database_mlflow_makes(cache, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Store(f"sqlite:///{tmp_path}/a/mlflow.db")  # MLflow's migrations; the template is kept
    assert store_template.template_path().is_file()
    _no_migrations(monkeypatch)
    store = Store(f"sqlite:///{tmp_path}/b/mlflow.db")
    schema_a, rows_a = _dump(tmp_path / "a" / "mlflow.db", tmp_path / "a")
    schema_b, rows_b = _dump(tmp_path / "b" / "mlflow.db", tmp_path / "b")
    assert schema_b == schema_a and len(schema_a) > 50
    assert rows_b == rows_a
    # MLflow made the Default experiment of the copy itself, where it makes it (the working folder), and mlhw's
    names = {e.experiment_id: (e.name, e.artifact_location) for e in store.client.search_experiments()}
    assert names == {
        "0": ("Default", str(tmp_path / "mlruns" / "0")),
        "1": ("mlhw", (tmp_path / "b" / "mlartifacts").as_uri()),
    }
    run = store.client.create_run(store.experiment_id)  # and it takes runs as any store does
    store.client.log_metric(run.info.run_id, "train/loss", 0.5, step=1)
    assert [m.value for m in store.client.get_metric_history(run.info.run_id, "train/loss")] == [0.5]
    assert oct(os.stat(tmp_path / "b" / "mlflow.db").st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("damage", ["garbage", "other revision", "an experiment"])
def test_a_template_mlflow_refuses_or_that_is_not_empty_is_made_again(cache, tmp_path, monkeypatch, damage):
    Store(f"sqlite:///{tmp_path}/first.db")
    template = store_template.template_path()
    good = sqlite3.connect(template).execute("SELECT version_num FROM alembic_version").fetchone()
    if damage == "garbage":
        template.write_bytes(b"not a database at all" * 100)
    else:
        con = sqlite3.connect(template)
        if damage == "other revision":  # the schema of another MLflow: its _verify_schema refuses the copy
            con.execute("UPDATE alembic_version SET version_num = '0123456789ab'")
        else:  # a copy of it would hold an experiment that no one made here
            con.execute("INSERT INTO experiments VALUES (7, 'stray', '/nowhere', 'active', 0, 0, 'default')")
        con.commit()
        con.close()
    store = Store(f"sqlite:///{tmp_path}/second.db")
    assert store.experiment_id == "1"
    assert [e.name for e in store.client.search_experiments()] == ["mlhw", "Default"]
    assert sqlite3.connect(template).execute("SELECT version_num FROM alembic_version").fetchone() == good
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]  # no temporary file left behind


def test_a_database_that_appeared_meanwhile_is_never_replaced(cache, tmp_path):
    Store(f"sqlite:///{tmp_path}/first.db")
    theirs = tmp_path / "theirs.db"
    theirs.write_bytes(b"someone else's")
    assert store_template.copy_to(theirs) is False
    assert theirs.read_bytes() == b"someone else's"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".new")]


def test_a_database_with_runs_is_never_kept_as_the_template(cache, tmp_path):
    store = Store(f"sqlite:///{tmp_path}/used.db", experiment="x")
    store_template.template_path().unlink()
    store.client.create_run(store.experiment_id)
    store_template.save_from(tmp_path / "used.db")
    assert not store_template.template_path().exists()


def test_without_a_usable_cache_a_store_is_made_as_before(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("a file where the cache folder would go")
    monkeypatch.setenv("MLHW_CACHE_DIR", str(tmp_path / "file" / "cache"))
    for name in ("one", "two"):
        assert Store(f"sqlite:///{tmp_path}/{name}.db").experiment_id == "1"


def test_a_uri_with_a_query_leaves_no_stray_copy(cache, tmp_path, monkeypatch):
    """sqlite:///x.db?timeout=30: the path mlhw reads from it is 'x.db?timeout=30', not the file MLflow opens. A copy
    went there (a stray 950 KB file that later runs took for the database) while MLflow migrated x.db."""
    Store(f"sqlite:///{tmp_path}/first.db")
    _no_migrations(monkeypatch)  # the query is not part of the file's name: the copy goes to withq.db
    store = Store(f"sqlite:///{tmp_path}/withq.db?timeout=30")
    assert store.experiment_id == "1"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("withq")) == ["withq.db"]


def test_a_copy_that_cannot_be_opened_is_removed_and_the_template_kept(cache, tmp_path, monkeypatch):
    """A store that fails to open after the copy (a folder SQLite cannot open, a full disk) leaves no copy behind;
    the template stays, since it is not at fault."""
    from mlhw import store as store_module
    from mlhw.errors import MLHWError

    Store(f"sqlite:///{tmp_path}/first.db")

    def fail(uri):
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "new_client", fail)
    with pytest.raises(MLHWError, match="disk full"):
        Store(f"sqlite:///{tmp_path}/second.db")
    assert not (tmp_path / "second.db").exists()
    assert store_template.template_path().exists()


def test_a_copy_mlflow_refuses_costs_the_migrations_not_an_error(cache, tmp_path, monkeypatch):
    """A template that passes mlhw's checks but that MLflow refuses (a future MLflow's rows, damage the checks miss)
    failed the command, and the next one made the template again: every second new store failed. MLflow itself
    refuses here (a copy of an older schema revision); the store it then makes must not be read through the engine
    it kept for the refused copy (it was refused the same way)."""
    real_copy, copies = store_template.copy_to, []

    def copy_an_older_schema(path):
        copies.append(real_copy(path))
        if copies[-1]:
            with sqlite3.connect(path) as con:
                con.execute("UPDATE alembic_version SET version_num = '451aebb31d03'")
        return copies[-1]

    Store(f"sqlite:///{tmp_path}/first.db")
    monkeypatch.setattr(store_template, "copy_to", copy_an_older_schema)
    store = Store(f"sqlite:///{tmp_path}/second.db")
    assert copies == [True] and store.experiment_id == "1"
    assert [e.name for e in store.client.search_experiments()] == ["mlhw", "Default"]
    assert store_template.template_path().exists()  # made again, from the store MLflow made
    monkeypatch.setattr(store_template, "copy_to", real_copy)
    _no_migrations(monkeypatch)
    assert Store(f"sqlite:///{tmp_path}/third.db").experiment_id == "1"


def test_a_template_with_a_damaged_page_is_made_again(cache, tmp_path):
    """Junk over the root page of its experiments table (what a failing disk or a torn write leaves): caught by
    SQLite's quick_check before a copy is made."""
    Store(f"sqlite:///{tmp_path}/first.db")
    template = store_template.template_path()
    con = sqlite3.connect(template)
    (page_size,) = con.execute("PRAGMA page_size").fetchone()
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'experiments'").fetchone()
    con.close()
    with open(template, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(bytes(range(256)) * (page_size // 256))
    assert store_template.copy_to(tmp_path / "copy.db") is False and not (tmp_path / "copy.db").exists()
    store = Store(f"sqlite:///{tmp_path}/second.db")
    assert [e.name for e in store.client.search_experiments()] == ["mlhw", "Default"]
    assert store_template.copy_to(tmp_path / "copy.db") is True  # the template made again is sound


def test_a_uri_with_percent_escapes_names_the_file_sqlalchemy_opens(cache, tmp_path, monkeypatch):
    """sqlite:///a%20b.db: SQLAlchemy opens 'a b.db'. A copy went to 'a%20b.db' while MLflow migrated 'a b.db', and
    every later command looked for 'a%20b.db': a read found no store, a reproduce trained every run again."""
    Store(f"sqlite:///{tmp_path}/first.db")
    _no_migrations(monkeypatch)  # the copy is made where MLflow opens it
    store = Store(f"sqlite:///{tmp_path}/a%20b.db")
    run = store.client.create_run(store.experiment_id)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("a")) == ["a b.db"]
    for again in (Store(f"sqlite:///{tmp_path}/a%20b.db", create=False), Store(f"sqlite:///{tmp_path}/a%20b.db")):
        assert again.client.get_run(run.info.run_id).info.run_id == run.info.run_id
    # and a relative one, made absolute for MLflow, escaped again
    monkeypatch.chdir(tmp_path)
    rel = Store("sqlite:///a%20b.db", read_only=True)
    assert rel.client.get_run(run.info.run_id).info.experiment_id == store.experiment_id


def test_the_writer_loads_mlflow_quieted_before_its_first_call():
    """The relay's writer loads MLflow on a thread while the workers start (mlhw.processes._load_mlflow). It did so by
    importing mlhw.store, which no longer imports MLflow: the writer's first call paid the import, under its lock
    (2.2-2.4 s to the first relayed call, 0.7-1.0 s with MLflow loaded)."""
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "from mlhw import processes\n"
        "processes._load_mlflow()\n"
        "print('mlflow' in sys.modules, logging.getLogger('mlflow').level == logging.WARNING)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def test_copies_left_by_killed_processes_are_removed_once_an_hour_old(cache, tmp_path):
    """A process killed while it wrote a copy (beside the new database, or a template in the cache) left a ~1 MB
    `.<name>.<pid>.<hex>.new` behind; the next copy made there removes those an hour old, never a newer one (a
    process that may still be writing it)."""
    Store(f"sqlite:///{tmp_path}/first.db")
    stores = store_template.template_path().parent
    old = [tmp_path / ".second.db.1.dead.new", stores / f".{store_template.template_path().name}.1.dead.new"]
    old.append(tmp_path / ".second.db.1.dead.new-journal")  # SQLite's, beside the copy it was writing
    kept = [tmp_path / ".second.db.2.busy.new", tmp_path / ".other.db.1.dead.new"]  # young; another database's
    for path in old + kept:
        path.write_bytes(b"half a copy")
    for path in old + kept[1:]:
        os.utime(path, (0, os.path.getmtime(path) - 2 * store_template.STALE_SECONDS))
    Store(f"sqlite:///{tmp_path}/second.db")  # a copy beside it
    store_template.save_from(tmp_path / "first.db")  # (not kept: it holds an experiment) its folder is cleaned
    assert [p.exists() for p in old + kept] == [False, False, False, True, True]


def test_where_mlflow_cannot_tell_its_schema_revision_no_copy_is_made_and_the_template_stays(
    cache, tmp_path, monkeypatch
):
    """The revision comes from a private MLflow function: one that failed raised out of Store (a broken store for a
    lost speed-up), and one that is gone would have had the template thrown away at every new store."""
    Store(f"sqlite:///{tmp_path}/first.db")
    template = store_template.template_path()

    def fails():
        raise AttributeError("_get_latest_schema_revision")

    with monkeypatch.context() as m:  # (MLflow's own check of a database calls it too: patched for ours alone)
        m.setattr(db_utils, "_get_latest_schema_revision", fails)
        assert store_template._schema_revision() is None
    monkeypatch.setattr(store_template, "_schema_revision", lambda: None)
    assert not store_template.copy_to(tmp_path / "second.db") and not (tmp_path / "second.db").exists()
    assert template.is_file()
    assert Store(f"sqlite:///{tmp_path}/third.db").experiment_id == "1"  # made by MLflow's migrations
