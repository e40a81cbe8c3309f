"""The installed `mlhw` entry point (mlhw.cli:main), run as a process: the CliRunner tests call the Typer app
directly and never pass through main(), which turns click's usage errors into one line and exit 2."""

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
        (["mlp", "train", "--epochs", "three"], "Invalid value for '--epochs'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        # an option without its value named the group: "error: mlhw: ... (see mlhw --help)"
        (["reproduce", "--profile"], "mlhw reproduce: Option '--profile' requires an argument. (see mlhw reproduce"),
        (["mlp", "train", "--lr"], "mlhw mlp train: Option '--lr' requires an argument. (see mlhw mlp train --help)"),
        # it said "Value error, 'mlp.d' is not one of ...": pydantic's prefix
        (["mlp", "train", "--part", "mlp.d"], "Invalid value for '--part': 'mlp.d' is not one of 'mlp.a'"),
        # the fixed choices are Literal options: --help lists them, a typo is a usage error
        (["cnn", "train", "--precision", "fp8"], "'--precision': 'fp8' is not one of 'auto', 'bf16'"),
        (["cnn", "compare", "--part", "d"], "'--part': 'd' is not one of 'a', 'b', 'c', 'all'"),
        (["reproduce", "--executor", "slurm"], "'--executor': 'slurm' is not one of 'local', 'ray'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, culprit, tmp_path):
    res = mlhw(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error: mlhw") and culprit in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
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


def test_the_entry_point_ends_without_searching_its_objects_for_cycles(tmp_path):
    """The teardown of a process that loaded torch, MLflow and pandas collected every object: 2.6 s of a ci
    reproduce after its last line on the 2-core CPU. main() freezes them before it exits (its exit handlers see
    that); the CliRunner tests, which call the app in pytest's process, never pass through it."""
    code = (
        "import atexit, gc, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count()));"
        "from mlhw.cli import main; sys.argv = ['mlhw', '--help']; main()"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split("frozen ")[-1]) > 0
