"""The one MLflow layer: every command logs its runs through `Tracker`.

It talks to MLflow through `MlflowClient` with explicit run ids (no global "active run"), so
nested runs, sweeps and later parallel workers need no fluent-API state. A run is FINISHED only
when its body completes; an exception marks it FAILED (the error saved as an artifact),
Ctrl-C marks it KILLED, so nothing is left looking finished when it is not.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException

import mlhw
from mlhw.data import Dataset
from mlhw.errors import MLHWError

logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep "creating tables..." out of the terminal
logging.getLogger("alembic").setLevel(logging.WARNING)

DEFAULT_URI = "sqlite:///mlflow.db"
HEARTBEAT_TAG = "mlhw.heartbeat"  # unix seconds, refreshed while a run's process lives
HEARTBEAT_SECONDS = 10.0
WORKER_TAG = "mlhw.worker"  # host:pid of the process that runs it, so a parent can mark a dead worker's runs
STALE_SECONDS = float(os.environ.get("MLHW_STALE_SECONDS", 60))  # no heartbeat for this long: the run is dead
DEFAULT_EXPERIMENT = "mlhw"
FLUSH_SECONDS = 2.0  # metrics are batched: one write per run every few seconds, not one per value


def resolve_uri(uri: str | None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_uri(uri: str) -> None:
    """Fail fast, before any run exists, on a tracking location we cannot write."""
    path = sqlite_path(uri)
    if path is not None:
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise MLHWError(f"tracking store {uri}: directory {parent}/ does not exist")
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise MLHWError(f"tracking store {uri}: {path if path.exists() else parent} is not writable")
        return
    if uri.startswith(("http://", "https://")):
        _probe_server(uri)
        return
    if uri.startswith("databricks"):
        return
    if uri.startswith(("postgresql", "mysql", "mssql")):
        return
    raise MLHWError(
        f"tracking URI {uri!r} is not supported: use sqlite:///PATH.db (the file store is "
        f"deprecated in MLflow 3) or http://HOST:PORT of an MLflow server"
    )


def _probe_server(uri: str, timeout: float = 3.0) -> None:
    """One request to the server's /health: a clear error in seconds instead of MLflow's retries."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as resp:
            if resp.status == 200:
                return
            reason = f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        reason = f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        reason = str(getattr(err, "reason", err))
    raise MLHWError(
        f"tracking server {uri} is not reachable ({reason}): start one with `mlflow server --host "
        f"127.0.0.1 --port PORT`, or fix --tracking-uri / $MLFLOW_TRACKING_URI"
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(root: str | Path, timeout: float = 120.0) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 and a free port (SQLite store and artifacts under `root`),
    yielding its URI once /health answers; stopped, with its process group, on exit."""
    import signal
    import sys
    import urllib.request

    root = Path(root)
    uri = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/server.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            uri.rsplit(":", 1)[1],
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{uri}/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mlflow server did not start on {uri}") from None
                time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def worker_id(pid: int | None = None) -> str:
    import socket

    return f"{socket.gethostname()}:{pid or os.getpid()}"


class Claimed(Exception):
    """Another process owns (runs or has finished) this config hash: this one must not run it."""

    def __init__(self, config_hash: str, owner: str):
        super().__init__(f"config {config_hash} is owned by run {owner}")
        self.config_hash, self.owner = config_hash, owner


class Heartbeat:
    """A daemon thread that refreshes a run's heartbeat tag until stopped."""

    def __init__(self, client: MlflowClient, run_id: str, every: float = HEARTBEAT_SECONDS):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(client, run_id, every), daemon=True)
        self._thread.start()

    def _beat(self, client, run_id, every):
        while not self._stop.wait(every):
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one catches up
                client.set_tag(run_id, HEARTBEAT_TAG, str(int(time.time())))

    def stop(self) -> None:
        self._stop.set()


class RunLogger:
    """What a running job sees: metrics (batched), tags, artifacts, inputs, for one MLflow run."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        for k, v in metrics.items():
            if v is not None:
                self._pending.append(Metric(k, float(v), now, int(step)))
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for i in range(0, len(self._pending), 1000):  # MLflow's per-batch limit
            self.client.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
        self._pending.clear()
        self._last_flush = time.monotonic()

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_table(self, rows: list[dict], name: str) -> None:
        """Rows as a CSV artifact (e.g. the per-epoch history)."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            pd.DataFrame(rows).to_csv(path, index=False)
            self.log_artifact(path)

    def log_dataset(self, data: Dataset) -> None:
        """Each split as an MLflow dataset input: name, digest (our content fingerprint), source and
        size. Built directly, so logging never copies or profiles the arrays themselves."""
        fp = data.fingerprint()
        inputs = []
        for context, split in (("training", data.train), ("validation", data.val), ("test", data.test)):
            if split is None:
                continue
            entity = MlflowDataset(
                name=f"{data.name}-{context}",
                digest=f"{fp[:10]}-{context[:4]}",
                source_type="local",
                source=json.dumps({"description": data.source or data.name}),
                schema=json.dumps(
                    {
                        "x": {"dtype": str(split.x.dtype), "shape": list(split.x.shape[1:])},
                        "y": {"dtype": str(split.y.dtype)},
                    }
                ),
                profile=json.dumps({"num_rows": len(split)}),
            )
            inputs.append(DatasetInput(entity, [InputTag("mlflow.data.context", context)]))
        # MLflow registers a dataset per experiment with a check-then-insert: two workers logging the
        # same dataset at once can collide on its UNIQUE constraint. The loser retries and then finds
        # it registered. Inputs are metadata: if they still fail, the run says so and carries on.
        for attempt in range(3):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException as err:
                if attempt == 2:
                    self.set_tags({"mlhw.dataset_input_error": str(err).splitlines()[0][:200]})
                    return
                time.sleep(0.2 * (attempt + 1))


class Tracker:
    """One tracking store and experiment. `run()` opens a run and guarantees how it ends."""

    def __init__(
        self,
        uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        claim_runs: bool = False,
        stale_after: float = STALE_SECONDS,
    ):
        self.uri = resolve_uri(uri)
        self.experiment_name = experiment
        if self.uri.startswith(("http://", "https://")):
            # MLflow's default is 7 retries with exponential backoff (minutes): a server that goes away
            # mid-run should end the command in seconds, with the run marked as failed where possible.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        check_uri(self.uri)
        self.claim_runs = claim_runs  # reproduce: a run with a config hash another process owns is not run
        self.stale_after = stale_after
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        try:
            self.experiment_id = self._experiment(experiment)
        except MlflowException as err:
            raise MLHWError(f"tracking store {self.uri}: {str(err).splitlines()[0][:200]}") from None

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        path = sqlite_path(self.uri)
        # Artifacts next to the database, not in whatever directory the command ran from.
        where = (path.resolve().parent / "mlartifacts").as_uri() if path else None
        try:
            return self.client.create_experiment(name, artifact_location=where)
        except MlflowException:
            exp = self.client.get_experiment_by_name(name)  # another process created it in the meantime
            if exp is None:
                raise
            return exp.experiment_id

    def base_tags(self, part: str, config_hash: str, data: Dataset | None, device: str | None) -> dict:
        tags = {"mlhw.version": mlhw.__version__, "mlhw.part": part, "mlhw.config_hash": config_hash}
        if commit := git_commit():
            tags["mlhw.git_commit"] = commit
        if data is not None:
            tags.update(
                {
                    "mlhw.dataset": data.name,
                    "mlhw.dataset_fingerprint": data.fingerprint(),
                    "mlhw.dataset_sizes": json.dumps(data.sizes()),
                }
            )
        if device is not None:
            tags["mlhw.device"] = str(device)
        return tags

    @contextlib.contextmanager
    def run(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        parent: str | None = None,
        claim: bool = True,
    ) -> Iterator[RunLogger]:
        """Open a run; it ends FINISHED, FAILED (with error.txt) or KILLED (Ctrl-C).

        While open, a heartbeat tag is refreshed every HEARTBEAT_SECONDS, so a run whose process died
        (SIGKILL, power loss) is recognisably stale. With `claim_runs`, a run carrying a config hash is
        claimed first: created, then compared with the other live or finished runs of that hash; the
        earliest wins and a loser deletes itself and raises `Claimed` (nothing runs twice).
        """
        all_tags = {k: str(v) for k, v in (tags or {}).items()} | {
            HEARTBEAT_TAG: str(int(time.time())),
            WORKER_TAG: worker_id(),
        }
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        run_id = run.info.run_id
        if claim and self.claim_runs and "mlhw.config_hash" in all_tags:
            owner = self.owner(all_tags["mlhw.config_hash"], run)
            if owner != run_id:
                self.client.delete_run(run_id)
                raise Claimed(all_tags["mlhw.config_hash"], owner)
        log = RunLogger(self.client, run_id)
        beat = Heartbeat(self.client, run_id)
        try:
            if params:
                self.client.log_batch(
                    run_id,
                    params=[
                        Param(k, json.dumps(v) if isinstance(v, (list, tuple)) else str(v))
                        for k, v in flatten(params).items()
                    ],
                )
            yield log
            beat.stop()
            log.flush()
            self.client.set_terminated(run_id, "FINISHED")
        except KeyboardInterrupt:
            beat.stop()
            _end_quietly(log, "KILLED")
            raise
        except Claimed:  # a nested run was owned elsewhere and left this one with nothing to do
            beat.stop()
            with contextlib.suppress(Exception):
                self.client.delete_run(run_id)
            raise
        except BaseException:
            beat.stop()
            _end_quietly(log, "FAILED", traceback.format_exc())
            raise
        finally:
            beat.stop()

    def alive(self, run) -> bool:
        """A RUNNING run whose heartbeat is recent; a FINISHED run counts as settled, not alive."""
        beat = run.data.tags.get(HEARTBEAT_TAG)
        return run.info.status == "RUNNING" and beat is not None and time.time() - int(beat) < self.stale_after

    def owner(self, config_hash: str, mine) -> str:
        """Which run owns a config hash: a FINISHED one if any, else the earliest live RUNNING one."""
        runs = self.client.search_runs(
            [self.experiment_id], f"tags.`mlhw.config_hash` = '{config_hash}'", max_results=1000
        )
        finished = [r for r in runs if r.info.status == "FINISHED"]
        if finished:
            return finished[0].info.run_id
        live = [r for r in runs if r.info.run_id == mine.info.run_id or self.alive(r)]
        return min(live, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id

    def all_runs(self) -> list:
        """Every run of the experiment (all pages), newest first."""
        out, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], max_results=1000, page_token=token, order_by=["attributes.start_time DESC"]
            )
            out += list(page)
            token = page.token
            if not token:
                return out

    def latest_by_hash(self) -> dict[str, dict]:
        """config hash -> the run that settles it: a FINISHED one if any, else the newest."""
        best: dict[str, dict] = {}
        for run in self.all_runs():
            h = run.data.tags.get("mlhw.config_hash")
            if not h:
                continue
            status = run.info.status
            if status == "RUNNING":
                status = "RUNNING" if self.alive(run) else "STALE"
            entry = {"run_id": run.info.run_id, "status": status, "run": run}
            if h not in best or (run.info.status == "FINISHED" and best[h]["status"] != "FINISHED"):
                best[h] = entry
        return best

    def mark_dead(self, workers: set[str], reason: str) -> int:
        """End as KILLED every RUNNING run of the given (dead) worker processes; returns how many."""
        n = 0
        for run in self.all_runs():
            if run.info.status == "RUNNING" and run.data.tags.get(WORKER_TAG) in workers:
                with contextlib.suppress(Exception):
                    self.client.set_tag(run.info.run_id, "mlhw.dead", reason)
                    self.client.set_terminated(run.info.run_id, "KILLED")
                    n += 1
        return n

    def end_stale(self, run_id: str) -> None:
        """A RUNNING run without a recent heartbeat: its process is gone. Mark it so the UI says so."""
        with contextlib.suppress(Exception):
            self.client.set_tag(run_id, "mlhw.dead", "stale heartbeat")
            self.client.set_terminated(run_id, "FAILED")

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.step)]

    def download_text(self, run_id: str, path: str) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(self.client.download_artifacts(run_id, path, tmp)).read_text()


def _end_quietly(log: RunLogger, status: str, error: str | None = None) -> None:
    """End a run after a failure without masking the original exception."""
    with contextlib.suppress(Exception):
        log.flush()
    if error:
        with contextlib.suppress(Exception):
            log.log_text(error, "error.txt")
    with contextlib.suppress(Exception):
        log.client.set_terminated(log.run_id, status)
