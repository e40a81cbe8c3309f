"""mlhw installed from its wheel (`pip install`, `uv tool install`) and run outside a checkout of the repository."""

import subprocess
import tomllib
from pathlib import Path

import yaml
from helpers import assert_one_line_error, invoke, light_spec, runs_of

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_experiments_file():
    """The wheel held mlhw's modules alone: installed, `mlhw reproduce` (the first command README and --help give)
    failed in every folder, `error: experiments.yaml: no such file (run from the project folder, or pass --file)`."""
    from mlhw.experiments import INSTALLED_FILE

    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    shipped = wheel["force-include"]["experiments.yaml"]
    assert shipped == INSTALLED_FILE.relative_to(REPO).as_posix() == "mlhw/experiments.yaml"


def test_reproduce_without_an_experiments_file_here_runs_the_installed_copy(workdir, monkeypatch):
    """Outside a checkout (an empty folder), reproduce runs the experiments file installed with mlhw, and says so."""
    from mlhw import experiments

    installed = workdir / "site-packages" / "mlhw" / "experiments.yaml"
    installed.parent.mkdir(parents=True)
    installed.write_text(yaml.safe_dump(light_spec()))
    monkeypatch.setattr(experiments, "INSTALLED_FILE", installed)
    here = workdir / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    res = invoke("reproduce", "--profile", "tiny")
    assert res.exit_code == 0, res.output
    assert f"experiments file: {installed}, the copy installed with mlhw" in res.stderr, res.stderr
    assert (here / "results" / "tiny" / "REPORT.md").is_file()
    assert len(runs_of(f"sqlite:///{here}/mlflow.db")[1]) == 5 + 3  # the runs and their 3 suites' parents

    # a file here comes first, and is not announced; --file comes before both
    (here / "experiments.yaml").write_text(yaml.safe_dump(light_spec("mine")))
    res = invoke("reproduce", "--profile", "mine", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "installed with mlhw" not in res.stderr
    res = invoke("reproduce", "--profile", "tiny", "--dry-run", "--file", installed)
    assert res.exit_code == 0 and "installed with mlhw" not in res.stderr, res.output


def test_without_either_file_the_error_is_one_line(workdir, monkeypatch):
    """A checkout run from another folder has no installed copy: the error stays one line, exit 2."""
    from mlhw import experiments

    monkeypatch.setattr(experiments, "INSTALLED_FILE", workdir / "nowhere" / "experiments.yaml")
    res = invoke("reproduce", "--dry-run")
    assert_one_line_error(res, "experiments.yaml: no such file (run from the project folder, or pass --file)")


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip


def test_an_install_inside_another_repository_records_no_commit_of_it(tmp_path, monkeypatch):
    """mlhw installed in a project's .venv, itself in a git repository: `git rev-parse HEAD` in mlhw's folder gave
    the project's commit, which every run's mlflow.source.git.commit and REPORT.md gave as mlhw's."""
    from mlhw import lifecycle

    project = tmp_path / "project"
    package = project / ".venv" / "lib" / "python3.11" / "site-packages" / "mlhw"
    package.mkdir(parents=True)
    _git(project, "init", "-q")
    _git(project, "commit", "-q", "--allow-empty", "-m", "a project of the user's")
    monkeypatch.setattr(lifecycle, "__file__", str(package / "lifecycle.py"))
    lifecycle.git_commit.cache_clear()
    try:
        assert lifecycle.git_commit() is None
        # a checkout of mlhw: the package's folder at the repository's top
        checkout = tmp_path / "checkout"
        (checkout / "mlhw").mkdir(parents=True)
        _git(checkout, "init", "-q")
        _git(checkout, "commit", "-q", "--allow-empty", "-m", "mlhw")
        monkeypatch.setattr(lifecycle, "__file__", str(checkout / "mlhw" / "lifecycle.py"))
        lifecycle.git_commit.cache_clear()
        assert lifecycle.git_commit() == _git(checkout, "rev-parse", "HEAD")
    finally:
        monkeypatch.undo()
        lifecycle.git_commit.cache_clear()


def test_checks_hints_name_the_installed_copys_profiles(workdir, monkeypatch):
    """A misspelt profile in a folder without experiments.yaml: check and tables took their hint from
    ./experiments.yaml alone, so an installed user was told to run from the project folder, not which profiles exist."""
    from mlhw import experiments

    installed = workdir / "site-packages" / "mlhw" / "experiments.yaml"
    installed.parent.mkdir(parents=True)
    installed.write_text(yaml.safe_dump(light_spec()))
    monkeypatch.setattr(experiments, "INSTALLED_FILE", installed)
    res = invoke("check", "--profile", "tinny")
    line = assert_one_line_error(res, "--profile tinny: the experiments.yaml installed with mlhw has no such profile")
    assert "(its profiles: tiny)" in line, line
    from mlhw.store import Store

    Store("sqlite:///mlflow.db")  # an empty store: tables then looks for the profile's runs
    res = invoke("tables", "--profile", "tinny")
    assert "the experiments.yaml installed with mlhw has no profile 'tinny' either (its profiles: tiny)" in res.output
