"""An empty MLflow database kept in the cache, so that a new SQLite store is a file copy, not MLflow's migrations.

MLflow makes a new SQLite database by creating its tables and running its schema migrations one by one (alembic):
1.0-1.1 s on an idle 2-core CPU (`benchmarks/startup.py`; 1.7 s on average in the test suite, two workers at
once), paid by the first command in every new folder (a first `reproduce`, each test that makes a store), where
opening a copy takes 0.06-0.09 s. What the migrations leave is the same every
time but for one row: the Default experiment (id 0), whose artifact location MLflow takes from the working
directory and whose times from the clock. So the first database made with a given MLflow is copied, less that row,
to `<cache>/stores/` (the fingerprint cache's folder), and the next new store starts as a copy of it, where the
template's schema revision is the one this MLflow makes (else it is made again). MLflow then finds its tables,
checks their revision as it does for any database, and creates the Default experiment itself, as it does for any
database that lacks it.

Best effort, as the fingerprint cache: a template that cannot be written, read or used costs the migrations, never
an error (one that MLflow refuses is removed, and MLflow makes the store). `MLHW_CACHE_DIR` moves the cache; without
a home folder there is none.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import sqlite3
import time
from pathlib import Path

from mlhw import fingerprint_cache


def template_path() -> Path | None:
    """The template for the MLflow and SQLAlchemy installed here (each may change the schema it makes)."""
    cache = fingerprint_cache.cache_path()
    if cache is None:
        return None
    import mlflow
    import sqlalchemy

    return cache.parent / "stores" / f"mlflow-{mlflow.__version__}-sqlalchemy-{sqlalchemy.__version__}.db"


def _schema_revision() -> str | None:
    """The schema revision this MLflow makes and accepts (what its own check of a database compares with). None
    where it cannot be told (an MLflow without that private function, or one where it fails): then no template is
    copied, and the template is not blamed for it."""
    try:
        import mlflow.store.db.utils as db_utils

        return db_utils._get_latest_schema_revision()
    except Exception:  # noqa: BLE001 - a speed-up lost, never an error
        return None


STALE_SECONDS = 3600  # a temporary copy this old was left by a process killed while it wrote it


def _new_file(beside: Path) -> str:
    """An empty file of a fresh name in `beside`'s folder, with the permissions a file made there gets (the
    umask's, as MLflow's own database would have; tempfile's are private). Those of earlier processes that were
    killed while they wrote one (an hour old) are removed first."""
    now = time.time()
    for stale in beside.parent.glob(f".{glob.escape(beside.name)}.*.new*"):  # and its -journal
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > STALE_SECONDS:
                stale.unlink()
    name = beside.parent / f".{beside.name}.{os.getpid()}.{secrets.token_hex(4)}.new"
    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return str(name)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)  # never creates a file


def copy_to(path: Path) -> bool:
    """Make the new database `path` as a copy of the template; False where there is none, or it is not an empty
    database of this MLflow's schema revision (it is removed: the next store MLflow makes is kept instead), or
    `path` appeared meanwhile. The copy is written beside `path` and linked into place, so that
    no process ever opens half a database, and one that another process made in the meantime is never replaced."""
    template = template_path()
    if template is None or not template.is_file():
        return False
    revision = _schema_revision()
    if revision is None:
        return False
    tmp = None
    try:
        with contextlib.closing(_read_only(template)) as con:
            try:
                if con.execute("PRAGMA quick_check").fetchall() != [("ok",)]:  # damaged pages (~1 ms)
                    raise sqlite3.DatabaseError("a damaged database")
                tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"alembic_version", "experiments", "runs"} <= tables:
                    raise sqlite3.DatabaseError("not an MLflow database")
                if con.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]:
                    raise sqlite3.DatabaseError("not an empty MLflow database")
                if con.execute("SELECT version_num FROM alembic_version").fetchall() != [(revision,)]:
                    raise sqlite3.DatabaseError("another MLflow's schema")  # MLflow would refuse the copy
            except sqlite3.Error:  # not a database, or not ours: made again from the next store MLflow makes
                discard()
                return False
            tmp = _new_file(path)
            with contextlib.closing(sqlite3.connect(tmp)) as out:
                con.backup(out)  # a consistent copy even while another process writes a new template
        os.link(tmp, path)  # fails where `path` exists now: that database is used as it is
        return True
    except (OSError, sqlite3.Error):  # a full disk, a folder that takes no links, a file that appeared meanwhile:
        return False  # MLflow makes the store (the template is not at fault: it stays)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def save_from(path: Path) -> None:
    """Keep the database MLflow has just made at `path` (nothing logged to it yet) as the template, less the Default
    experiment. Written to a temporary file and renamed: processes that save one at once each write a whole one."""
    template = template_path()
    if template is None:
        return
    tmp = None
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_file(template)
        with contextlib.closing(_read_only(path)) as con, contextlib.closing(sqlite3.connect(tmp)) as out:
            con.backup(out)
            (runs,) = out.execute("SELECT COUNT(*) FROM runs").fetchone()
            (others,) = out.execute("SELECT COUNT(*) FROM experiments WHERE experiment_id != 0").fetchone()
            if runs or others:  # not a new database (another program made it meanwhile): no template
                return
            out.execute("DELETE FROM experiment_tags")
            out.execute("DELETE FROM experiments")
            out.commit()
        os.replace(tmp, template)
        tmp = None
    except (OSError, sqlite3.Error):
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def discard() -> None:
    """Remove the template (it is not an empty database of this MLflow's, or MLflow refused a copy of it)."""
    path = template_path()
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
