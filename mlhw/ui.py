"""`mlhw ui`: the MLflow UI on this project's store, on 127.0.0.1, with one worker.

The URL is printed once the server answers /health (MLflow takes tens of seconds to start), and the
server dies with its parent: Ctrl-C and SIGTERM stop its whole process group, and on Linux the kernel
sends it SIGTERM if mlhw itself is killed (PR_SET_PDEATHSIG), so no server is ever orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mlhw.errors import MLHWError
from mlhw.store import EXPERIMENT_ENV, check_uri, is_server, resolve_experiment, resolve_uri, sqlite_path


def _die_with_parent(parent: int) -> Callable[[], None]:
    """The server's preexec_fn: SIGTERM when `parent` (mlhw) dies. A parent killed between the fork and the prctl
    (the moment `mlhw ui` is SIGKILLed as the server starts) sends no signal, ever: the child, which then has
    another parent already, exits there instead of serving as an orphan."""

    def preexec() -> None:
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(143)

    return preexec


def _log_file(port: int):
    """The server's own output goes to a file of its own, not to the terminal (its start-up lines and warnings
    buried the URL): one per server, so that two `mlhw ui` never write into one file."""
    try:
        fd, path = tempfile.mkstemp(prefix=f"mlhw-ui-{port}-", suffix=".log")
    except OSError as err:
        raise MLHWError(f"cannot write the MLflow UI's log in {tempfile.gettempdir()} ({err.strerror})") from None
    return os.fdopen(fd, "w"), Path(path)


def _last_line(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return f": {lines[-1][:200]}"
    return ""


def _check_port_free(port: int) -> None:
    """A port another server holds would answer /health for the wrong store (the new server dies with 'address
    already in use' in its log, while the URL printed opens the other one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise MLHWError(f"--port {port}: in use on 127.0.0.1 (another mlhw ui?); pick another port") from None


def start(uri: str, port: int) -> tuple[subprocess.Popen, Path]:
    _check_port_free(port)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    file, path = _log_file(port)
    with file:  # the child keeps its own copy of the descriptor
        # MLflow's job runner (GenAI evaluation jobs, none of ours) starts 7 consumers of ~240 MB each: 1.7 GB
        # on a 2-core laptop for a UI that browses runs. Off unless the environment says otherwise
        env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | dict(os.environ)
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None,
        )
    return proc, path


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise MLHWError(
                f"--port {port}: the MLflow UI exited with code {proc.returncode}{_last_line(log)} (log: {log})"
            )
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return
        time.sleep(0.3)
    raise MLHWError(f"--port {port}: the MLflow UI did not answer within {timeout:.0f} s (log: {log})")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


def experiment_url(uri: str, port: int | None, experiment: str | None = None) -> tuple[str, str | None]:
    """The experiment's runs in the UI's model-training view (MLflow 3 opens in GenAI mode without the parameter),
    and what to say where the store has no such experiment (the link is then the experiment list's). `port` None:
    the store is a server, whose own UI is at its own address."""
    from mlhw.errors import MLHWError

    base = uri.rstrip("/") if port is None else f"http://127.0.0.1:{port}"
    whose = f"named by {EXPERIMENT_ENV}; " if experiment is None and os.environ.get(EXPERIMENT_ENV) else ""
    note = f"no experiment {resolve_experiment(experiment)!r} in {uri} ({whose}--experiment names another)"
    try:
        from mlhw.store import Store

        store = Store(uri, experiment, create=False, read_only=True)
        if store.experiment_id is not None:
            return f"{base}/#/experiments/{store.experiment_id}/runs?workflowType=machine_learning", None
    except MLHWError as err:  # a deleted experiment: how to restore it, rather than that there is none
        note = str(err)
    except Exception:  # noqa: BLE001, S110 - the server says what is wrong with its store; the link is a convenience
        pass
    note += ": the link opens the experiment list"
    return f"{base}/#/?workflowType=machine_learning", note


DEFAULT_PORT = 5000
# MLflow 3.17 keeps the view per browser, GenAI by default, whatever the experiment's kind (mlflow#24498)
GENAI_VIEW = "a run page in GenAI view: click 'Model training' (top left) once; the browser keeps it"


def new_store_note(uri: str) -> str | None:
    """What to say where the UI's SQLite database does not exist yet: MLflow's server makes it, an empty store, and
    `mlhw ui` run in another folder than the runs' showed an empty UI and left an mlflow.db there, saying nothing."""
    db = sqlite_path(uri)
    if db is None or db.exists():
        return None
    return (
        f"{db.resolve()} did not exist: the UI shows a new, empty store; runs are logged where a command was run "
        f"(start `mlhw ui` in that folder, or pass --tracking-uri sqlite:///PATH/mlflow.db)"
    )


def serve(
    tracking_uri: str | None, port: int | None, say: Callable[[str], None] = print, experiment: str | None = None
) -> None:
    """Run the UI until it is stopped, its link on `experiment`'s runs (None: $MLFLOW_EXPERIMENT_NAME's, else mlhw);
    `say` prints its status lines (the CLI's console). `port` None: 5000. A store that is an MLflow server serves its
    own UI: its link is printed, and nothing is started (`mlflow ui --backend-store-uri http://...` exited 1 with a
    model-registry traceback in its log, which mlhw reported as a failure of `--port 5000`)."""
    uri = resolve_uri(tracking_uri)
    check_uri(uri)  # a server: reachable (one line, exit 2, where it is not)
    if is_server(uri):
        url, missing = experiment_url(uri, None, experiment)
        unused = f"; --port {port} is not used" if port is not None else ""
        say(f"MLflow UI: {url}  (the tracking store is an MLflow server: its own UI, nothing started here{unused})")
        if missing:
            say(missing)
        say(GENAI_VIEW)
        return
    port = DEFAULT_PORT if port is None else port
    note = new_store_note(uri)  # before the server makes the file
    proc, log = start(uri, port)
    try:
        say(f"starting the MLflow UI for {uri} ...")
        url, missing = experiment_url(uri, port, experiment)  # while the server starts: printed once it answers
        missing = None if note else missing  # a new store has no experiment: its own note says why
        wait_healthy(proc, port, log)
        say(f"MLflow UI: {url}  (Ctrl-C to stop; server log: {log})")
        for line in (note, missing):
            if line:
                say(line)
        say(GENAI_VIEW)
        code = proc.wait()  # it only ends when stopped: even code 0 here means it went away on its own
        raise MLHWError(f"the MLflow UI exited with code {code}{_last_line(log)} (log: {log})")
    finally:
        stop(proc)
