"""How `--jobs N` starts its helper processes: spawned with SIGINT ignored, ending with their parent, and the MLflow
writer's signals.

Only the standard library here: a spawned child imports the module of its Process class and of its initializer
before it runs anything, and the writer (the relay's manager process) imported all of mlhw.executors, MLflow with
it, for these few lines: 1.1 s on this project's 2-core CPU, during which the parent waited in the manager's start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import NoReturn

# what a spawned worker or writer ignores from its first instruction: Ctrl-C and a closed terminal's hangup reach the
# whole process group, and the parent stops its children itself (SIGTERM), which ends their runs KILLED
QUIET_SIGNALS = (signal.SIGINT, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


class QuietSpawnProcess(SpawnProcess):
    """A spawned process that starts with SIGINT and SIGHUP ignored: a terminal's Ctrl-C reaches the whole group, the
    children too while they import (2-3 s, before their initializer ignores it), and each printed a KeyboardInterrupt
    traceback; its hangup killed a worker or the MLflow writer (runs left unanswered). SIG_IGN survives exec (Python
    then installs no handler); the parent ignores them only for the fork."""

    def start(self) -> None:
        main = threading.current_thread() is threading.main_thread()
        old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in QUIET_SIGNALS} if main else {}
        try:
            super().start()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _bootstrap(self, parent_sentinel=None) -> int:
        # the child's whole life (multiprocessing's own method: the target, its exit handlers, the flushed streams),
        # then the end a forked child gets from multiprocessing itself (os._exit): see end_now
        code = super()._bootstrap(parent_sentinel)
        end_now(code)
        return code  # not reached


def end_now(code: int) -> NoReturn:
    """End this process as a normal exit does, less the interpreter's teardown: the non-daemon threads are waited
    for, the exit handlers run (atexit: logging's, multiprocessing's, MLflow's), the standard streams are flushed,
    then os._exit. The teardown (every module cleared, every object searched for cycles) is most of what a process
    spends on its way out once torch, MLflow and pandas are loaded: 2.6 s of a ci reproduce after its last line on
    the 2-core CPU (0.1 s without it), each worker's the same beside the report. Freezing the objects instead
    (gc.freeze) saved most of it, but then triton's extension, loaded by torch's optimizers, reported its objects as
    leaked ("nanobind: leaked 4 instances!" and 64 types) at the end of every reproduce."""
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's own exit calls it
    if run_exit_handlers is None:  # another interpreter: the usual exit
        raise SystemExit(code)
    # threading's own exit hooks first, as the interpreter's shutdown runs them before it waits for threads: a
    # ThreadPoolExecutor's workers (MLflow downloads artifacts through one) end only when told by such a hook, and a
    # reproduce that had read another's artifacts from a tracking server waited for them for ever
    for hook in reversed(getattr(threading, "_threading_atexits", [])):
        hook()
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


class QuietSpawnContext(SpawnContext):
    Process = QuietSpawnProcess


def writer_signals() -> None:
    """The MLflow writer (the relay's manager process) outlives Ctrl-C and SIGTERM sent to the whole process group
    (a terminal, a CI runner's cancel, `kill -- -PGID`): the workers end their runs KILLED through it, and their
    parent stops it once they have (or it ends with a parent that is gone). A writer that died with the group
    left the workers' last calls unanswered: the runs stayed RUNNING, or the parent marked them after waiting its
    full 10 s for workers that could not finish. MLflow is imported on a thread of its own, while the workers
    start: the writer answers at once, and its first call (a worker's, seconds later) finds MLflow loaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (a hangup: ignored from its start, QuietSpawnProcess)
    exit_with_parent()
    threading.Thread(target=_load_mlflow, name="mlhw-writer-imports", daemon=True).start()


def start_resource_tracker() -> None:
    """multiprocessing's resource tracker (a process of the parent's group, started with the first pool) deaf to a
    hangup, as it is to SIGINT and SIGTERM: a closed terminal's SIGHUP killed it, and its relaunched self printed
    'process died unexpectedly' and a KeyError traceback per semaphore under the reproduction's last line. The
    handler put back at once (a SIGHUP to the parent in that moment is lost, not the reproduction)."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import resource_tracker

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the child keeps an ignored signal across its exec
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def _load_mlflow() -> None:
    try:
        from mlhw.store import import_mlflow

        import_mlflow()  # MLflow, and its logging quieted as in every process
    except Exception:  # noqa: BLE001, S110 - the first call imports it again and says what fails
        pass


def exit_with_parent() -> None:
    """A worker or the writer whose parent is gone (SIGKILL, the OOM killer) ends too: it would wait for work
    forever, holding its memory (and a GPU's, once warm_cuda ran)."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # waits on the parent's sentinel: it closes when the parent exits
        os._exit(143)

    threading.Thread(target=watch, name="mlhw-parent-watch", daemon=True).start()
