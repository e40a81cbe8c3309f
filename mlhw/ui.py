"""`mlhw ui`: the MLflow UI on this project's store, on 127.0.0.1, with one worker.

The URL is printed once the server answers /health (MLflow takes tens of seconds to start), and the
server dies with its parent: Ctrl-C and SIGTERM stop its whole process group, and on Linux the kernel
sends it SIGTERM if mlhw itself is killed (PR_SET_PDEATHSIG), so no server is ever orphaned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from mlhw.errors import MLHWError
from mlhw.store import check_uri, resolve_uri


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_path(port: int) -> Path:
    """The server's own output goes here, not to the terminal: its start-up lines and warnings buried the URL."""
    return Path(tempfile.gettempdir()) / f"mlhw-ui-{port}.log"


def _last_line(port: int) -> str:
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in log_path(port).read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return f": {lines[-1][:200]}"
    return ""


def start(uri: str, port: int) -> subprocess.Popen:
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
    with open(log_path(port), "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def wait_healthy(proc: subprocess.Popen, port: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise MLHWError(
                f"--port {port}: the MLflow UI exited with code {proc.returncode} (is the port in use?)"
                f"{_last_line(port)} (log: {log_path(port)})"
            )
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return
        time.sleep(0.3)
    raise MLHWError(f"--port {port}: the MLflow UI did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


def experiment_url(uri: str, port: int, experiment: str = "mlhw") -> str:
    """The experiment's runs in the UI's model-training view (MLflow 3 opens in GenAI mode without the parameter)."""
    base = f"http://127.0.0.1:{port}"
    with contextlib.suppress(Exception):
        from mlhw.store import Store

        store = Store(uri, experiment, create=False)
        if store.experiment_id is not None:
            return f"{base}/#/experiments/{store.experiment_id}/runs?workflowType=machine_learning"
    return f"{base}/#/?workflowType=machine_learning"


def serve(tracking_uri: str | None, port: int) -> None:
    from mlhw.cli.common import out

    uri = resolve_uri(tracking_uri)
    check_uri(uri)
    proc = start(uri, port)
    try:
        out.print(f"starting the MLflow UI for {uri} ...", highlight=False)
        url = experiment_url(uri, port)  # while the server starts: the URL is printed the moment it answers
        wait_healthy(proc, port)
        out.print(f"MLflow UI: {url}  (Ctrl-C to stop; server log: {log_path(port)})", highlight=False)
        code = proc.wait()
        if code:
            raise MLHWError(f"the MLflow UI exited with code {code}{_last_line(port)} (log: {log_path(port)})")
    finally:
        stop(proc)
