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
        # it said "Value error, 'mlp.d' is not one of ...": pydantic's prefix
        (["mlp", "train", "--part", "mlp.d"], "Invalid value for '--part': 'mlp.d' is not one of 'mlp.a'"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(args, culprit, tmp_path):
    res = mlhw(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error: mlhw") and culprit in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()
