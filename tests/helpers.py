"""Test helpers: writers of tiny dataset files in the official on-disk formats, the CLI, MLflow read-back,
a real local `mlflow server`, and the one-line-error oracle shared by the robustness tests."""

import contextlib
import gzip
import os
import pickle
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlhw.relay import Relay, RelayManager


def tiny_cnn_suite(part: str, *variants: str) -> dict:
    """An AlexNet suite of the assignment's `part` (cnn.a, cnn.c) quick enough for a test: one epoch at an eighth of
    the width on 67 px digits, a run per variant. A fresh dict each call."""
    return {
        "kind": "cnn",
        "part": part,
        "base": {"epochs": 1, "width": 0.125, "image_size": 67},
        "grid": {"variant": list(variants)},
    }


def sweep_suite() -> dict:
    """The suites' quickest MLP learning-rate sweep (two rates, 200 / 50 digits, 2 epochs): one unit of two runs that
    train together. A fresh dict each call: a test may change its copy."""
    return {
        "kind": "mlp",
        "part": "mlp.b",
        "base": {"epochs": 2, "train_size": 200, "test_size": 50},
        "grid": {"lr": [0.1, 1.0]},
    }


def light_spec(profile: str = "tiny", epochs: int = 2, train_size: int = 300) -> dict:
    """An experiments file of three units and no CNN (seconds): the two-rate sweep, two seeds of the full run, the
    soft SVM."""
    return {
        "version": 1,
        "suites": {
            "mlp_lr_sweep": sweep_suite(),
            "mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": epochs, "train_size": train_size}},
            "svm_soft": {"kind": "svm_soft", "part": "svm.q3"},
        },
        "profiles": {profile: {"defaults": {"dataset": "digits"}, "suites": {"mlp_full": {"seeds": [8, 9]}}}},
    }


def write_idx(path: Path, arr: np.ndarray) -> None:
    """idx: 0x0000, dtype 0x08 (uint8), ndim, big-endian uint32 dims, then the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(head + arr.tobytes())


def mnist_arrays(n_train: int, n_test: int, side: int = 2):
    """Images whose pixels encode their index, so any reordering or truncation is visible."""

    def images(n, offset):
        idx = np.arange(n)[:, None, None] + offset
        return ((idx + np.arange(side * side).reshape(side, side)) % 251).astype(np.uint8)

    return (
        images(n_train, 0),
        (np.arange(n_train) % 10).astype(np.uint8),
        images(n_test, 7),
        ((np.arange(n_test) * 3) % 10).astype(np.uint8),
    )


def write_mnist_idx(folder: Path, n_train: int, n_test: int, gz: bool = True, side: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    tx, ty, sx, sy = mnist_arrays(n_train, n_test, side)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", tx)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", ty)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", sx)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", sy)
    return tx, ty, sx, sy


def write_mnist_pickle(path: Path, sizes=(30, 10, 20), seed: int = 0):
    rng = np.random.RandomState(seed)
    parts = tuple((rng.rand(n, 784).astype(np.float32), rng.randint(0, 10, n).astype(np.int64)) for n in sizes)
    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f)
    return parts


def write_cifar_batches(folder: Path, per_batch: int = 20, n_test: int = 15, seed: int = 0):
    """data_batch_1..5 and test_batch: pickled dicts with 'data' (N, 3072) uint8 and 'labels'."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    batches = []
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        d = {
            "data": rng.randint(0, 256, (n, 3072)).astype(np.uint8),
            "labels": list(rng.randint(0, 10, n)),
            "batch_label": name,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
        batches.append(d)
    return batches


def invoke(*args):
    """`mlhw ARGS` through typer's CliRunner (stdout and stderr kept apart)."""
    from typer.testing import CliRunner

    from mlhw.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def reproduce_tiny(workdir, *args):
    """`mlhw reproduce --profile tiny` of the spec in workdir/exp.yaml, on a SQLite store in workdir."""
    return invoke(
        "reproduce", "--profile", "tiny", "--file", workdir / "exp.yaml", "--tracking-uri",
        f"sqlite:///{workdir}/mlflow.db", *args,
    )  # fmt: skip


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = 120.0, every: float = 0.2):
    """Poll `predicate` until it returns something true (returned). An exception is taken as 'not yet' (the store
    is being written by the other process). Where `proc` ends first, fail at once with its stderr: a child that
    died at start-up left CI polling for two minutes with nothing to show for it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = predicate()
        except Exception:  # noqa: BLE001
            found = None
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before it was seen:\n{err[-4000:]}")
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s")


def sqlite_rows(db: Path, query: str) -> list:
    """The rows of a query on a SQLite store that another process writes, read without MLflow: opened read-only, so
    that a poll never creates the file (an MlflowClient creates and migrates a missing database, racing the command
    under test, which makes its own under a lock), and none while it does not exist yet."""
    if not Path(db).is_file():
        return []
    with contextlib.closing(sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, timeout=1)) as con:
        return con.execute(query).fetchall()


class LazyClient:
    """An MlflowClient of `uri` made at its first use, after the command under test made the store: made before, it
    created the SQLite database itself, through MLflow's migrations (1-1.7 s a test, where mlhw copies its empty
    template), and a test that asserts nothing was created found the file it had made."""

    def __init__(self, uri: str):
        self.uri, self._client = uri, None

    def __getattr__(self, name):
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return getattr(self._client, name)


def runs_of(uri: str, experiment: str = "mlhw", all_lifecycles: bool = False):
    """The MLflow client of a store and the runs of one experiment (none if it does not exist)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    view = ViewType.ALL if all_lifecycles else ViewType.ACTIVE_ONLY
    return client, ([] if exp is None else client.search_runs([exp.experiment_id], run_view_type=view))


# --- bad files: raw bytes in (or around) the official formats, for the robustness tests ----------


def idx_bytes(arr: np.ndarray, type_code: int = 0x08, ndim: int | None = None) -> bytes:
    """An idx file's bytes (uncompressed); `type_code` and `ndim` may lie about the payload."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    nd = arr.ndim if ndim is None else ndim
    return struct.pack(">HBB", 0, type_code, nd) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def gzip_bytes(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def write_file(path: Path, raw: bytes, gz: bool | None = None) -> Path:
    """Write bytes as they are, gzip-compressed first when `gz` (default: when the name ends in .gz)."""
    gz = path.suffix == ".gz" if gz is None else gz
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip_bytes(raw) if gz else raw)
    return path


def write_pickle(path: Path, obj, gz: bool | None = None) -> Path:
    """Any object pickled (protocol 2, as the official batches), gzip-compressed when the name ends in .gz."""
    return write_file(path, pickle.dumps(obj, protocol=2), gz)


def mnist_mirror_names(folder: Path) -> None:
    """Rename the 4 idx files the way popular mirrors name them: train-images.idx3-ubyte[.gz]."""
    for p in list(folder.iterdir()):
        if "-idx" in p.name:
            p.rename(p.with_name(p.name.replace("-idx", ".idx", 1)))


# --- tracking servers and processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(root: str | Path, timeout: float = 120.0) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 and a free port (SQLite store and artifacts under `root`),
    yielding its URI once /health answers; stopped, with its process group, on exit."""
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
        # as `mlhw ui` does: MLflow's job runner (7 huey consumers, 1.6 GB, polling all along) is for GenAI jobs
        # these tests never start; it ran beside test_scale.py's runs, on a CI machine of 2 cores
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | dict(os.environ),
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
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break


def live_processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process that is not a zombie, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        if state not in ("Z", "X"):
            out[int(entry.name)] = (ppid, pgrp, state)
    return out


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` in the process tree."""
    procs = live_processes()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (ppid, _, _) in procs.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


# --- the robustness oracle: one line, exit 2, nothing created -------------------------------------------


def assert_one_line_error(res, *needles: str) -> str:
    """Exit code 2 and exactly one line on stderr, `error: ...`, containing every needle."""
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_nothing_created(workdir: Path, uri: str | None = None) -> None:
    """No MLflow run in the store (nor the default ./mlflow.db), no file under results/."""
    for store in {uri, f"sqlite:///{workdir}/mlflow.db"} - {None}:
        if store.startswith("sqlite:///") and not Path(store[len("sqlite:///") :]).exists():
            continue
        assert runs_of(store, all_lifecycles=True)[1] == [], store
    results = workdir / "results"
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*")), list(results.rglob("*"))


def failing_cnn_worker(settings, device=None, datasets=(), ray_task=False, warm=None) -> None:
    """A `--jobs` worker initializer whose CNN training raises once a run has started (importable by name,
    so a spawned worker process can run it): the real initializer, then a broken `train_cnn`."""
    import mlhw.cnn
    from mlhw import executors

    # in the worker process: the real one (the parent patched its own copy)
    executors.prepare_worker(settings, device, datasets, ray_task, warm)

    def broken(*a, **kw):
        raise RuntimeError("injected failure inside the worker")

    mlhw.cnn.train_cnn = broken


def server_gone():
    """A dead server as MLflow's REST client raises it: requests' ConnectionError, raised again inside its handler."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        try:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except OSError as e:
                raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1'): Max retries") from e
        except requests.exceptions.ConnectionError as e:
            # as MLflow does it: raised in the handler, the ConnectionError its context, not its cause
            raise MlflowException(f"API request to http://127.0.0.1/api/2.0/mlflow/runs/search failed with {e}")  # noqa: B904
    except MlflowException as e:
        return e


def dead_store_worker(settings, device=None, datasets=(), ray_task=False, warm=None) -> None:
    """A `--jobs` worker initializer (importable by name, so a spawned worker process can run it) whose tracking
    server is gone once a unit starts: the real initializer, then every claim of a run raises server_gone()."""
    from mlhw import executors

    executors.prepare_worker(settings, device, datasets, ray_task, warm)

    def gone(*a, **kw):
        def claim(store, run):
            raise server_gone()

        return claim

    executors.claimer = gone


def unopened_store_worker(settings, device=None, datasets=(), ray_task=False, warm=None) -> None:
    """A `--jobs` worker initializer (importable by name) whose tracking server is gone before its first unit:
    the real initializer, then opening the store fails as mlhw.store.probe_server says it."""
    from mlhw import executors
    from mlhw.errors import MLHWError

    executors.prepare_worker(settings, device, datasets, ray_task, warm)

    def gone(uri, *a, **kw):
        raise MLHWError(f"--tracking-uri {uri}: server not reachable ([Errno 111] Connection refused)")

    executors.Store = gone


def deviceless_worker(settings, device=None, datasets=(), ray_task=False, warm=None) -> None:
    """A `--jobs` worker initializer (importable by name) whose device cannot be had in the worker (a GPU the
    parent saw, gone in the worker): every resolve_device raises, in the real initializer and at each unit."""
    import mlhw.device
    from mlhw import executors
    from mlhw.errors import MLHWError

    def gone(name="auto"):
        raise MLHWError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")

    mlhw.device.resolve_device = gone
    executors.prepare_worker(settings, device, datasets, ray_task, warm)


def offline_download_worker(settings, device=None, datasets=(), ray_task=False, warm=None) -> None:
    """A `--jobs` worker initializer (importable by name, so a spawned worker process can run it) where --download
    fetches no MNIST: the test wrote the files (no network in the tests); then the real initializer."""
    import mlhw.data
    from mlhw import executors

    mlhw.data._fetch_mnist = lambda data_dir: None
    executors.prepare_worker(settings, device, datasets, ray_task, warm)


def pattern_digits(n_train: int, n_test: int):
    """Digits-like float32 images in [0, 1] (1 x 8 x 8) with learnable labels: the class of the strongest of
    ten fixed pixel patterns (numpy seed 0). Float32 pixels, as digits' and Nielsen's MNIST's."""
    import numpy as np

    from mlhw.data import Dataset, Split

    rng = np.random.RandomState(0)
    patterns = rng.rand(10, 64)

    def split(n):
        x = rng.rand(n, 1, 8, 8).astype(np.float32)
        return Split(x, (x.reshape(n, -1) @ patterns.T).argmax(1).astype(np.int64))

    return Dataset("digits", split(n_train), split(n_test))


# --- the relay of --jobs on SQLite: processes that write through it, and a relay over a fake client ------


def relay_writer(relay, experiment_id: str, n: int, name: str) -> None:
    """A worker process's share of the relay test: a run, n metric batches and a tag per batch, then FINISHED."""
    from mlflow.entities import Metric, RunTag

    from mlhw.relay import RelayedClient

    client = RelayedClient(relay)
    run = client.create_run(experiment_id, run_name=name)
    for step in range(n):
        client.log_batch(
            run.info.run_id, metrics=[Metric("train/loss", step / n, 0, step)], tags=[RunTag("at", str(step))]
        )
    client.set_terminated(run.info.run_id, "FINISHED")


class SlowClient:
    """Stands in for an MlflowClient in the relay: one slow call, one that answers at once."""

    def slow(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slow"

    def echo(self, value):
        return value


def make_fake_relay():
    relay = Relay("unused")
    relay._client = SlowClient()
    return relay


class FakeRelayManager(RelayManager):
    """A manager whose FakeRelay() is a Relay over SlowClient (module level: its spawned process finds it)."""


FakeRelayManager.register("FakeRelay", make_fake_relay, exposed=("call",))


def fake_relay_manager():
    import multiprocessing

    manager = FakeRelayManager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    return manager


def open_store_at_once(uri: str, barrier, answers) -> None:
    """In a spawned process: wait for the others, open (create) the store, answer "ok" or the error."""
    from mlhw.store import Store

    barrier.wait()
    try:
        Store(uri, "together")
        answers.put("ok")
    except BaseException as err:
        answers.put(f"{type(err).__name__}: {err}")


def database_locked(sql: str = "UPDATE runs SET status=?"):
    """A SQLite database another process held past the busy timeout, as MLflow's SQLAlchemy store raises it at `sql`."""
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as e:
            raise sqlalchemy.exc.OperationalError(f"[SQL: {sql}]", {}, e) from e
    except sqlalchemy.exc.OperationalError as e:
        err = MlflowException(message=e)
        err.__cause__ = e
        return err
