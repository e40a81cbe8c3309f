"""The life of one MLflow run: opened with mlhw's and MLflow's standard tags, kept alive by a heartbeat,
ended FINISHED only when its body completed, FAILED (with error.txt) when it raised, KILLED on Ctrl-C
or SIGTERM. Metrics are logged in sections (`train/loss`, `val/acc`, `test/acc`, `system/epoch_seconds`)
so that the MLflow UI groups them; `metric_key` maps them back to the core's row keys.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import getpass
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlhw
from mlhw.store import Store, signals_deferred

if TYPE_CHECKING:  # MLflow itself is imported where a run is logged (mlhw.store.new_client says why)
    from mlflow.entities import Metric, Param, RunTag

HEARTBEAT_TAG = "mlhw.heartbeat"  # a utc_stamp, refreshed while a run's process lives
HEARTBEAT_SECONDS = 10.0
WORKER_TAG = "mlhw.worker"  # host:pid of the process that runs it, so a parent can mark a dead worker's runs
# the process that runs it, as its machine knows it ("<boot id>/<pid namespace>/<pid>/<start time>"): a run whose
# process is gone (SIGKILL, the OOM killer, a crash) is known as dead at once on that machine, not after the heartbeat
# has aged (STALE_SECONDS): a reproduce started then took it as running elsewhere, left it out and exited 0
PROCESS_TAG = "mlhw.process"
IDENTITY_TAG = "mlhw.config_hash"
TOGETHER_TAG = "mlhw.trained_together"  # "<group>/<runs>": MLP runs trained as one batched computation
# a run that ended KILLED or FAILED: the last step (an epoch; a subgradient step) its metrics reached. Its history up
# to there is kept as its metrics (sent when it ends), but it has no history.csv, and nothing said how far it got
STOPPED_TAG = "mlhw.stopped_after_step"
COMPILED_TAG = "mlhw.compiled"  # an AlexNet run whose network torch.compile compiled (`mlhw cnn ... --compile`)
CPU_THREADS_TAG = "mlhw.cpu_threads"  # torch's CPU threads in the process that trained an MLP or AlexNet run
# Metrics are batched: one write per run every few seconds, not one per value. An MLP unit trains 30 runs at once
# and each run flushes on its own clock: at 2 s, a unit of 3 s on a GPU paid 30 extra writes (~0.4 s) between epochs.
FLUSH_SECONDS = 5.0
# a key's first word: the data it was measured on, the initialisation (an MLP's epoch 0), or (Q3's soft SVM) the solver
SECTIONS = ("train", "val", "test", "init", "primal", "dual", "qp", "liblinear")
SYSTEM = {"epoch_seconds", "images_per_s", "total_seconds", "seconds", "primal_seconds", "dual_seconds"}
# Q3's optimality relations between the primal and the dual optimum (svm.kkt_report), one section in the UI
KKT = {
    "duality_gap",
    "w_residual",
    "bias_residual",
    "xi_residual",
    "complementary_slackness",
    "equality_residual",
    "min_a",
}

# what an SVM solution is (its objective, whether and how it converged, Q3(a)'s agreement) and the data it was
# measured on: the last names left outside a section, beside primal/objective and kkt/* in the run's metric list
SOLUTION = {
    "objective",
    "converged",
    "steps",
    "newton_iterations",
    "support_vectors",
    "bound_violations",
    "q3a_relative_difference",
}
DATA = {"n_train", "n_test"}
# the sections whose name the row key does not carry (metric_key drops them)
BARE_SECTIONS = {"system": SYSTEM, "kkt": KKT, "solution": SOLUTION, "data": DATA}


def metric_name(key: str) -> str:
    """The core's row key -> the MLflow metric name: train_loss -> train/loss, epoch_seconds -> system/epoch_seconds,
    primal_objective -> primal/objective, w_residual -> kkt/w_residual. A soft SVM run showed its 25 metrics in one
    flat list; the UI groups a name's part before its slash."""
    # (MLflow's UI shows system/... metrics in their own tab, beside its own system metrics)
    for section, keys in BARE_SECTIONS.items():
        if key in keys:
            return f"{section}/{key}"
    head, _, rest = key.partition("_")
    if head in SECTIONS and rest:
        return f"{head}/{rest}"
    return key


def logged_value(value: float) -> float:
    """A metric's value as it was logged: MLflow's SQL stores keep +-inf as +-1.797e308 (SQL has no infinity),
    which a table would print as a 309-digit number and a mean would take for a finite loss."""
    return math.copysign(math.inf, value) if abs(value) >= sys.float_info.max else value


def metric_key(name: str) -> str:
    """The inverse of metric_name."""
    head, _, rest = name.partition("/")
    if head in BARE_SECTIONS:
        return rest
    return f"{head}_{rest}" if rest else name


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP: the terminal closed, the SSH connection dropped), raised in the main thread so that it
    ends runs exactly as Ctrl-C does. `signum`: which one, for the exit code (128 + signum) and its line."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = int(signum)


# A signal handler's exception is lost when the signal lands while Python runs a finalizer (a __del__ or weakref
# callback: "Exception ignored in ..."); SQLAlchemy runs them during start-up, and a SIGTERM there was swallowed: the
# reproduction went on to the end. The handler also sets this flag, which the parent checks between events.
class _Flag:
    """A flag that a signal handler may set at any moment, also while another handler is setting it: a second SIGTERM
    (`timeout` and a CI runner's cancel send one to the process and one to its group, a moment apart) that landed
    while the first handler held threading.Event's internal lock blocked forever on that lock: the reproduction hung
    with its runs RUNNING, deaf to every later SIGTERM. An attribute store takes no lock."""

    def __init__(self) -> None:
        self.signum = 0  # the signal that came (0: none)

    def set(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)

    def clear(self) -> None:
        self.signum = 0

    def is_set(self) -> bool:
        return self.signum != 0


_TERMINATED = _Flag()


def terminate(signum=None, frame=None):
    """The SIGTERM (and SIGHUP) handler of a command: remember it, and raise `Terminated` where the main thread is."""
    signum = signum or signal.SIGTERM
    _TERMINATED.set(signum)
    raise Terminated(signum)


def expect_sigterm() -> None:
    """Start a command with no SIGTERM remembered (a previous command in this process, e.g. under CliRunner,
    may have had one)."""
    _TERMINATED.clear()


def check_terminated() -> None:
    """Raise `Terminated` if a SIGTERM came and its exception was swallowed."""
    if _TERMINATED.is_set():
        raise Terminated(_TERMINATED.signum)


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    return commit_of(Path(__file__).resolve().parent)


def commit_of(package: Path) -> str | None:
    """HEAD of the git checkout whose top folder holds `package` (mlhw's own folder), else None. An mlhw installed
    from its wheel into a virtual environment inside another repository (a project's .venv) is in no checkout of
    mlhw: `git rev-parse HEAD` there gave that project's commit, recorded as mlhw's (mlflow.source.git.commit,
    REPORT.md's "git commit")."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=package,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines()  # (not split(): a checkout under `My Projects/` gave no commit at all)
    if out.returncode != 0 or len(lines) != 2:
        return None
    return lines[1] if Path(lines[0]).resolve() == package.resolve().parent else None


def worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@functools.lru_cache(maxsize=1)
def _machine() -> str | None:
    """This boot of this machine and this process's pid namespace ('<boot id>/pid:[N]'): where pids mean the same
    processes; None without Linux's /proc."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot: a reused pid has another), None when no live process has
    it (a zombie has ended its work: it only waits for its parent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # its name may hold spaces
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # fields 3 (state) and 22 (starttime) of proc(5)


def process_id(pid: int | None = None) -> str | None:
    """The PROCESS_TAG of this process (or of `pid`); None where /proc does not tell it (not Linux)."""
    pid = pid or os.getpid()
    machine, started = _machine(), _started(pid)
    return None if machine is None or started is None else f"{machine}/{pid}/{started}"


def _machine_token(machine: str) -> str:
    """A machine (boot id and pid namespace, _machine) in 8 hex digits, for a file name."""
    import hashlib

    return hashlib.sha256(machine.encode()).hexdigest()[:8]


def process_token() -> str | None:
    """This process in a file name: '<machine>-<pid>-<start time>', machine being 8 hex digits of this boot and pid
    namespace (a PROCESS_TAG holds slashes); None where /proc does not tell it (not Linux)."""
    pid = os.getpid()
    machine, started = _machine(), _started(pid)
    if machine is None or started is None:
        return None
    return f"{_machine_token(machine)}-{pid}-{started}"


def token_gone(token: str) -> bool:
    """Whether the process a process_token names has ended, known for sure (as process_gone): False for another
    machine's or pid namespace's (a results folder shared between machines), or a token not of that form."""
    parts, machine = token.split("-"), _machine()
    if len(parts) != 3 or not parts[1].isdigit() or machine is None:
        return False
    if parts[0] != _machine_token(machine):
        return False
    return _started(int(parts[1])) != parts[2]


def liveness_tags() -> dict[str, str]:
    """What tells a run of this process alive or dead: a fresh heartbeat, the worker (host:pid) and, where /proc
    tells it, the process as its machine knows it."""
    tags = {HEARTBEAT_TAG: utc_stamp(), WORKER_TAG: worker_id()}
    if process := process_id():
        tags[PROCESS_TAG] = process
    return tags


def process_gone(tag: str | None) -> bool:
    """Whether the process a PROCESS_TAG names has ended, known for sure: it ran on this machine since its last
    boot, in this pid namespace, and its pid is free or another process's now. False where that is not known (a
    run of another machine or container, no /proc, no tag: a store written before the tag)."""
    return _still_running(tag) is False


def process_alive(tag: str | None) -> bool:
    """Whether the process a PROCESS_TAG names is still running, known for sure (this machine, its pid its own
    still): a run of it whose heartbeat went stale belongs to a process that was suspended (Ctrl-Z, SIGSTOP) or
    stalled, not to a dead one. False where that is not known."""
    return _still_running(tag) is True


def _still_running(tag: str | None) -> bool | None:
    """Whether the process a PROCESS_TAG names still runs (its pid has the start time the tag recorded); None where
    this machine cannot tell (another machine or pid namespace, no tag)."""
    parts = (tag or "").rsplit("/", 2)
    if len(parts) != 3 or parts[0] != _machine() or not parts[1].isdigit():
        return None
    return _started(int(parts[1])) == parts[2]


def utc_stamp(t: float | None = None) -> str:
    """A moment as a tag holds it: '2026-11-27T19:55:01.123Z' (ISO 8601, UTC, milliseconds), readable in the UI
    (unix seconds and milliseconds were not) and in time order as text."""
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stamp_seconds(text: str | None) -> float | None:
    """A utc_stamp tag's moment in unix seconds; None for no tag or an unreadable one. Stores written before it
    hold unix seconds (heartbeats) or milliseconds (compiled_at): read as such."""
    if not text:
        return None
    try:
        if text.isdigit():
            n = int(text)
            return n / 1000 if n > 10**11 else float(n)
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def standard_tags(source: str, description: str = "") -> dict[str, str]:
    """MLflow's own tags (source, commit, user, description) and mlhw's version and worker."""
    tags = {
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
        "mlhw.version": mlhw.__version__,
    } | liveness_tags()
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
    if description:
        tags["mlflow.note.content"] = description
    return tags


def _user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class Heartbeat:
    """A daemon thread that refreshes a run's heartbeat tag until stopped."""

    def __init__(self, store: Store, run_id: str, every: float = HEARTBEAT_SECONDS):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(store.client, run_id, every), daemon=True)
        self._thread.start()

    def _beat(self, client, run_id, every):
        while not self._stop.wait(every):
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one catches up
                client.set_tag(run_id, HEARTBEAT_TAG, utc_stamp())

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def artifact_store() -> Iterator[None]:
    """Around a write of an artifact: an OSError of its folder (a full disk, its own and not the database's) is a
    failure of the tracking store (mlhw.store.ArtifactsFailed), said in one line as the database's are; one the
    store's errors already cover (a server gone, for requests) is left as it is."""
    from mlhw.store import ArtifactsFailed, store_failure

    try:
        yield
    except OSError as err:
        if store_failure(err) is not None:
            raise
        raise ArtifactsFailed(err.strerror or str(err)) from err


class RunLogger:
    """What a running job sees: metrics (batched, in sections), tags, artifacts, inputs, for one run.

    Every write to the store is a transaction (and, on SQLite, a sync to disk: 5-15 ms each on this project's
    machines). Metrics are sent in batches, at most every FLUSH_SECONDS and when the run ends. With `defer` (the
    runs that `tracked_run` opens, which flushes whatever is pending when the run ends, however it ends) params
    and tags ride along in the next batch too: a run's start params, its final metrics and its end params and
    tags are one or two writes, not five (~25 ms a run)."""

    def __init__(self, store: Store, run_id: str, defer: bool = False, known: dict[str, float] | None = None):
        self.store, self.client, self.run_id = store, store.client, run_id
        self.known = dict(known or {})  # the latest metrics a reopened run already holds (not logged again)
        self.start_time: int | None = None  # ms, where tracked_run opened the run
        self.end_time: int | None = None  # ms: the FINISHED run's end, where it is not the moment it ends (a parent)
        self._pending: list[Metric] = []
        self._params: list[Param] = []
        self._tags: dict[str, RunTag] = {}
        self._defer = defer
        self._last_flush = time.monotonic()
        self.last_step: int | None = None  # the furthest step of the metrics logged (STOPPED_TAG)

    def log_metrics(self, metrics: dict[str, float | None], step: int) -> None:
        from mlflow.entities import Metric  # MLflow: not with this module (mlhw.store.new_client)

        now = int(time.time() * 1000)
        for k, v in metrics.items():
            if v is not None:
                self._pending.append(Metric(metric_name(k), float(v), now, int(step)))
                self.last_step = int(step) if self.last_step is None else max(self.last_step, int(step))
        if time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Send everything pending, in as few batches as MLflow's limits allow (per batch: 1000 metrics, 100
        params, 100 tags, 1000 items in all)."""
        metrics, params, tags = self._pending, self._params, list(self._tags.values())
        self._pending, self._params, self._tags = [], [], {}
        while metrics or params or tags:
            p, params = params[:100], params[100:]
            t, tags = tags[:100], tags[100:]
            n = 1000 - len(p) - len(t)
            m, metrics = metrics[:n], metrics[n:]
            try:
                self.client.log_batch(self.run_id, metrics=m, params=p, tags=t)
            except BaseException:  # a locked store, a server error, SIGTERM: keep what was not sent, for end_quietly
                self._pending = m + metrics + self._pending
                self._params = p + params + self._params
                self._tags = {x.key: x for x in t + tags} | self._tags
                raise
        self._last_flush = time.monotonic()

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, json.dumps(v) if isinstance(v, list | tuple) else str(v)) for k, v in flatten(params).items()]
        self._params += [p for p in items if p not in self._params]  # the same param twice is one
        if not self._defer:
            self.flush()

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._tags |= {k: RunTag(k, str(v)) for k, v in tags.items()}  # a tag set twice: the last value
        if tags and not self._defer:
            self.flush()

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        with artifact_store():
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_text(self, text: str, name: str) -> None:
        with artifact_store():
            self.client.log_text(self.run_id, text, name)

    def log_table(self, rows: list[dict], name: str) -> None:
        """Rows as a CSV artifact (e.g. the per-epoch history)."""
        import pandas as pd

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            pd.DataFrame(rows).to_csv(path, index=False)
            folder = str(Path(name).parent)
            self.log_artifact(path, None if folder == "." else folder)

    def log_result_table(self, table) -> None:
        """A result table (mlhw.tables.ResultTable) as `reproduce` writes it to results/: tables/NAME.md and .csv."""
        from mlhw.tables import table_files

        files = table_files(table)
        for ext in ("md", "csv"):
            self.log_text(files[ext], f"tables/{table.name}.{ext}")

    def log_figure(self, draw, name: str) -> None:
        """draw(path) writes a PNG; it is stored as an artifact at `name` (e.g. figures/mlp_lr_sweep.png)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            draw(path)
            folder = str(Path(name).parent)
            self.log_artifact(path, None if folder == "." else folder)

    def log_dataset(self, data) -> None:
        """Each split as an MLflow dataset input: name, digest (our content fingerprint), source and
        size. Built directly, so logging never copies or profiles the arrays themselves."""
        import hashlib

        import numpy as np
        from mlflow.data.schema import TensorDatasetSchema
        from mlflow.entities import Dataset as MlflowDataset
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.exceptions import MlflowException
        from mlflow.types.schema import Schema, TensorSpec

        fp = data.fingerprint()
        inputs = []
        for context, split in (("training", data.train), ("validation", data.val), ("test", data.test)):
            if split is None:
                continue
            # the schema in MLflow's own tensor format, which its UI shows as a table ("Unrecognized Schema Format"
            # for one of our own), and a digest of the split's content: 'cf6774430f-trai' read as a cut-off bug
            schema = TensorDatasetSchema(
                features=Schema([TensorSpec(np.dtype(split.x.dtype), (-1, *split.x.shape[1:]), "x")]),
                targets=Schema([TensorSpec(np.dtype(split.y.dtype), (-1,), "y")]),
            )
            entity = MlflowDataset(
                name=f"{data.name}-{context}",
                digest=hashlib.sha256(f"{fp}:{context}".encode()).hexdigest()[:10],
                source_type="local",
                source=json.dumps({"description": data.source or data.name}),
                schema=json.dumps(schema.to_dict()),
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


_runs_created = 0
_runs_finished = 0
_runs_lock = threading.Lock()


def _count_run() -> None:
    global _runs_created
    with _runs_lock:
        _runs_created += 1


def _count_finished() -> None:
    global _runs_finished
    with _runs_lock:
        _runs_finished += 1


def runs_finished() -> int:
    """How many runs this process has ended FINISHED (tracked_run): a command whose standard output failed after
    its runs were done says they are (`mlhw svm soft > /dev/full` said only that the writing failed)."""
    return _runs_finished


def runs_created() -> int:
    """How many runs this process has created (tracked_run; a reproduction's suite parents, made before any unit
    starts, under --jobs N too): a command whose store failed before its first run has left none RUNNING."""
    return _runs_created


@contextlib.contextmanager
def tracked_run(
    store: Store,
    name: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    parent: str | None = None,
    claim=None,
) -> Iterator[RunLogger]:
    """Open a run; it ends FINISHED, FAILED (with error.txt) or KILLED (Ctrl-C, SIGTERM).

    While open, a heartbeat tag is refreshed every HEARTBEAT_SECONDS, so a run whose process died
    (SIGKILL, power loss) is recognisably stale. `claim(store, run)` (see mlhw.claims) is called right
    after the run is created and may raise `Claimed`: another process owns this identity.
    """
    all_tags = liveness_tags()
    all_tags |= {k: str(v) for k, v in (tags or {}).items()}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    # Ctrl-C or SIGTERM just after the run exists (inside create_run, after its commit) would leave it RUNNING
    # with nobody to end it: hold them until the try below, where they end the run KILLED.
    with contextlib.ExitStack() as hold:
        hold.enter_context(signals_deferred())
        run = store.client.create_run(store.experiment_id, run_name=name, tags=all_tags)
        _count_run()
        log = RunLogger(store, run.info.run_id, defer=True)
        log.start_time = run.info.start_time
        beat = Heartbeat(store, run.info.run_id)
        held = hold.pop_all()
    ending = False
    try:
        held.close()  # a signal that came during the creation is acted on here
        if claim is not None:  # inside the try: a claim that fails (or is interrupted) still ends the run
            claim(store, run)
        if params:  # written at once (one write): a run whose process is killed later still shows its config
            log.log_params(params)
            log.flush()
        yield log
        beat.stop()
        log.flush()
        ending = True
        store.client.set_terminated(log.run_id, "FINISHED", end_time=log.end_time)
        _count_finished()
    except KeyboardInterrupt:  # Ctrl-C and SIGTERM (Terminated)
        beat.stop()
        # A signal held through the FINISHED write (a SQLite store's calls defer them) is acted on once it is
        # committed: the run is done, and ending it KILLED would throw away its work (the next reproduce redoes it)
        if not (ending and status_of(store, log.run_id) == "FINISHED"):
            end_quietly(log, "KILLED")
        raise
    except BaseException as err:
        beat.stop()
        from mlhw.claims import Claimed

        if isinstance(err, Claimed):  # a nested run was owned elsewhere: this one did nothing
            end_quietly(log, "KILLED", delete=True)
        elif not getattr(err, STORE_DOWN, False):
            from mlhw.store import is_server, server_unanswered

            # a server that did not answer through MLflow's retries is not asked again to end the run: on one that
            # hangs each call took 93 s, and ending the run (its metrics, error.txt, its status) took a unit's failure
            # from 93 s to 281 s; the next command ends it (FAILED, its process gone)
            unanswered = is_server(store.uri) and server_unanswered(err)
            if unanswered or not end_quietly(log, "FAILED", traceback.format_exc()):
                # the store failed to end it, too: the runs this error passes through on its way out (a
                # reproduction's suite parents) are left RUNNING for the next reproduce to end, not each tried
                # again after MLflow's retries (2-3 s a call on a server gone: 25-35 s for the eight parents)
                setattr(err, STORE_DOWN, True)
        raise
    finally:
        beat.stop()


def status_of(store: Store, run_id: str) -> str | None:
    """A run's status in the store; None where it cannot be read (the store going away with the process)."""
    try:
        return store.client.get_run(run_id).info.status
    except Exception:
        return None


STORE_DOWN = "_mlhw_store_down"  # set on an error whose run the failing store could not end (tracked_run)


def end_quietly(log: RunLogger, status: str, error: str | None = None, delete: bool = False) -> bool:
    """End a run after a failure without masking the original exception. False where the tracking store is down
    (mlhw.store.store_down: a server gone, a full disk; not a locked database) and did not end it; once it has
    failed so here, only the call that ends the run is tried (each costs MLflow's retries on a server gone)."""
    from mlhw.store import store_down

    if status in ("KILLED", "FAILED") and getattr(log, "last_step", None) is not None:
        from mlflow.entities import RunTag

        log._tags[STOPPED_TAG] = RunTag(STOPPED_TAG, str(log.last_step))  # sent with the metrics still pending
    for step in [log.flush, *([lambda: log.log_text(error, "error.txt")] if error else [])]:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - the original exception is the one to raise
            if store_down(exc):
                break
    try:
        log.client.set_terminated(log.run_id, status)
    except Exception as exc:  # noqa: BLE001
        if store_down(exc):
            return False
    if delete:
        with contextlib.suppress(Exception):
            log.client.delete_run(log.run_id)
    return True
