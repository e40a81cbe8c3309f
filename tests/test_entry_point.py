"""The installed `mlhw` entry point (mlhw.cli:main), run as a process: the CliRunner tests call the Typer app
directly and never pass through main(), which turns click's usage errors into one line and exit 2."""

import os
import subprocess
import sys

import pytest


def mlhw(*args, cwd):
    code = "import sys; from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["mlp", "train", "--bogus"], "No such option: --bogus"),
        # the refused value is echoed, as mlhw's own checks do (`--lr: must be > 0 (got -1)`), once, in their words
        # (click and pydantic said "Invalid value for '--epochs': Input should be a valid integer, unable to parse
        # string as an integer", where `--set epochs=abc` says "must be a valid integer")
        (["mlp", "train", "--epochs", "three"], "mlp train: --epochs: must be a valid integer (got 'three') (see mlhw"),
        (["mlp", "train", "--lr=abc"], "mlhw mlp train: --lr: must be a valid number (got 'abc') (see mlhw mlp train"),
        (["cnn", "train", "--precision", "fp8"], "--precision: must be 'auto', 'bf16', 'fp16' or 'fp32' (got 'fp8') ("),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        # an option without its value named the group: "error: mlhw: ... (see mlhw --help)"
        (["reproduce", "--profile"], "mlhw reproduce: Option '--profile' requires an argument. (see mlhw reproduce"),
        (["mlp", "train", "--lr"], "mlhw mlp train: Option '--lr' requires an argument. (see mlhw mlp train --help)"),
        # it said "Value error, 'mlp.d' is not one of ...": pydantic's prefix
        (["mlp", "train", "--part", "mlp.d"], "--part: must be 'mlp.a', 'mlp.b' or 'mlp.c' (got 'mlp.d')"),
        # the fixed choices are Literal options: --help lists them, a typo is a usage error
        (["cnn", "compare", "--part", "d"], "--part: must be 'a', 'b', 'c' or 'all' (got 'd')"),
        (["reproduce", "--executor", "slurm"], "--executor: must be 'local' or 'ray' (got 'slurm')"),
        # a number float() rounds to 0 or inf: refused as typed (it said "--lr: must be > 0 (got 0)")
        (
            ["mlp", "train", "--lr", "1e-400"],
            "train: --lr: too small for a float: it reads as 0 (the smallest is about",
        ),
        (["reproduce", "--stale-after=1e999"], "--stale-after: too large for a float: it reads as inf (the largest"),
        # -C, --C's short name, an option of its own (hidden: --help names --C once): named as typed
        (["svm", "soft", "-C", "abc"], "mlhw svm soft: -C: must be a valid number (got 'abc') (see mlhw svm soft"),
        (["svm", "soft", "--C", "abc"], "mlhw svm soft: --C: must be a valid number (got 'abc') (see mlhw svm soft"),
        # an option of one value given twice with two: click kept the last, silently (`--profile ci --profile digits`
        # ran the 39 runs of digits)
        (["reproduce", "--profile", "ci", "--dry-run", "--profile=digits"], "--profile given twice (ci, then digits)"),
        (["cnn", "train", "--batchnorm", "--no-batchnorm"], "cnn train: --batchnorm and --no-batchnorm both given"),
        (["svm", "soft", "-C", "1", "-C2"], "mlhw svm soft: -C given twice (1, then 2): give it once (see mlhw svm"),
        (["svm", "soft", "-C", "1", "--C=2"], "mlhw svm soft: -C and --C both given (1, then 2): give it once (see"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, culprit, tmp_path):
    res = mlhw(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error: mlhw") and culprit in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()


def test_an_option_given_twice_with_one_value_or_a_repeatable_one_goes_through():
    """The same value twice is harmless; a repeatable option (--only, --set) repeats; an option's value that looks
    like another option is a value (`--experiment --profile`), not a second --profile."""
    import typer

    from mlhw.cli import _click_exceptions, _once, _parse_once, app

    command = _once(typer.main.get_command(app))
    reproduce = command.commands["reproduce"]
    ctx = reproduce.make_context("reproduce", ["--dry-run"])
    for args in (
        ["--profile", "ci", "--profile", "ci"],
        ["--only", "mlp_full", "--only", "mlp_lr_sweep", "--set", "epochs=1", "--set", "lr=0.1"],
        ["--experiment", "--profile", "--profile", "ci"],
        ["--profile", "ci", "--", "--profile", "digits"],
    ):
        _parse_once(reproduce, lambda ctx, args: args, ctx, args)
    with pytest.raises(_click_exceptions().UsageError, match="--profile given twice"):
        _parse_once(reproduce, lambda ctx, args: args, ctx, ["--profile", "ci", "--profile", "digits"])
    # --help wins over an option given twice, as over any other bad value: `--lr abc --help` shows the help
    assert _parse_once(reproduce, lambda ctx, args: "parsed", ctx, ["--profile", "a", "--profile", "b", "--help"])
    # svm soft's -C is --C's short name (an option of its own, hidden, for --help to name --C once): one option
    soft = command.commands["svm"].commands["soft"]
    ctx = soft.make_context("soft", [])
    for args in (
        ["-C", "2", "--C=2"],
        ["--C", "2", "-C", "2.0"],
        ["-C2", "--C", "2"],
        ["--C", "2"],
        ["-C", "2", "--bias", "free"],
    ):
        _parse_once(soft, lambda ctx, args: args, ctx, args)
    with pytest.raises(_click_exceptions().UsageError, match=r"^--C and -C both given \(2, then 3\): give it once$"):
        _parse_once(soft, lambda ctx, args: args, ctx, ["--C", "2", "-C", "3"])


def test_a_float_option_given_twice_as_one_number_spelt_two_ways_goes_through():
    """`--lr 0.1 --lr 0.10` is one value given twice: it was refused as 'given twice (0.1, then 0.10)'. A text
    option's spellings stay two values (`--experiment 1 --experiment 1.0` names two experiments)."""
    import typer

    from mlhw.cli import _click_exceptions, _once, _parse_once, app

    command = _once(typer.main.get_command(app))
    train = command.commands["mlp"].commands["train"]
    ctx = train.make_context("train", [])
    for args in (["--lr", "0.1", "--lr", "0.10"], ["--lr", "0.001", "--lr=1e-3"]):
        _parse_once(train, lambda ctx, args: args, ctx, args)
    with pytest.raises(_click_exceptions().UsageError, match=r"--lr given twice \(0.1, then 0.2\)"):
        _parse_once(train, lambda ctx, args: args, ctx, ["--lr", "0.1", "--lr", "0.2"])
    with pytest.raises(_click_exceptions().UsageError, match=r"--experiment given twice \(1, then 1.0\)"):
        _parse_once(train, lambda ctx, args: args, ctx, ["--experiment", "1", "--experiment", "1.0"])


def test_a_rate_in_a_list_that_float_rounds_to_0_is_named_as_typed(tmp_path):
    """`--lrs 0.1,1e-400` said "0: must be > 0": the rate as float() read it, not as it was typed."""
    res = mlhw("mlp", "sweep", "--lrs", "0.1,1e-400", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr == (
        "error: --lrs '0.1,1e-400': 1e-400 is too small for a float: it reads as 0 (the smallest is about 5e-324)\n"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()


CORE = ["data", "mlp", "cnn", "svm", "theory", "config", "device", "divergence", "topology", "findings", "stats"]
CORE += ["check", "check_policy", "layout", "labels", "reference", "tables", "plots"]


def test_the_numerical_core_imports_neither_mlflow_nor_typer():
    """The architecture's rule, checked in a fresh interpreter: importing the core (models, loops, solvers, tables,
    findings, the gate) loads no MLflow and no Typer, so it runs on a machine with torch alone."""
    code = (
        "import sys, importlib\n"
        f"for m in {CORE!r}: importlib.import_module('mlhw.' + m)\n"
        "print(sorted(x for x in ('mlflow', 'typer', 'rich') if x in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = res.stdout.strip()
    assert "mlflow" not in loaded and "typer" not in loaded, loaded


TEARDOWN_PROBE = (
    "import atexit, os, sys\n"
    "class Probe:\n"  # what __del__ needs is held: at the teardown the builtins may be gone already
    "    write = staticmethod(os.write)\n"
    "    def __del__(self): self.write(1, b'torn down\\n')\n"
    "probe = Probe()\n"  # a module global: freed by the interpreter's teardown, never before
    "atexit.register(lambda: print('exit handler ran', flush=True))\n"
)


@pytest.mark.parametrize("args, code", [(["--help"], 0), (["mlp", "train", "--bogus"], 2)])
def test_the_entry_point_ends_without_the_interpreters_teardown(args, code, tmp_path):
    """The teardown of a process that loaded torch, MLflow and pandas took 2.6 s after a ci reproduce's last line
    on the 2-core CPU. main() ends as a normal exit does (exit handlers, flushed output, its exit code) less that
    teardown; the CliRunner tests, which call the app in pytest's process, never pass through it."""
    code_text = TEARDOWN_PROBE + "from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    res = subprocess.run([sys.executable, "-c", code_text, *args], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == code, res.stderr
    assert "exit handler ran" in res.stdout and "torn down" not in res.stdout
    assert ("Usage" in res.stdout) == (code == 0)  # what it printed before its end came out


def test_an_unexpected_error_still_ends_with_its_traceback(tmp_path):
    code_text = (
        "import sys, mlhw.cli\ndef boom(): raise RuntimeError('unexpected')\nmlhw.cli._main = boom\nmlhw.cli.main()"
    )
    res = subprocess.run([sys.executable, "-c", code_text], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 1 and "RuntimeError: unexpected" in res.stderr


def test_a_process_ends_with_a_thread_pool_it_never_shut_down():
    """mlhw ends through processes.end_now, which waits for the non-daemon threads. A ThreadPoolExecutor's workers
    (MLflow downloads artifacts through one: a reproduce that read another's runs from a tracking server) end only
    when threading's exit hook tells them: end_now waited for them for ever, and the reproduce never exited."""
    import subprocess
    import sys

    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from mlhw.processes import end_now\n"
        "pool = ThreadPoolExecutor(2)\n"
        "print(pool.submit(lambda: 6 * 7).result(), flush=True)\n"
        "end_now(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and done.stdout.strip() == "42", done.stderr


def test_a_databricks_uri_without_credentials_is_one_line(tmp_path):
    """MLflow's own warning ("Failed to create databricks SDK workspace client ... Falling back to legacy
    authentication") came first, a line of its own before mlhw's error."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env |= {"MLFLOW_TRACKING_URI": "databricks", "HOME": str(tmp_path)}  # no ~/.databrickscfg
    code = "import sys; from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, "svm", "soft"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: $MLFLOW_TRACKING_URI databricks: ") and res.stderr.count("\n") == 1, res.stderr
    assert list(tmp_path.iterdir()) == []  # nothing made: no store, no results


def test_a_float_option_of_a_click_based_typer_is_looked_at_too():
    """Typer before 0.29 (pyproject allows 0.19) gives its options click's FLOAT type and no type descriptor: none of
    them was wrapped, and `--lr 1e-400` said "--lr: must be > 0 (got 0)" again (seen with typer 0.19.2)."""
    import click

    from mlhw.cli import _exact_floats

    seen = []
    command = _exact_floats(
        click.Command("x", params=[click.Option(["--lr"], type=float)], callback=lambda lr: seen.append(lr))
    )
    with pytest.raises(Exception, match="too small for a float: it reads as 0"):
        command.main(["--lr", "1e-400"], standalone_mode=False)
    command.main(["--lr", "0.5"], standalone_mode=False)
    assert seen == [0.5]


TINY_SPEC = (
    "version: 1\n"
    "suites:\n  svm_soft: {kind: svm_soft, part: svm.q3, base: {train_size: 200, test_size: 50}}\n"
    "profiles:\n  p: {defaults: {dataset: digits}}\n"
)
NO_SPACE = "error: writing to standard output failed: No space left on device"
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full (Linux's full disk)")


def to_full_disk(*args, cwd):
    """`mlhw ARGS > /dev/full`: every write to stdout fails with ENOSPC, as on a full disk."""
    code = "import sys; from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=cwd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300
        )


@needs_dev_full
@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["reproduce", "--help"], ["reproduce", "--profile", "p", "--dry-run"]]
)
def test_a_full_disk_under_stdout_is_one_line(args, tmp_path):
    """A traceback ending in OSError [Errno 28] (rich's print, click's echo), exit 1; `--version > /dev/full` said
    nothing at all, exit 0 (its output was lost in the exit's quiet flush)."""
    (tmp_path / "experiments.yaml").write_text(TINY_SPEC)
    res = to_full_disk(*args, cwd=tmp_path)
    assert res.returncode == 1 and res.stderr == f"{NO_SPACE}\n", res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.yaml"]


@needs_dev_full
def test_a_reproduction_whose_stdout_fills_the_disk_says_its_verdict_and_what_it_did(tmp_path):
    """`mlhw reproduce > /dev/full` ran every run and wrote the report, then print_tables' write raised: a traceback,
    exit 1, and the verdict (stderr) never said. Now the verdict comes, then one line saying the work is done."""
    (tmp_path / "experiments.yaml").write_text(TINY_SPEC)
    res = to_full_disk("reproduce", "--profile", "p", cwd=tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "not checked against a baseline: results/p/ held no tables before this reproduction" in lines
    assert lines[-1] == (
        f"{NO_SPACE}; the runs are done and the report is written (results/p/REPORT.md); its tables were not shown"
    )
    assert (tmp_path / "results" / "p" / "REPORT.md").is_file()


@needs_dev_full
@pytest.mark.parametrize(
    "args, done",
    [
        (["svm", "soft", "--classes", "1,7", "--train-size", "60"], "the run is done"),
        (["svm", "soft", "--classes", "1,7", "--train-size", "60", "--json"], "the run is done"),
        (["mlp", "sweep", "--lrs", "0.1,1", "--epochs", "1", "--train-size", "100"], "the 3 runs are done"),
    ],
)
def test_a_single_command_whose_stdout_fills_the_disk_says_its_runs_are_done(args, done, tmp_path):
    """`mlhw svm soft > /dev/full` said only "writing to standard output failed": its run was FINISHED in the store
    (read here), its result lost with the output, and nothing said so (reproduce and tables say what they did)."""
    import mlflow

    res = to_full_disk(*args, cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1] == f"{NO_SPACE}; {done} and logged (FINISHED in the tracking store)"
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("mlhw").experiment_id])
    assert len(runs) == (3 if "3 runs" in done else 1) and {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.parametrize("args", [["--version"], ["reproduce", "--profile", "p", "--dry-run"]])
def test_a_standard_output_closed_at_the_start_is_one_line(args, tmp_path):
    """`mlhw ... >&-`: Python starts with sys.stdout None, and `out = Console(... sys.stdout.isatty() ...)` raised
    AttributeError at import, a traceback before any command; the output is said lost, as on a full disk."""
    (tmp_path / "experiments.yaml").write_text(TINY_SPEC)
    code = "import sys; from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    res = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.close(1),  # noqa: PLW1509 - closes the child's stdout, as `>&-` does
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr == "error: writing to standard output failed: Bad file descriptor (it was closed)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["experiments.yaml"]


def test_a_closed_pipe_is_quiet(tmp_path):
    """`mlhw ... | head`: the reader has what it wanted; exit 1 and nothing said, as rich and click did it before,
    now on the same path as a full disk (mlhw.cli.common.StdoutFailed)."""
    (tmp_path / "experiments.yaml").write_text(TINY_SPEC)
    code = "import sys; from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    argv = [sys.executable, "-c", code, "reproduce", "--profile", "p", "--dry-run"]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the first write: it meets EPIPE
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and stderr == "", stderr


def test_an_io_error_of_stdout_takes_the_same_path(capsys, monkeypatch):
    """EIO (a terminal gone) as ENOSPC: StdoutFailed from GuardedStdout, one line, exit 1, said once."""
    import errno
    import io

    from mlhw.cli import common

    class Dead(io.StringIO):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    guarded = common.GuardedStdout(Dead())
    with pytest.raises(common.StdoutFailed) as failed:
        guarded.write("a table")
    monkeypatch.setattr(sys, "stdout", guarded)
    assert common.said_stdout_failed(failed.value) == 1 and common.said_stdout_failed(failed.value) == 1
    assert capsys.readouterr().err == "error: writing to standard output failed: Input/output error\n"
    assert guarded.write("more") == 4  # said: the rest goes nowhere


TORCH_LOAD_PROBE = (
    "import os, sys\n"
    "class Probe:\n"  # notes the wait policy in the environment at the moment torch (and its libgomp) is first loaded
    "    seen = []\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' and not self.seen: self.seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
    "sys.meta_path.insert(0, Probe())\n"
    "import mlhw.cli, mlhw.mlp\n"
    "print(Probe.seen)\n"
)


@pytest.mark.parametrize("given, loaded", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_torch_loads_its_openmp_threads_with_a_passive_wait_policy_unless_one_is_given(given, loaded):
    """libgomp reads OMP_WAIT_POLICY once, when torch loads it: spinning waiters made Part 1's batched seeds 8-10x
    slower beside busy processes on 2 cores (benchmarks/omp_wait.py), so mlhw sets PASSIVE before torch loads; a
    policy the user set is theirs."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | (
        {"OMP_WAIT_POLICY": given} if given else {}
    )
    res = subprocess.run([sys.executable, "-c", TORCH_LOAD_PROBE], env=env, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == repr([loaded]), res.stdout + res.stderr
