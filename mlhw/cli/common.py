"""What every command shares: option types, error handling, progress and output."""

from __future__ import annotations

import codecs
import collections
import contextlib
import errno
import functools
import itertools
import json
import math
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, Optional, get_args

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mlhw.errors import MLHWError, float_beyond_range, undecodable_bytes


def _piped_width() -> int:
    """Piped (a log, CI): 160 columns (rich would cut tables at 80 and lose numbers), unless COLUMNS says otherwise,
    as a user who sets it expects; a COLUMNS of no use (0, 'wide') is not taken (COLUMNS=0 printed nothing)."""
    text = os.environ.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) >= 20 else 160


def _tty(stream) -> bool:
    """Whether a stream is a terminal; a stream closed when the process started (`mlhw ... >&-`) is None, and its
    isatty() at import was a traceback, AttributeError, before any command."""
    return stream is not None and stream.isatty()


_PIPED = _piped_width()
out = Console(width=None if _tty(sys.stdout) else _PIPED)  # tables and reports
err = Console(stderr=True, width=None if _tty(sys.stderr) else _PIPED)  # progress; --json keeps stdout clean

DATA, MODEL, TRAIN, TRACK, OUTPUT = "Data", "Model", "Training", "Tracking", "Output"


def n_runs(n: int) -> str:
    """'1 run', '3 runs'."""
    return f"{n} run" + "s" * (n != 1)


def say_ended(reasons: list[str]) -> None:
    """Runs a dead process left RUNNING, ended FAILED by this command (claims.end_stale_runs), on stderr: they were
    ended without a word, and the MLflow UI then showed FAILED runs that no command had said it failed."""
    if reasons:
        why = ", ".join(f"{n} {r}" for r, n in sorted(collections.Counter(reasons).items()))
        err.print(
            f"ended {n_runs(len(reasons))} left RUNNING by a process that is gone or silent: FAILED, tag mlhw.dead "
            f"says why ({why})",
            highlight=False,
            soft_wrap=True,
        )


# the profiles of the shipped experiments.yaml, as --profile's help names them (a test keeps them equal): read from
# the file at every start they would load it for each command, --help too; another --file's are its own
PROFILES = "digits (embedded data, every part, < 5 min on a CPU), paper (MNIST + CIFAR-10, a GPU) or ci (tiny)"
Profile = Annotated[str, typer.Option(metavar="<name>", help=f"Profile of experiments.yaml: {PROFILES}.")]

DataDir = Annotated[
    str,
    typer.Option(
        "--data-dir",
        envvar="MLHW_DATA_DIR",
        rich_help_panel=DATA,
        help="Folder holding MNIST (idx files or mnist.pkl.gz) or cifar-10-batches-py/.",
    ),
]
MnistDir = Annotated[  # the commands whose datasets are digits (embedded) or MNIST
    Optional[str],
    typer.Option(
        "--data-dir",
        envvar="MLHW_DATA_DIR",
        rich_help_panel=DATA,
        show_default="data",
        help="Folder holding MNIST (the four idx files, .gz or not, or mnist.pkl.gz).",
    ),
]
CifarDir = Annotated[  # the CNN's: digits (embedded) or CIFAR-10
    Optional[str],
    typer.Option(
        "--data-dir",
        envvar="MLHW_DATA_DIR",
        rich_help_panel=DATA,
        show_default="data",
        help="Folder holding CIFAR-10's python batches, cifar-10-batches-py/.",
    ),
]
Download = Annotated[
    Optional[bool],
    typer.Option(
        "--download/--no-download",
        rich_help_panel=DATA,
        show_default="auto",
        help="Download the dataset (default: only when it is absent and the network works).",
    ),
]


def _seed_default() -> str:
    """The --seed option's default as the config classes that use this option (MLP, SVMs) hold it, not repeated here."""
    from mlhw.config import MLPConfig, MulticlassSVMConfig, SoftSVMConfig, default_of

    found = {default_of(m, "seed") for m in (MLPConfig, MulticlassSVMConfig, SoftSVMConfig)}
    return found.pop() if len(found) == 1 else "per command"


Seed = Annotated[
    Optional[int],
    typer.Option(
        help="Seed of the subsets, the initialisation and the data order.",
        rich_help_panel=TRAIN,
        show_default=_seed_default(),
    ),
]
SvmSeed = Annotated[  # the SVMs draw nothing at random but their subsets (and the subgradient's start: zeros)
    Optional[int],
    typer.Option(help="Seed of the training and test subsets.", rich_help_panel=TRAIN, show_default=_seed_default()),
]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].", rich_help_panel=TRAIN)]
PrecisionMode = Literal["auto", "bf16", "fp16", "fp32"]  # mlhw.device.PRECISIONS (not imported: it loads torch)
Precision = Annotated[  # AlexNet's (cnn commands; reproduce says it in its own words)
    PrecisionMode,
    typer.Option(
        # (at 80 columns '<auto|bf16|fp16|fp32>' broke mid-word in `cnn train`'s Training panel, beside
        # --batchnorm/--no-batchnorm: those are in a Model panel of their own)
        metavar=f"<{'|'.join(get_args(PrecisionMode))}>",
        help="auto, bf16, fp16 or fp32. auto: bf16 where the hardware has native bf16, fp16 + loss scaling on older "
        "GPUs (T4, V100), else fp32.",
        rich_help_panel=TRAIN,
    ),
]
TrackingUri = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri",
        rich_help_panel=TRACK,
        show_default="$MLFLOW_TRACKING_URI or sqlite:///mlflow.db",
        help="MLflow tracking store: sqlite:///PATH.db or http://HOST:PORT.",
    ),
]
Experiment = Annotated[  # None: $MLFLOW_EXPERIMENT_NAME's, else mlhw (mlhw.store.resolve_experiment)
    Optional[str],
    typer.Option(
        rich_help_panel=TRACK,
        show_default="$MLFLOW_EXPERIMENT_NAME or mlhw",
        help="MLflow experiment name (mlhw takes names, not ids: MLFLOW_EXPERIMENT_ID without this option is refused).",
    ),
]
ResultsDir = Annotated[str, typer.Option(help="Where figures and tables are written.", rich_help_panel=OUTPUT)]
Json = Annotated[
    bool,
    typer.Option("--json", rich_help_panel=OUTPUT, help="Print each run's final metrics as a JSON line on stdout."),
]


def examples(*pairs: tuple[str, str]) -> str:
    """A command's Examples, its help's epilog: what each does, then its command line, indented, to copy as it is (a
    long one as lines joined by a backslash, each under 80 columns). A new user's --help showed none."""
    from rich.markup import escape

    def line(text: str) -> str:  # (rich's escape() doubles a backslash that ends the text: `\\` in the help)
        return escape(text[:-1]) + "\\" if text.endswith("\\") else escape(text)

    lines = ["[bold]Examples[/bold]"]  # (Typer dedents the lines after the first by their common indent)
    for what, command in pairs:
        lines += [line(what), *(f"  {line(c)}" for c in command.splitlines())]
    return "\n".join(lines)


def config_option(model, help: str, field: str, panel: str = TRAIN, **kw):
    """A Typer option for a config field: its default is shown from the config class, never repeated here; a field
    of names shows them as its metavar (`--dataset <digits|mnist>`, not `<str>`: a test checks every option)."""
    from mlhw.config import default_of

    kw.setdefault("metavar", choices_metavar(model.model_fields[field].annotation))
    return typer.Option(help=help, rich_help_panel=panel, show_default=default_of(model, field), **kw)


def choices_metavar(annotation) -> str | None:
    """'<digits|mnist>' for a Literal field; None (Typer's own) for any other. Every list in full: '<choice>' (for
    a list over 14 characters, which broke mid-word at 80 columns) hid the values beside '<digits|mnist>'; every
    panel has room at 80 columns for its longest (`svm soft --bias <free|regularized|none>`)."""
    from typing import get_origin

    if get_origin(annotation) is not Literal:
        return None
    return "<" + "|".join(str(a) for a in get_args(annotation)) + ">"


def prepare(
    cfg,
    name: str,
    part: str,
    command: str,
    data_dir,
    download,
    tracking_uri,
    experiment,
    device="auto",
    replicas: int = 1,
):
    """A single-run command's setup, all of it before any run exists: the data read and checked, the
    store reachable and writable; returns the data source, the store and the job (identity included).
    `replicas`: the MLP networks trained together (a sweep's rates), weighed together against the memory."""
    from mlhw.runs import DataSource, Job
    from mlhw.store import Store

    source = DataSource("data" if data_dir is None else data_dir, download, str(device))  # (refuses '' --data-dir)
    if getattr(cfg, "dataset", None) == "digits":  # nothing to read or fetch: a forgotten --dataset, most likely
        reads = "cifar10" if cfg.kind == "cnn" else "mnist"
        if data_dir is not None and data_dir != os.environ.get("MLHW_DATA_DIR"):  # (the variable: any command's)
            raise MLHWError(f"--data-dir {data_dir}: not used here (digits is embedded; --dataset {reads} reads it)")
        if download:
            raise MLHWError(f"--download: not used here (digits is embedded; --dataset {reads} downloads)")
    ident = source.identity(cfg)
    problem = source.unusable(cfg, replicas)  # data that cannot be trained on fails here, naming the option
    if problem is not None:
        raise MLHWError(f"--{problem[0].replace('_', '-')}: {problem[1]}")
    store = Store(tracking_uri, experiment)
    store.check_artifacts_writable()
    from mlhw.claims import SINGLE_COMMAND_STALE_SECONDS, end_stale_runs
    from mlhw.reference import PART_DESCRIPTIONS

    # what a lost server or a SIGKILL left RUNNING (this command's own run as well, run again); not a run of a process
    # still running here, suspended or stalled: this command does not train it again, and ended it FAILED for nothing;
    # nor one of another machine whose heartbeat is late by less than SINGLE_COMMAND_STALE_SECONDS
    say_ended(end_stale_runs(store, SINGLE_COMMAND_STALE_SECONDS, spare_running_here=True))

    tags = {"mlhw.part": part, "mlhw.parts": part}
    return source, store, Job(cfg, ident, name, tags, PART_DESCRIPTIONS.get(part, ""), command)


def tracking_hint(store) -> str:
    """Where the runs went, and the command that browses exactly that store."""
    import os

    from mlhw.store import DEFAULT_URI, experiment_words, is_server

    if is_server(store.uri):  # the server is the UI: its runs' page, in the model-training view (as `mlhw ui` links
        # it; the server's bare address opened its experiment list, in the GenAI view)
        page = f"{store.uri.rstrip('/')}/#/experiments/{store.experiment_id}/runs?workflowType=machine_learning"
        return f"tracking: {store.uri} (experiment {store.experiment_name!r}); its runs: {page}"
    same = store.uri == (os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI)
    words = ["mlhw", "ui"] + ([] if same else ["--tracking-uri", store.uri])
    words += experiment_words(store.experiment_name)
    # quoted for the shell (a store under `my dir/`: the unquoted command opened `sqlite:///my`, as
    # reproduce's `mlhw tables` hint is quoted), and on the experiment the runs are in (ui's own is
    # $MLFLOW_EXPERIMENT_NAME's or mlhw: named in full where it is not mlhw, or a variable here names another)
    return f"tracking: {store.uri} (experiment {store.experiment_name!r}); `{shlex.join(words)}` to browse"


RUNS_KILLED = "any active run is marked KILLED"
# a single command keeps no plan: run again it trains every run anew, finished ones too (a user who stopped a `cnn
# compare` after its first variant expected it to go on, as reproduce's message says reproduce does)
STARTS_OVER = (
    f"{RUNS_KILLED}, finished ones stay FINISHED; run again, this command starts over (`mlhw reproduce` resumes)"
)


def _out_of_memory(e: BaseException) -> bool:
    """torch's allocation failures: RuntimeError on the CPU ('DefaultCPUAllocator: can't allocate memory'),
    torch.OutOfMemoryError (a RuntimeError) on CUDA."""
    text = str(e)
    return type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in text or "out of memory" in text


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


STORE_FAILED = "runs it was writing may be left RUNNING"
# a single command's: it keeps no plan to resume, and said no more, while its run stayed RUNNING in the UI
STORE_FAILED_SINGLE = (
    f"{STORE_FAILED} (the next mlhw command that trains or solves on this experiment, once the store is back, marks "
    "them FAILED)"
)
# said instead of `store_failed` where the store failed before the command created a run (a locked database)
NO_RUN_CREATED = "it had created no run"


class StdoutFailed(Exception):
    """Writing to standard output failed: a full disk under `> file` (ENOSPC, /dev/full), a terminal gone (EIO), a
    reader that closed the pipe (EPIPE: `| head`). Raised by GuardedStdout, the one path every write to stdout takes
    (rich's tables, typer.echo, click's help); `done`: what the command had done by then, which its line says."""

    def __init__(self, err: OSError, done: str | None = None):
        super().__init__(err.strerror or str(err))
        self.errno, self.strerror, self.done = err.errno, err.strerror or str(err), done


class GuardedStdout:
    """sys.stdout as the `mlhw` entry point installs it: an OSError of a write or a flush becomes StdoutFailed (each
    time: click's stream probe swallows the first), until said_stdout_failed has said it; then writes go nowhere, so
    that the exit's flush says nothing more. Before, a full disk gave a traceback after the runs were done (rich's
    print: OSError Errno 28), and the verdict was never said; a closed pipe ended the command where rich or click
    met it, quietly, exit 1, the verdict unsaid too."""

    def __init__(self, stream):
        self._stream, self.said = stream, False

    def _guarded(self, call, *args):
        if self.said:
            return len(args[0]) if args and isinstance(args[0], str | bytes) else None
        try:
            return call(*args)
        except OSError as err:
            raise StdoutFailed(err) from None

    def write(self, text):
        return self._guarded(self._stream.write, text)

    def writelines(self, lines):
        return self._guarded(self._stream.writelines, lines)

    def flush(self):
        return self._guarded(self._stream.flush)

    def __getattr__(self, name):  # isatty, fileno, encoding, buffer...: the stream's own
        return getattr(self._stream, name)


class _Closed:
    """Standard output closed when the process started (`mlhw ... >&-`, Python's sys.stdout None): each write fails
    as a closed descriptor does (EBADF), so that it is said, not lost in silence (rich and click drop writes to a
    None stdout, and `mlhw reproduce >&-` would end 0 with its tables gone)."""

    def write(self, text):
        raise OSError(errno.EBADF, "Bad file descriptor (it was closed)")

    writelines = write

    def flush(self):
        pass

    def isatty(self):
        return False


# what mlhw prints beyond ASCII (mean ± std, a run name's ·, the findings' ≥, rich's bars and ellipses), in ASCII
_PLAIN = {
    "±": "+/-", "·": "-", "×": "x", "−": "-", "–": "-", "—": "--", "…": "...", "≥": ">=", "≤": "<=", "≠": "!=",
    "≈": "~", "∞": "inf", "→": "->", "⇒": "=>", "•": "*", "‘": "'", "’": "'", "“": '"', "”": '"',
    "━": "-", "─": "-", "┃": "|", "│": "|", "╸": "-", "╺": "-",
}  # fmt: skip


def _plain_text(err: UnicodeError) -> tuple[str | bytes, int]:
    """The codec error handler `mlhw.plain`: a character the stream's encoding lacks, in ASCII (± as +/-, ≥ as >=),
    else escaped as Python escapes its stderr (\\u2192). A name's undecodable bytes (surrogateescape: a non-UTF-8
    path under the C locale) are written back as the bytes they were, as the stream's own handler did."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    bad = err.object[err.start : err.end]
    if len(undecodable_bytes(bad)) == len(bad):
        return codecs.lookup_error("surrogateescape")(err)
    plain = [_PLAIN.get(c) or c.encode("ascii", "backslashreplace").decode() for c in bad]
    if not undecodable_bytes(bad):
        return "".join(plain), err.end
    # both in one stretch (a name's byte, then ·): each byte as itself, as above, not as the text `\udce9`
    return b"".join(
        bytes([ord(c) - 0xDC00]) if undecodable_bytes(c) else w.encode() for c, w in zip(bad, plain)
    ), err.end


def plain_where_unencodable() -> None:
    """Standard output and error in an encoding that cannot say ± · ≥ (`LC_ALL=C` with `PYTHONUTF8=0`, a POSIX
    locale, `PYTHONIOENCODING=ascii` or `latin-1`) write them in ASCII: `mlhw tables`' mean ± std ended in a
    UnicodeEncodeError traceback, exit 1, as did `mlhw tables --help`, and the runs' names on stderr read `\\xb7`."""
    codecs.register_error("mlhw.plain", _plain_text)
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        try:
            utf = codecs.lookup(encoding).name.startswith("utf") if encoding else True
        except LookupError:
            utf = True
        if not utf and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):  # (a stream replaced by a test, or already written through a buffer)
                stream.reconfigure(errors="mlhw.plain")


def guard_stdout() -> None:
    """Install GuardedStdout (once) on sys.stdout."""
    if not isinstance(sys.stdout, GuardedStdout):
        sys.stdout = GuardedStdout(sys.stdout if sys.stdout is not None else _Closed())


def said_stdout_failed(e: StdoutFailed) -> int:
    """The one line of a failed standard output, on stderr (none for a closed pipe: its reader has what it wanted),
    and the exit code, 1: the command's work may be done (the line says so), but what it printed is not whole."""
    if isinstance(sys.stdout, GuardedStdout):
        if sys.stdout.said:
            return 1
        sys.stdout.said = True
    if e.errno != errno.EPIPE:
        with contextlib.suppress(Exception):  # stderr to the same full disk: nothing can be said
            sys.stderr.write(
                f"error: writing to standard output failed: {e.strerror}" + (f"; {e.done}" if e.done else "") + "\n"
            )
            sys.stderr.flush()
    return 1


def handles_errors(
    fn: Callable | None = None,
    *,
    stopped: str | Callable[..., str] = STARTS_OVER,
    store_failed: str = STORE_FAILED_SINGLE,
    no_run: str | None = NO_RUN_CREATED,
) -> Callable:
    """Bad input becomes `error: <one line>` on stderr and exit code 2. Ctrl-C (exit 130), SIGTERM (exit 143,
    what kill, systemd, Slurm and CI runners send) and SIGHUP (exit 129, unless ignored) end the active runs KILLED;
    `stopped` says what the interruption left (reproduce: that its next invocation resumes; ui: that the server is
    gone), or is called with the command's options to say it (tables: the folder it writes, as --results-dir and
    --profile name it).
    The tracking store failing once open (a server gone, a full disk) is one line too, exit 1: its URI, the root
    cause, and `store_failed`, what that left (a traceback of MLflow's retries or SQL before), or `no_run` where it
    had created no run yet (None: a command that creates none says `store_failed` either way)."""
    if fn is None:
        return functools.partial(handles_errors, stopped=stopped, store_failed=store_failed, no_run=no_run)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mlhw.lifecycle import Terminated, runs_created, runs_finished

        runs_before, finished_before = runs_created(), runs_finished()
        previous = _on_sigterm()
        try:
            return fn(*args, **kwargs)
        except MLHWError as e:
            data_dir = kwargs.get("data_dir")
            typer.echo(f"error: {e}{_whose_data_dir(e, data_dir)}{_data_in_a_subfolder(e, data_dir)}", err=True)
            raise typer.Exit(2) from None
        except (MemoryError, RuntimeError) as e:  # numpy's "Unable to allocate 5.27 GiB for an array ...": a 60-line
            if not isinstance(e, MemoryError) and not _out_of_memory(e):  # traceback before; torch's CPU allocator
                raise  # raises RuntimeError ('--hidden 100000000' asked for 51 GB), CUDA's torch.OutOfMemoryError
            typer.echo(
                f"error: out of memory ({_first_line(e) or 'MemoryError'}); a run it had started is FAILED in the "
                "store, its traceback in error.txt. A smaller problem (--train-size; a smaller network) needs less",
                err=True,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            signum = e.signum if isinstance(e, Terminated) else signal.SIGINT
            code = 128 + signum  # 143 for SIGTERM, 129 for SIGHUP, 130 for Ctrl-C
            typer.echo(
                f"{STOPPED_BY.get(signum, 'interrupted (Ctrl-C)')}: "
                # a command that knows more at the moment it was stopped says it on the exception (`mlhw tables`)
                + (getattr(e, "stopped", None) or (stopped(**kwargs) if callable(stopped) else stopped)),
                err=True,
            )
            raise typer.Exit(code) from None
        except StdoutFailed as e:
            if e.done is None and (done := runs_finished() - finished_before):  # a single command's, its output lost
                e.done = (
                    f"the {done} runs are done and logged (FINISHED in the tracking store)"
                    if done > 1
                    else "the run is done and logged (FINISHED in the tracking store)"
                )
            raise typer.Exit(said_stdout_failed(e)) from None
        except Exception as e:
            from mlhw.store import failed_store, store_failure

            if (cause := store_failure(e)) is None:  # not the store's: a programming error keeps its traceback
                raise
            left = store_failed if no_run is None or runs_created() > runs_before else no_run
            typer.echo(f"error: {failed_store(kwargs.get('tracking_uri'), cause)}; {left}", err=True)
            raise typer.Exit(1) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    return wrapper


def _whose_data_dir(e: MLHWError, data_dir) -> str:
    """Data not found in a folder that MLHW_DATA_DIR, not --data-dir, named: the message's "pass --data-dir DIR"
    left a user who never passed one looking for where the folder came from; so did '--data-dir X: ... cannot be
    accessed' (a folder on the way not searchable, a name too long)."""
    from mlhw.errors import DataDirUnusable, DataNotFound

    whose = data_dir is not None and data_dir == os.environ.get("MLHW_DATA_DIR")
    if isinstance(e, DataNotFound | DataDirUnusable) and whose:
        return f" (the folder {data_dir} is MLHW_DATA_DIR's)"
    return ""


def _data_in_a_subfolder(e: MLHWError, data_dir) -> str:
    """Data not found in --data-dir, but in a folder just under it: the folder above the data (`--data-dir
    shared/data` for `shared/data/mnist/`) is a student's first guess, and the message listed the files it looked
    for without saying they were one level down. '' when none is (data_subfolder)."""
    from mlhw.errors import DataNotFound

    if not isinstance(e, DataNotFound) or not data_dir:
        return ""
    text = str(e)
    name = "mnist" if text.startswith("MNIST") else "cifar10" if text.startswith("CIFAR") else None
    return subfolder_hint(name, data_dir) if name else ""


def subfolder_hint(name: str, data_dir) -> str:
    """'; the MNIST files are in DIR/sub: --data-dir DIR/sub' where data_subfolder finds one, else ''."""
    sub = data_subfolder(name, data_dir)
    if sub is None:
        return ""
    return f"; the {'MNIST files' if name == 'mnist' else 'CIFAR-10 batches'} are in {sub}: --data-dir {sub}"


def data_subfolder(name: str, data_dir) -> Path | None:
    """The first folder just under `data_dir` that holds dataset `name` (mnist, cifar10), or None (the folder's
    first 200 entries in listing order, files included, are looked at: a subfolder after them is not named). A
    subfolder counts where the data layer's own pre-flight check passes on it (mlhw.data.check_dataset, never a
    download; it loads and hashes the files, and caches their fingerprint): the hint names a --data-dir that
    works."""
    if name not in ("mnist", "cifar10") or not data_dir:
        return None
    try:
        from mlhw.data import check_dataset

        top = Path(data_dir)
        if not top.is_dir():
            return None
        for sub in sorted(p for p in itertools.islice(top.iterdir(), 200) if p.is_dir()):
            try:
                check_dataset(name, sub, False)
            except (MLHWError, OSError):  # not there, or broken there: no folder to name
                continue
            return sub
    except OSError:  # a folder that cannot be listed: no folder to name
        return None
    return None


def _on_sigterm() -> dict:
    """SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, so it ends runs as Ctrl-C does; so does
    SIGHUP (the terminal closed, an SSH connection dropped), whose default left the runs RUNNING until a later
    reproduce found their process gone, unless it is ignored already (`nohup mlhw ...` asks to outlive the terminal).
    Returns the handlers it replaced, to put back."""
    from mlhw import lifecycle

    if threading.current_thread() is not threading.main_thread():
        return {}
    lifecycle.expect_sigterm()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, lifecycle.terminate)}
    hup = getattr(signal, "SIGHUP", None)  # (none on Windows)
    if hup is not None and signal.getsignal(hup) == signal.SIG_DFL:
        previous[hup] = signal.signal(hup, lifecycle.terminate)
    return previous


# how a command's last line names the signal that stopped it (Terminated.signum)
STOPPED_BY = {signal.SIGTERM: "terminated (SIGTERM)"} | (
    {signal.SIGHUP: "hung up (SIGHUP)"} if hasattr(signal, "SIGHUP") else {}
)


def in_ci() -> bool:
    """CI runners set CI=true; CI=false, CI=0 or an empty CI is a person saying "not CI"."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def is_terminal(stream=None) -> bool:
    """Progress bars on a terminal; plain lines, one per run start and end, when piped or in CI. Asked of
    the stream itself (stderr by default): rich counts FORCE_COLOR as a terminal, and a live bar redrawn (or a
    boxed panel) in a log file is noise. A dumb terminal (TERM=dumb: Emacs' shell, a CI runner's pty) is no terminal
    here either: rich does not redraw there, and its bar said nothing until the last run had ended, then once."""
    return _tty(stream or sys.stderr) and not in_ci() and not dumb_terminal()


def dumb_terminal() -> bool:
    """TERM=dumb (or unknown), as rich reads it: a terminal that takes no cursor movement."""
    return os.environ.get("TERM", "").strip().lower() in ("dumb", "unknown")


def parse_floats(text: str, option: str, example: str = "0.01,0.1,1") -> list[float]:
    return _parse_list(text, option, float, f"comma-separated numbers, e.g. {example}")


def parse_ints(text: str, option: str, what: str) -> list[int]:
    """Whole numbers: 4.5 is refused, not truncated to 4 (and then logged as 4)."""
    return _parse_list(text, option, int, what)


def _parse_list(text: str, option: str, kind, what: str) -> list:
    items = [v.strip() for v in text.split(",")]
    if items == [""]:
        items = []
    try:
        if "" in items:  # '0.1,,1' is a typo, not two rates: it was read as 0.1,1
            raise ValueError
        values = [kind(v) for v in items]
    except ValueError:
        raise MLHWError(f"{option} {text!r}: expected {what}") from None
    for item in items if kind is float else ():
        if why := float_beyond_range(item):  # 1e-400 read as 0 was refused as '0: must be > 0'
            raise MLHWError(f"{option} {text!r}: {item} is {why}")
    if not values:
        raise MLHWError(f"{option} is empty: give at least one value")
    return values


class PlainProgress:
    """Progress as plain lines on stderr, for a log (piped, CI): 'cnn train: epoch 3/10 (41 s) loss 1.93 ...'.
    The same calls as rich's Progress (add_task, update, reset); a task prints when its count reaches its total,
    and otherwise at most once every `every` seconds, so that a 2,000-step subgradient run writes a few lines,
    not 2,000, and a long run shows its epochs as they end (the loops report per epoch, not per batch: a single
    CIFAR-10 epoch on a CPU is one line at its end)."""

    def __init__(self, console: Console = err, every: float = 10.0, clock: Callable[[], float] | None = None):
        import time

        self.console, self.every, self.clock = console, every, clock or time.monotonic
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(
        self, description: str, total=None, info: str = "", visible: bool = True, unit: str = "", count=True, **_
    ):
        now = self.clock()
        self.tasks[len(self.tasks)] = {
            "count": count,  # False: a task that counts nothing (CountColumn's field), its line says no '1/1'
            "description": description,
            "total": total,
            "info": info,
            "completed": 0,
            "visible": visible,
            "unit": unit,
            "start": now,
            "printed": now,
        }
        return len(self.tasks) - 1

    def reset(self, task: int, total=None, description=None, visible=None, **_) -> None:
        now = self.clock()
        self.tasks[task].update(completed=0, start=now, printed=now, info="")
        self._set(task, total=total, description=description, visible=visible)

    def _set(self, task: int, **fields) -> None:
        """The fields given (not None), as rich's Progress keeps a field that a call leaves out."""
        self.tasks[task].update({k: v for k, v in fields.items() if v is not None})

    def update(self, task: int, completed=None, description=None, info=None, total=None, visible=None, **_) -> None:
        t = self.tasks[task]
        moved = completed is not None and completed != t["completed"]
        self._set(task, completed=completed, description=description, info=info, total=total, visible=visible)
        now = self.clock()
        done = t["total"] is not None and t["completed"] >= t["total"]
        if moved and t["visible"] and (done or now - t["printed"] >= self.every):
            t["printed"] = now
            count = f"{t['completed']:g}" + (f"/{t['total']:g}" if t["total"] is not None else "")
            count = f"{t['unit']} {count}" if t["unit"] else count
            count = f"{count} " if t["count"] is not False else ""
            info = f" {t['info']}" if t["info"] else ""
            self.console.print(
                f"{t['description']}: {count}({now - t['start']:.0f} s){info}", highlight=False, soft_wrap=True
            )


class CountColumn(ProgressColumn):
    """'3/10 epochs': rich's MofNCompleteColumn with what is counted (the task's `unit` field, plural but for a total
    of one; none where the task's `count` field is False). Under reproduce's bar of runs, a run's bar counted its
    epochs unnamed."""

    def render(self, task) -> Text:
        if task.fields.get("count") is False:
            return Text("")

        def n(v) -> str:  # 1234567, not 1.23457e+06 (svm multiclass --steps)
            return f"{int(v)}" if float(v).is_integer() else f"{v:g}"

        total = "?" if task.total is None else n(task.total)
        unit = task.fields.get("unit") or ""
        if unit and task.total != 1:
            unit += "s"
        return Text(f"{n(task.completed)}/{total}" + (f" {unit}" if unit else ""), style="progress.download")


def progress() -> Progress | PlainProgress:
    """A live bar on a terminal; plain lines when piped or in CI (PlainProgress: a redrawn bar in a log file is
    noise, and no line at all left a CI log silent for the minutes of a CPU run)."""
    from rich.table import Column

    if not is_terminal():
        return PlainProgress()

    # Long texts are cut with an ellipsis, not wrapped: on an 80-column terminal a run's full name squeezed the
    # bar, the count and the times out of the row. The bar narrows with the terminal, and below 100 columns the time
    # left goes: at 80 and 60 columns each bar took two lines, its count and times cut to "vari…", "0:0…". Rich cuts
    # every column alike once a row does not fit, counts and times too: below 60 columns the bar goes (at 50 it was
    # one cell wide, at 45 none), below 45 the info text (at 40 and 30 the time read "0:00:…"); the count says the
    # progress, and the description stays.
    width = err.width
    narrow = width < 100

    def cut(share: int) -> Column:
        return Column(no_wrap=True, overflow="ellipsis", max_width=max(8, width * share // 10))

    whole = lambda: Column(no_wrap=True)  # noqa: E731 - a count or a time, never cut
    columns = [
        TextColumn("[bold]{task.description}", table_column=cut(3 if narrow else 4)),
        BarColumn(bar_width=max(5, min(40, width // 8))) if width >= 60 else None,
        CountColumn(table_column=whole()),
        TextColumn("{task.fields[info]}", table_column=cut(2)) if width >= 45 else None,
        TimeElapsedColumn(table_column=whole()),
        TimeRemainingColumn(table_column=whole()) if not narrow else None,
    ]
    return Progress(*(c for c in columns if c is not None), console=err, transient=False)


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.{digits}g}")
    return str(v)


def loss_text(v) -> str:
    """A loss as the reproduction's tables give it (`mlhw.tables.num_or_inf`): 4 decimals (37 stood beside 0.8763
    with 4 significant digits), 3.84e+29 from 1e6 on; nan and inf as they are; '-' for none."""
    from mlhw.tables import num_or_inf

    return num_or_inf(v) if isinstance(v, float) else fmt(v)


def emit_json(record: dict) -> None:
    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    typer.echo(json.dumps({k: clean(v) for k, v in record.items()}))
