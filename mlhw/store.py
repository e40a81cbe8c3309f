"""The tracking store: which URI, whether it can be used, and the experiment runs are logged to.

One `Store` per command: it checks the store before any run exists (an unwritable SQLite path or an
unreachable server fails in seconds with one line), opens the experiment (created tagged as model
training, so the MLflow UI opens on runs, not on GenAI traces) and answers queries (runs by identity,
metric histories, artifacts). It sets no global MLflow state: every call goes through its own client.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import logging
import os
import re
import shlex
import sqlite3
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mlhw.errors import MLHWError, path_errors, undecodable_bytes

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "mlhw"
EXPERIMENT_ENV, EXPERIMENT_ID_ENV = "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"  # MLflow's own variables
MAX_EXPERIMENT_NAME = 500  # MLflow's MAX_EXPERIMENT_NAME_LENGTH (not imported: see new_client)
# MLflow 3's UI opens an experiment in GenAI mode unless it is tagged as model development.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "Runs of mlhw: Intro to ML assignment 4 reproduced (Part 1 MLP, Part 2 AlexNet, SVM "
    "theory). Each suite of a reproduction is a parent run holding its tables and figures.",
}
HTTP_ENV = {  # MLflow's default: 7 retries with exponential backoff (minutes); a dead server should cost seconds
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a report reads ~50 small files: no bar per file on stderr
    # MLflow prints two "View run / View experiment" lines on stdout as each run ends (a get_run more per run):
    # among the progress lines, 2 per run; mlhw prints where the runs are once, at its end (tracking_hint)
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def new_client(uri: str):
    """An MlflowClient. MLflow is imported here, not with this module: `reproduce --jobs N` starts its workers
    before its own first MlflowClient (a new store), 1.4 s sooner on this project's 2-core CPU, 2-2.6 s on an H100
    machine, and a command that fails its checks before it opens a store, or a dry run of a new one, never imports
    it."""
    return import_mlflow().MlflowClient(uri)


def import_mlflow():
    """MLflow, imported, with its loggers quieted after the import that sets their levels: "creating tables..." and
    the like stay out of the terminal."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # MLFLOW_TRACKING_URI=databricks without credentials: "WARNING ... Falling back to legacy authentication" came
    # before mlhw's own one-line error, whose message already carries MLflow's reason
    logging.getLogger("mlflow.utils.databricks_utils").setLevel(logging.ERROR)
    # a database error (a full disk) was logged with its traceback at ERROR by MLflow before MLflow raised it: 1,600
    # lines of stderr for one reproduction; mlhw says each failure once, as its root cause (store_failure)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    return mlflow


# the packages whose errors are the database's or the network's own (the root cause a store failure is said by)
LOW_LEVEL = {"sqlalchemy", "urllib3", "requests", "http", "socket", "ssl", "psycopg", "psycopg2", "pymysql", "MySQLdb"}


# MLflow's codes for a request the store refused on its merits (a changed param, a run that is not there): mlhw's
# own error, whose traceback stays; MLflow's default code (INTERNAL_ERROR) and the server's answers remain failures
REFUSALS = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_STATE",
    "BAD_REQUEST",
    "MALFORMED_REQUEST",
}


class ArtifactsFailed(Exception):  # noqa: N818 - named as what happened, like MLflow's own
    """Logging an artifact failed with an OSError the store's own errors do not cover: the folder of a SQLite store's
    artifacts on a full disk while its database's disk has room ('No space left on device' came as a traceback from
    MLflow's local_artifact_repo, exit 1). A failure of the tracking store, said in one line by store_failure; not
    an OSError, which `reproduce` reads as its report's folder failing."""


class StoreFailed(Exception):  # noqa: N818 - named as what happened, like MLflow's own
    """The tracking store failed in a unit of this command (said on that unit's line, by its root cause, which this
    carries): raised where the command would need the store again (a reproduction's report), to end it with
    store_failure's one line instead of asking a store that failed once more."""


def store_failure(err: BaseException) -> str | None:
    """The root cause, on one line, of a failure of the tracking store itself: an MlflowException, SQLAlchemy's
    OperationalError or a connection error of requests (a server gone, a full disk, a locked database). Its cause
    and context are followed to the first error: MLflow's own message was many lines ('(raised as a result of
    Query-invoked autoflush ...)', the SQL and its 25 parameters, or the URL and urllib3's retries), where the
    culprit is 'database or disk is full' or '[Errno 111] Connection refused'. None for any other exception: a
    programming error keeps its traceback."""
    import sys

    if isinstance(err, ArtifactsFailed | StoreFailed):  # its OSError's words: 'No space left on device'
        return str(err)
    kinds: list[type] = []
    if (mod := sys.modules.get("mlflow.exceptions")) is not None:
        kinds.append(mod.MlflowException)
    if (mod := sys.modules.get("sqlalchemy.exc")) is not None:
        kinds.append(mod.OperationalError)
    if (mod := sys.modules.get("requests.exceptions")) is not None:
        kinds += [mod.ConnectionError, mod.Timeout]
    if not kinds or not isinstance(err, tuple(kinds)):
        return None
    root, e, seen = err, err, {id(err)}
    while True:  # the deepest error of the database or the network: not an unrelated one MLflow handled before
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
        if e is None or id(e) in seen:
            break
        seen.add(id(e))
        if isinstance(e, OSError | sqlite3.Error) or type(e).__module__.split(".")[0] in LOW_LEVEL:
            root = e
    if root is err and getattr(err, "error_code", None) in REFUSALS:
        return None  # the store answered, and refused what mlhw asked (a bug of mlhw's, not a failing store)
    lines = [line.strip() for line in str(root).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(root).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# a SQLite database another process held past SQLite's busy timeout: a failure of the moment, which the next call may
# well pass (a server gone or a full disk fails every call after it)
PASSING_FAILURES = ("database is locked",)


def store_down(err: BaseException) -> bool:
    """Whether `err` is a failure of the tracking store that the next call would meet too (store_failure's, but not a
    locked database): what stops a reproduction's other units, and the endings of the runs it passes through."""
    cause = store_failure(err)
    return cause is not None and not cause.startswith(PASSING_FAILURES)


def server_unanswered(err: BaseException) -> bool:
    """Whether `err` is a tracking server that did not answer (refused, reset, timed out) after MLflow's own retries:
    requests' ConnectionError or Timeout in its chain. Each further call to it costs those retries again: 2-3 s on a
    server gone, 93 s on one that hangs (MLFLOW_HTTP_REQUEST_TIMEOUT 30 s, three tries)."""
    import sys

    mod = sys.modules.get("requests.exceptions")
    if mod is None:
        return False
    e, seen = err, set()
    while e is not None and id(e) not in seen:
        if isinstance(e, mod.ConnectionError | mod.Timeout):
            return True
        seen.add(id(e))
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return False


def resolve_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def resolve_experiment(experiment: str | None) -> str:
    """--experiment, else $MLFLOW_EXPERIMENT_NAME (MLflow's own variable; empty is unset, as for
    $MLFLOW_TRACKING_URI), else mlhw: a user who exported the variable had every run logged to mlhw. MLflow's
    MLFLOW_EXPERIMENT_ID is refused where no --experiment is given, rather than ignored: mlhw names its experiment
    (its workers and its printed commands carry a name), and the runs went to another experiment than the one the
    variable named."""
    if experiment is not None:
        return experiment
    if given_id := os.environ.get(EXPERIMENT_ID_ENV):
        also = f" ({EXPERIMENT_ENV} alone names it)" if os.environ.get(EXPERIMENT_ENV) else ""
        shown = os.fsencode(given_id).decode("utf-8", "backslashreplace")  # (bytes that are not text: \xff)
        raise MLHWError(
            f"{EXPERIMENT_ID_ENV}={shown}: mlhw takes an experiment by name, not by id: unset "
            f"{EXPERIMENT_ID_ENV}{also}, or pass --experiment NAME"
        )
    return os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT


def experiment_words(name: str) -> list[str]:
    """`--experiment NAME` in a command that mlhw prints to be run (`mlhw ui`, `mlhw tables`, `mlhw reproduce`):
    none for mlhw where no variable here names another (the bare command takes it); else given in full, so that the
    command reaches the same experiment in a shell without $MLFLOW_EXPERIMENT_NAME too, and with another one."""
    bare = name == DEFAULT_EXPERIMENT and not os.environ.get(EXPERIMENT_ID_ENV)
    return [] if bare and os.environ.get(EXPERIMENT_ENV) in (None, "", name) else ["--experiment", name]


def named(uri: str, shown: str | None = None) -> str:
    """How an error names the tracking URI: by where it came from, `$MLFLOW_TRACKING_URI` or `--tracking-uri`
    (its default included), so that a user who set the variable and passed no option knows what to fix."""
    where = "$MLFLOW_TRACKING_URI" if uri == os.environ.get("MLFLOW_TRACKING_URI") else "--tracking-uri"
    return f"{where} {shown or uri}"


def not_text(err: BaseException) -> str | None:
    """Where a name's bytes are not text in this locale's encoding (a folder `ünï` under LC_ALL=C with PYTHONUTF8=0,
    a latin-1 name under a UTF-8 locale), Python holds them as lone surrogates, which MLflow's URIs and SQLite cannot
    encode: what to say of it (the name, and the way out), else None. It said `--tracking-uri sqlite:///mlflow.db:
    UnicodeEncodeError: 'utf-8' codec can't encode characters in position 27-28: surrogates not allowed`."""
    if not isinstance(err, UnicodeEncodeError) or not undecodable_bytes(err.object):
        return None
    return undecodable(err.object)


def undecodable(name: str) -> str:
    import sys

    shown = os.fsencode(name).decode("utf-8", "backslashreplace")
    encoding = sys.getfilesystemencoding()
    if encoding.replace("-", "").lower() == "utf8":
        return f"{shown} is not UTF-8 text (its bytes are another encoding's): rename it"
    return (
        f"{shown} is not text in this locale's encoding ({encoding}): run under a UTF-8 locale (LC_ALL=C.UTF-8) or "
        "with PYTHONUTF8=1"
    )


def failed_store(uri: str | None, cause: str) -> str:
    """The one wording of a tracking store that failed, on a unit's line and on the command's last line alike
    ('the tracking store --tracking-uri sqlite:///m.db failed (database or disk is full)'): they said it two ways."""
    return f"the tracking store {named(resolve_uri(uri))} failed ({cause})"


def sqlite_path(uri: str) -> Path | None:
    """The file a sqlite:/// URI names, as SQLAlchemy reads it: its query (`?timeout=30`) is not part of it, and its
    percent-escapes are decoded (sqlite:///a%20b.db is 'a b.db': read as 'a%20b.db', a store made there looked
    empty to every later command, which trained its runs again)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri[len("sqlite:///") :].split("?", 1)[0]))


def client_uri(uri: str) -> str:
    """The URI an MlflowClient gets: a SQLite database's path made absolute. MLflow keeps one store per URI string
    for the life of the process, and a relative one (the default, sqlite:///mlflow.db) reached the database of the
    directory it was first opened in: a second `reproduce` in another directory of the same Python process (a
    notebook, a script calling the CLI twice) read and wrote the first directory's runs."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute() or str(path) == ":memory:":
        return uri
    query = uri.partition("?")[2]
    return f"sqlite:///{urllib.parse.quote(str(path.resolve()))}" + (f"?{query}" if query else "")


def _forget_engine(uri: str) -> None:
    """Close MLflow's cached engine of `uri` (one per URI for the life of the process): after a copy it refused, its
    pooled connection still reads the deleted copy, and the store MLflow then makes would be refused the same way."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
    except Exception:  # noqa: BLE001 - a private MLflow attribute: where it is gone there is nothing cached to close
        pass


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


# the module SQLAlchemy imports for a database URI -> the package that provides it (PyPI's names differ)
DB_DRIVERS = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}


def check_uri(uri: str, writable: bool = True) -> None:
    """Fail fast, before any run exists, on a tracking location that cannot be used (`writable`: for writing too; a
    command that only reads, `check` and `tables`, takes a database it can read: an archived store, a CI artifact, a
    read-only mount)."""
    if uri != uri.strip():  # 'sqlite:///mlflow.db ' made a new store, a file named 'mlflow.db ', and reran all
        raise MLHWError(
            f"{named(uri, repr(uri))}: leading or trailing whitespace (a new store would be made of that name)"
        )
    path = sqlite_path(uri)
    if path is not None and str(path) == ":memory:":  # its runs vanished at exit, their artifacts stayed behind
        raise MLHWError(
            f"{named(uri)}: an in-memory database keeps nothing past this command (its runs would vanish at exit, "
            "their artifacts stay in ./mlartifacts): name a file, sqlite:///PATH.db"
        )
    if path is not None:
        _check_sqlite_query(uri, writable)
        with path_errors(named(uri), path.parent):  # (a folder on the way not searchable, a name too long)
            _check_sqlite(uri, path, writable)
    elif is_server(uri):
        probe_server(uri)
    elif not uri.startswith(("databricks", "postgresql", "mysql", "mssql")):
        meant = _sqlite_meant(uri)
        server = _server_meant(uri)
        raise MLHWError(
            f"{named(uri, repr(uri))} is not supported: use sqlite:///PATH.db (the file store is "
            f"deprecated in MLflow 3) or http://HOST:PORT of an MLflow server"
            + (f"; for the database file {meant[len('sqlite:///') :]}: {meant}" if meant else "")
            + (f"; for the server at {uri}: {server}" if server else "")
        )


# HOST:PORT without a scheme (`localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`, `tracking-host:5000/prefix`)
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}(/\S*)?")


def _server_meant(uri: str) -> str | None:
    """The server URL a refused location most likely meant: a HOST:PORT typed without its scheme, as `mlflow server`
    prints its address and as the UI's URL reads once `http://` is dropped. MLflow takes the host for a scheme
    ('localhost:5000': an unsupported scheme 'localhost'); the message named only the form, http://HOST:PORT."""
    return f"http://{uri}" if _HOST_PORT.fullmatch(uri) else None


def _sqlite_meant(uri: str) -> str | None:
    """The SQLite URL a refused location most likely meant: a database file's bare path ('mlflow.db', the default's
    own file) or a URL one slash short ('sqlite://mlflow.db', which SQLAlchemy reads as a host). The message named
    only the form, sqlite:///PATH.db, where the URL to type was one step away."""
    if uri.startswith("sqlite://") and not uri.startswith("sqlite:///"):
        rest = uri[len("sqlite://") :]
        return f"sqlite:///{rest}" if rest else None
    # any other scheme (`sqlite:/mlflow.db`, `sqlite:mlflow.db`) is no bare path: it was answered with
    # sqlite:///sqlite:/mlflow.db, a URL naming a file in a folder `sqlite:`. A drive letter (`C:\runs\m.db`) is
    # no scheme: a Windows path, answered as before
    drive = len(uri) > 2 and uri[0].isascii() and uri[0].isalpha() and uri[1] == ":" and uri[2] in "\\/"
    if (":" not in uri or drive) and uri.lower().endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{uri}"
    return None


# the query keys SQLAlchemy's pysqlite driver passes to sqlite3.connect; it ignores any other with a warning
SQLITE_QUERY_KEYS = ("timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements")


def _check_sqlite_query(uri: str, writable: bool = True) -> None:
    """A key SQLite's driver ignores is refused: `?mode=ro` printed SQLAlchemy's three-line warning, then the runs were
    written all the same. `uri=true` (a SQLite URI, where such keys count) is refused too: mlhw reads the database's
    file from the URL (its artifact folder, the store template), and that would read `file:...` as a file name."""
    keys = [k for k, _ in urllib.parse.parse_qsl(uri.partition("?")[2], keep_blank_values=True)]
    if "uri" in keys:
        raise MLHWError(f"{named(uri)}: uri=true (a SQLite URI) is not supported: name the file, sqlite:///PATH.db")
    unknown = [k for k in keys if k not in SQLITE_QUERY_KEYS]
    if unknown:
        hint = (
            " (this command writes runs; `mlhw check` and `mlhw tables` only read)"
            if writable and "mode" in unknown
            else ""
        )
        raise MLHWError(
            f"{named(uri)}: {unknown[0]!r} is no key of SQLite's driver, which would ignore it; it takes "
            f"{', '.join(SQLITE_QUERY_KEYS)}{hint}"
        )


def _check_sqlite(uri: str, path: Path, writable: bool = True) -> None:
    """The folder exists and a database can be written there (MLflow would retry for minutes); not `writable`: an
    existing database can be read."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MLHWError(f"{named(uri)}: folder {parent}/ does not exist")
    home = parent / "mlartifacts"  # where mlhw's experiments keep their artifacts (Store._experiment)
    access = os.W_OK | os.X_OK if writable else os.R_OK | os.X_OK
    if home.exists() and (not home.is_dir() or not os.access(home, access)):
        why = "is a file, not a folder" if not home.is_dir() else "is not writable" if writable else "is not readable"
        raise MLHWError(f"{named(uri)}: the artifact folder {home} {why}")
    if path.exists():
        if path.is_dir() or not os.access(path, os.W_OK if writable else os.R_OK):
            raise MLHWError(f"{named(uri)}: {path} is not a {'writable' if writable else 'readable'} file")
        try:  # a file that is not a SQLite database fails here, not after minutes of retries
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_timeout(uri)) as con:
                tables = {name for (name,) in con.execute("select name from sqlite_master where type = 'table'")}
        except sqlite3.DatabaseError as err:
            if _locked(err):  # another process holds it (a transaction of its own): not a database of another kind
                raise _locked_error(uri, path) from None
            raise MLHWError(f"{named(uri)}: {path} is not a SQLite database ({err})") from None
        if not writable and "experiments" not in tables:  # MLflow would make its tables there: a write
            raise MLHWError(f"{named(uri)}: {path} holds no MLflow store (no experiments table)")
        if tables and not tables & {"experiments", "alembic_version"}:  # another program's database: MLflow added
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")  # its 65 tables to it
            raise MLHWError(
                f"{named(uri)}: {path} is a SQLite database of something else (tables: {shown}), not an MLflow "
                "store: name a new file or an MLflow store's"
            )
        if not writable:
            return
    elif not writable:  # a command that only reads makes no database: it finds none (and says so) later
        return
    try:  # an existing database too: SQLite writes its journal beside it (a folder it cannot write: "unable to open
        # database file" at the first write, after the plan, exit 1, where a writable file in it passed this check)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".mlhw-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        what = "write to the database (SQLite keeps its journal beside it)" if path.exists() else "create a database"
        raise MLHWError(f"{named(uri)}: cannot {what} in {parent}/ ({err.strerror})") from None
    if path.exists():  # another process holding its write lock (a transaction it keeps open) made the command
        try:  # fail at its first write, after SQLite's busy timeouts and MLflow's retries (25 s)
            with contextlib.closing(sqlite3.connect(path, timeout=busy_timeout(uri), isolation_level=None)) as con:
                con.execute("begin immediate")  # the write lock, taken and given back: nothing is written
                con.execute("rollback")
        except sqlite3.OperationalError as err:
            if _locked(err):
                raise _locked_error(uri, path) from None
            # any other failure is the first write's to say, as it was


# how long the store's checks wait for a SQLite database that another process is writing (where its URL sets no
# `?timeout=`): the busy timeout of SQLite's driver, which MLflow's SQLite store waits too
SQLITE_TIMEOUT = 5.0


def busy_timeout(uri: str) -> float:
    """The seconds a SQLite URL's `?timeout=` asks SQLite to wait for a lock (SQLITE_TIMEOUT without one)."""
    given = dict(urllib.parse.parse_qsl(uri.partition("?")[2])).get("timeout")
    try:
        return float(given) if given is not None else SQLITE_TIMEOUT
    except ValueError:  # the driver's to refuse, at its first connection
        return SQLITE_TIMEOUT


def _locked(err: sqlite3.Error) -> bool:
    return "database is locked" in str(err) or "database is busy" in str(err)


def _locked_error(uri: str, path: Path) -> MLHWError:
    """A SQLite database another process held locked past SQLite's busy timeout: it said 'is not a SQLite database
    (database is locked)', or the command failed at its first write after 25 s."""
    return MLHWError(
        f"{named(uri)}: {path} is locked by another process, which held it past {busy_timeout(uri):g} s (a program "
        f"or a `sqlite3` shell with a transaction open; `fuser {shlex.quote(str(path))}` names it): run again once it "
        "is done"
    )


def probe_server(uri: str, timeout: float = 3.0) -> None:
    """One request to the server's /health: a clear error in seconds instead of MLflow's retries. A URI that is no
    URL (`http://host:notaport`, `http://[::1`, a space in the host) is said as such: urllib's ValueError or
    http.client.InvalidURL was a traceback, where only a server that did not answer was caught."""
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 - raises on a port that is no number or out of range (99999: OverflowError later)
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as resp:
            if resp.status == 200:
                return
            reason = f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        if err.code == 404:  # something answers, without MLflow's /health: a path added to the address, another program
            raise MLHWError(  # ('server not reachable; start one' sent the user to start a server that was running)
                f"{named(uri)}: answers, but is no MLflow server's address (GET {uri.rstrip('/')}/health: HTTP 404); "
                "give the address `mlflow server` listens on, http://HOST:PORT (with no path unless it is served under "
                "one)"
            ) from None
        reason = f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        reason = str(getattr(err, "reason", err))
    except (ValueError, http.client.InvalidURL) as err:  # (InvalidURL: no ValueError on Python 3.11)
        shown = uri if uri.isprintable() else repr(uri)  # a newline in it: still one line
        why = " ".join(str(err).split()) or type(err).__name__
        raise MLHWError(f"{named(uri, shown)}: not a valid URL ({why})") from None
    raise MLHWError(
        f"{named(uri)}: server not reachable ({reason}); start one with `mlflow server --host "
        f"127.0.0.1 --port PORT`, or fix --tracking-uri / $MLFLOW_TRACKING_URI"
    )


@contextlib.contextmanager
def signals_deferred():
    """Hold Ctrl-C, SIGTERM and a hangup until the block ends: MLflow creates and migrates a new database's tables here,
    and an interrupt half-way leaves a store every later command fails on. The handlers only note the signal
    (any thread may receive it; Python runs handlers in the main thread), which is acted on afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = [signal.SIGINT, signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and callable(signal.getsignal(hup)):  # a hangup, where the command ends runs on it (not
        held.append(hup)  # where it is ignored: nohup)
    saved = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if caught:  # now that the store is whole, act on it as the handler would have
            handler = saved[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL or handler is None:
                signal.raise_signal(caught[0])


class UninterruptedClient:
    """An MlflowClient whose calls Ctrl-C and SIGTERM do not cut: the signal is acted on when the call returns.

    A SIGTERM that landed inside SQLAlchemy's flush (a run's inputs being logged) left that write transaction's
    connection alive in the traceback's frames, so SQLite refused every later write of the process ("database is
    locked", 10 s each: the interrupted run could not even be marked KILLED, and MLflow logged three tracebacks).
    One call is milliseconds; only the main thread defers (signal handlers live there). For SQLite stores only: a
    server's call holds no lock, and can wait seconds on a server that is gone, where Ctrl-C must still work."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args, **kwargs):
            with signals_deferred():
                return attr(*args, **kwargs)

        return call


@contextlib.contextmanager
def folder_lock(folder: Path | None):
    """Held by one process at a time: an exclusive flock on the folder itself, so that no lock file is left behind;
    released on close. None, or no fcntl (not POSIX): no lock."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        fcntl = None
    if folder is None or fcntl is None:
        yield
        return
    fd = os.open(folder if str(folder) else ".", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def creation_lock(path: Path | None):
    """Held while a process opens a SQLite store (MLflow creates a new database's tables and migrates them here):
    processes that create one database at once each run the migrations and fail on each other's ("table
    _alembic_tmp_metrics already exists"), which two commands started together in a fresh folder did. The
    database's folder's lock."""
    return folder_lock(None if path is None else path.parent)


def sqlite_client(uri: str):
    """An MlflowClient of a SQLite store (under creation_lock). A new database starts as a copy of the empty
    database in the cache (mlhw.store_template: 0.06-0.09 s instead of MLflow's 1-1.7 s of migrations), and the
    first one MLflow makes is kept there."""
    from mlhw import store_template

    path, uri = sqlite_path(uri), client_uri(uri)
    if path is None or str(path) == ":memory:" or path.exists():
        return new_client(uri)
    if store_template.copy_to(path):  # a template of another schema revision is not copied
        try:
            return new_client(uri)
        except BaseException as err:  # the store is not made: no copy stays behind
            with contextlib.suppress(OSError):
                path.unlink()
            from mlflow.exceptions import MlflowException

            if not isinstance(err, MlflowException):  # a folder it cannot open, a full disk: not the template's fault
                raise
            # MLflow refused the copy itself: the template goes, and MLflow makes the store (and the next template)
            store_template.discard()
            _forget_engine(uri)
    client = new_client(uri)
    store_template.save_from(path)
    return client


class Store:
    """One tracking store and experiment, checked on creation; queries by mlhw's identity tag."""

    def __init__(
        self,
        uri: str | None = None,
        experiment: str | None = None,
        create: bool = True,
        client=None,
        read_only: bool = False,
    ):
        """`client`: an MlflowClient look-alike to use instead of a client of its own (a `--jobs` worker on a
        SQLite store gets mlhw.relay.RelayedClient: its writes go through the parent's one writer). read_only: a
        command that never writes to the store (`check`, `tables`): a database it can only read will do, and
        nothing is written (not even the experiment's kind tag that an older store lacks); implies not create.
        `experiment` None: $MLFLOW_EXPERIMENT_NAME's, else mlhw (resolve_experiment); an error then names the
        variable, not --experiment."""
        self.uri = resolve_uri(uri)
        self.read_only = read_only
        create = create and not read_only
        check_uri(self.uri, writable=not read_only)
        if is_server(self.uri):
            for k, v in HTTP_ENV.items():  # read by MLflow's REST client at each request
                os.environ.setdefault(k, v)
        self.experiment_from_env = experiment is None and bool(os.environ.get(EXPERIMENT_ENV))
        experiment = resolve_experiment(experiment)
        self.experiment_name = experiment
        if not experiment or not experiment.strip():  # before any database exists (MLflow refuses it after)
            raise MLHWError(f"{self.experiment_culprit(repr(experiment))}: an experiment needs a name, e.g. mlhw")
        if len(experiment) > MAX_EXPERIMENT_NAME:  # MLflow's refusal blamed the tracking URI
            raise MLHWError(
                f"{self.experiment_culprit(experiment[:40])}...: {len(experiment)} characters, where MLflow takes at "
                f"most {MAX_EXPERIMENT_NAME}"
            )
        if undecodable_bytes(experiment):  # else named as the store's fault below
            raise MLHWError(f"{self.experiment_culprit('')}: {undecodable(experiment)}")
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI, as searches return them
        self.artifact_location: str | None = None  # the experiment's, once it exists
        self.moved: tuple[Path, Path] | None = None  # (where the experiment says its artifacts are, where they are)
        path = sqlite_path(self.uri)
        if not create and path is not None and not path.exists():  # nothing to read: create no database either
            self.client, self.experiment_id = None, None
            return
        try:
            with signals_deferred(), creation_lock(path):  # a new SQLite store: an interrupt here would break it
                if client is None:  # SQLite only: a server's call holds no lock, and may wait on a dead server
                    client = new_client(self.uri) if path is None else UninterruptedClient(sqlite_client(self.uri))
                self.client = client
                self.experiment_id = self._experiment(experiment, create)
            self.moved = moved_artifacts(path, self.artifact_location)
        except (KeyboardInterrupt, MLHWError):
            raise
        except ModuleNotFoundError as err:
            package = DB_DRIVERS.get(err.name or "")
            if package is None:  # not a database driver: said as any other failure is
                raise MLHWError(f"{named(self.uri)}: ModuleNotFoundError: {err}") from None
            raise MLHWError(  # postgresql:// without psycopg, mysql:// without mysqlclient
                f"{named(self.uri)}: its database driver ({err.name}) is not installed here (add it to "
                f"the project: uv add '{package}')"
            ) from None
        except Exception as err:  # a refused connection, a bad URI: one line
            if (cause := store_failure(err) or not_text(err)) is not None:  # a server gone since the probe: '[Errno
                raise MLHWError(f"{named(self.uri)}: {cause}") from None  # 111] ...'; a path of bytes, not text
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
            raise MLHWError(f"{named(self.uri)}: {type(err).__name__}: {first}".rstrip(": ")) from None

    def _experiment(self, name: str, create: bool) -> str | None:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage == "deleted":
            raise self._deleted(exp)
        if exp is not None:
            self.artifact_location = exp.artifact_location
            if exp.tags.get("mlflow.experimentKind") is None and not self.read_only:  # an older mlhw's, or by hand
                self.client.set_experiment_tag(
                    exp.experiment_id, "mlflow.experimentKind", EXPERIMENT_TAGS["mlflow.experimentKind"]
                )
            return exp.experiment_id
        if not create:
            return None
        path = sqlite_path(self.uri)
        # Artifacts next to the database, not in whatever directory the command ran from.
        where = (path.resolve().parent / "mlartifacts").as_uri() if path else None
        try:
            self.artifact_location = where
            return self.client.create_experiment(name, artifact_location=where, tags=EXPERIMENT_TAGS)
        except MlflowException:
            exp = self.client.get_experiment_by_name(name)  # another process created it in the meantime
            if exp is None:
                raise
            if exp.lifecycle_stage == "deleted":  # deleted by another process in the meantime
                raise self._deleted(exp) from None
            self.artifact_location = exp.artifact_location
            return exp.experiment_id

    def _deleted(self, exp) -> MLHWError:
        """An experiment deleted in MLflow (the UI, `mlflow experiments delete`) is refused before anything runs: its
        runs are hidden with it, MLflow refuses new runs in it (a reproduction failed after showing its plan, with a
        traceback) and a new experiment of its name until it is gone for good (`mlflow gc`)."""
        return MLHWError(
            f"{self.experiment_culprit(exp.name)}: deleted in {self.uri} (experiment id {exp.experiment_id}); restore "
            "it with "
            f"`MLFLOW_TRACKING_URI={shlex.quote(self.uri)} mlflow experiments restore "  # (a store under `my dir/`)
            f"--experiment-id {exp.experiment_id}`, "
            "or name another --experiment"
        )

    def experiment_culprit(self, shown: str | None = None) -> str:
        """How an error names the experiment, by where it came from: `--experiment NAME`, or
        `MLFLOW_EXPERIMENT_NAME=NAME` where the variable gave it (a user who passed no option knows what to fix);
        `shown`: the name as the error shows it ('' for none: `--experiment`, `MLFLOW_EXPERIMENT_NAME`)."""
        shown = self.experiment_name if shown is None else shown
        if self.experiment_from_env:
            return f"{EXPERIMENT_ENV}={shown}" if shown else EXPERIMENT_ENV
        return f"--experiment {shown}" if shown else "--experiment"

    def experiment_names(self) -> list[str]:
        """The names of the store's experiments (not deleted ones), sorted: those a misspelt --experiment could have
        meant; none where the store does not exist (no database file: nothing is created to ask)."""
        if self.client is None:
            return []
        return sorted(e.name for e in self.client.search_experiments())

    def check_artifacts_writable(self) -> None:
        """Before any run exists, for a command that will log artifacts: where they go can take them (a file named
        mlartifacts made every run FAILED after training, with a traceback), the folder the experiment names still
        exists (a moved database's names one that is gone, and new runs made it again), and an artifact location
        that is not a folder can be reached from here (check_remote_artifacts)."""
        self.check_remote_artifacts()
        path = sqlite_path(self.uri)
        if path is None:
            return
        if self.moved is not None and not self.moved[0].is_dir():  # a copy whose original is still there writes
            old, new = self.moved  # into the original's folder, as MLflow does; a moved one would remake it
            raise MLHWError(
                f"{named(self.uri)}: experiment {self.experiment_name!r} keeps its artifacts in {old}/, which "
                f"is gone: the database was moved (its artifacts are read from {new}/: mlhw tables, check). New runs "
                f"would make that folder again: move the database back to {old.parent}/ to add runs (another "
                "--experiment starts empty: every run trains again)"
            )
        home = local_artifact_path(self.artifact_location)
        if home is None:  # a new experiment's (beside the database: _check_sqlite looked), or a remote one
            return
        probe = home
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            why = "is a file, not a folder" if probe.exists() and not probe.is_dir() else "is not writable"
            raise MLHWError(f"{named(self.uri)}: the artifact folder {home}/ cannot be used ({probe} {why})")

    def check_remote_artifacts(self) -> None:
        """An experiment whose artifacts live elsewhere than in a folder: a SQLite store last used through `mlflow
        server` (its experiment's location `mlflow-artifacts:/1`, which only that server resolves), or one set to
        s3://... without boto3 here. Each trained its run, then failed it at its first artifact (exit 1, a FAILED
        run; the second with a traceback of 70 lines)."""
        location = self.artifact_location
        if not location or local_artifact_path(location) is not None:
            return
        scheme = urllib.parse.urlsplit(location).scheme
        where = f"{named(self.uri)}: experiment {self.experiment_name!r} keeps its artifacts at {location}"
        other = "name another --experiment" + (
            " (a new one keeps them beside the database; its runs all train anew)" if sqlite_path(self.uri) else ""
        )
        if scheme == "mlflow-artifacts" and not is_server(self.uri):
            raise MLHWError(
                f"{where}, an MLflow server's artifact store (the database was used through `mlflow server`), which "
                f"only that server reaches: pass the server's http://HOST:PORT as --tracking-uri, or {other}"
            )
        if scheme in LAZY_ARTIFACT_MODULES:  # MLflow imports these at the first upload, not when the store is opened
            module, package = LAZY_ARTIFACT_MODULES[scheme]
            import importlib.util

            if importlib.util.find_spec(module) is None:
                raise MLHWError(
                    f"{where}, which needs {module}, not installed here: add it to the project (uv add {package}), "
                    f"or {other}"
                )
        try:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            get_artifact_repository(location, tracking_uri=client_uri(self.uri))
        except ModuleNotFoundError as err:
            raise MLHWError(
                f"{where}, which needs {err.name}, not installed here: add its package, or {other}"
            ) from None
        except Exception as err:  # noqa: BLE001 - an unknown scheme, missing credentials: MLflow's first line says it
            first = str(err).strip().splitlines()[0].split(". ")[0][:200] if str(err).strip() else type(err).__name__
            raise MLHWError(f"{where}, which cannot be used from here ({first}): {other}") from None

    def artifact_dir(self, uri: str | None) -> Path | None:
        """The local folder of a run's artifact URI, found beside the database when it was moved or copied."""
        path = local_artifact_path(uri)
        if path is not None and not path.is_dir() and self.moved is not None and path.is_relative_to(self.moved[0]):
            path = self.moved[1] / path.relative_to(self.moved[0])
        return path if path is not None and path.is_dir() else None

    def run_page(self, run_id: str) -> str:
        """A run's page in the UI, relative to the UI's address (a link in a description or an artifact's markdown),
        in the Model training view: without `workflowType`, a link followed from a parent's description opened the
        run in MLflow 3's GenAI view (its sidebar, an "Evaluations" breadcrumb) unless the browser had been switched
        by hand, though the URL `mlhw ui` prints opens the Model training one (the UI remembers the view only when
        its switch is clicked; its own run links carry no view either: mlflow/mlflow#24498)."""
        return f"#/experiments/{self.experiment_id}/runs/{run_id}?workflowType=machine_learning"

    def run_url(self, run_id: str) -> str | None:
        if not is_server(self.uri):
            return None
        return f"{self.uri.rstrip('/')}/{self.run_page(run_id)}"

    def search(self, filter_string: str = "") -> list:
        """Every matching run of the experiment (all pages), newest first."""
        if self.experiment_id is None:
            return []
        out, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string,
                max_results=1000,
                page_token=token,
                order_by=["attributes.start_time DESC"],
            )
            out += list(page)
            token = page.token
            if not token:
                self._artifact_uris.update((r.info.run_id, r.info.artifact_uri) for r in out)
                return out

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Several tags of a run in one call (a reproduction adopting a run: its suites, parts, parent)."""
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end_dead(self, run_id: str, status: str, reason: str) -> bool:
        """End a run whose process is gone (or was stopped with its parent): `mlhw.dead` says why, so the UI does.
        Best effort (the run may have ended meanwhile, the store may be going away with the process): False if
        it could not."""
        try:
            self.client.set_tag(run_id, "mlhw.dead", reason)
            self.client.set_terminated(run_id, status)
            return True
        except Exception:
            return False

    def withdraw(self, run_id: str) -> None:
        """Delete a run that lost its claim (another run owns its identity): it never trained."""
        with contextlib.suppress(Exception):
            self.client.set_terminated(run_id, "KILLED")
        self.client.delete_run(run_id)

    def local_file(self, run_id: str, path: str) -> Path | None:
        """Where a run's artifact lies on this machine (a SQLite store's artifacts are local files); None when it
        is remote (a server's artifact store) or absent."""
        if run_id not in self._artifact_uris:
            self._artifact_uris[run_id] = self.client.get_run(run_id).info.artifact_uri
        folder = self.artifact_dir(self._artifact_uris[run_id])
        return folder / path if folder is not None and (folder / path).is_file() else None

    def download_text(self, run_id: str, path: str) -> str:
        """A text artifact that the run must have; where it is missing (its artifacts deleted or moved), an
        MLHWError naming the run and the file, not MLflow's traceback."""
        text = self.download_text_if_any(run_id, path)
        if text is None:
            raise MLHWError(
                f"{named(self.uri)}: run {run_id} has no artifact {path} (were its artifacts deleted or moved?); "
                "delete the run (the MLflow UI, or MlflowClient.delete_run) and run it again"
            )
        return text

    def download_text_if_any(self, run_id: str, path: str) -> str | None:
        """A text artifact of a run, or None where the run has no such artifact (an older run). Only its absence
        is None: a store that fails while reading raises, rather than a report quietly losing the run's curves.
        Where the run's artifacts are local files (a SQLite store, and any run this Store has seen in a search),
        they are read in place: MLflow's download copies each file through a temporary folder (~25 ms a file, and
        a progress bar on stderr), which a report of 50 runs pays 50 times."""
        folder = self.artifact_dir(self._artifact_uris.get(run_id))
        if folder is not None and folder.is_dir():
            return (folder / path).read_text(encoding="utf-8") if (folder / path).is_file() else None
        parent = path.rpartition("/")[0] or None
        if path not in {f.path for f in self.client.list_artifacts(run_id, parent)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            return Path(self.client.download_artifacts(run_id, path, tmp)).read_text(encoding="utf-8")


# an artifact location's scheme -> the module MLflow imports for it only at the first upload (and its package)
LAZY_ARTIFACT_MODULES = {
    "s3": ("boto3", "boto3"),
    "r2": ("boto3", "boto3"),
    "b2": ("boto3", "boto3"),
    "hdfs": ("pyarrow", "pyarrow"),
    "viewfs": ("pyarrow", "pyarrow"),
}


def local_artifact_path(uri: str | None) -> Path | None:
    """The path of a `file:` artifact URI (or an absolute path); None for anything remote or relative."""
    if not uri:
        return None
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        path = Path(urllib.request.url2pathname(parts.path))
    elif not parts.scheme and os.path.isabs(uri):
        path = Path(uri)
    else:
        return None
    return path if path.is_absolute() else None


def moved_artifacts(db: Path | None, location: str | None) -> tuple[Path, Path] | None:
    """(the folder an experiment names, the one beside its database) when a SQLite database was moved or copied
    away from the artifacts folder it was made with (mlhw makes it beside the database: `<db folder>/mlartifacts`,
    an absolute path in MLflow); None when it was not, or the experiment's artifacts live elsewhere by design."""
    old = local_artifact_path(location)
    if db is None or old is None or old.name != "mlartifacts":
        return None
    new = db.resolve().parent / "mlartifacts"
    if old == new:
        return None
    twin = old.parent / db.name  # the database the experiment was made with, if it is still there
    if twin.exists() and os.path.samefile(twin, db):
        return None  # the same database, reached by another path (a symlink)
    return old, new
