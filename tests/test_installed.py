"""mlhw installed from its wheel (`pip install`, `uv tool install`) and run outside a checkout of the repository."""

import subprocess
from pathlib import Path


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
