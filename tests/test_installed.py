"""mlhw installed from its wheel (`pip install`, `uv tool install`) and run outside a checkout of the repository."""

import subprocess
import tomllib
from pathlib import Path

import pytest
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


def test_a_link_here_to_a_file_that_is_gone_is_not_replaced_by_the_installed_copy(workdir, monkeypatch):
    """./experiments.yaml a link to the user's file, moved or on a disk not mounted: reproduce ran the installed copy
    in its place (its digits profile, a report in results/digits/), where the user's file was meant."""
    installed = installed_copy(workdir, monkeypatch)
    here = workdir / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "experiments.yaml").symlink_to(workdir / "gone.yaml")
    res = invoke("reproduce", "--profile", "tiny", "--dry-run")
    assert_one_line_error(res, "experiments.yaml: no such file")
    assert str(installed) not in res.output


def installed_copy(workdir, monkeypatch) -> Path:
    """An experiments file (light_spec's `tiny`) installed with mlhw, and its baselines folder beside it (empty)."""
    from mlhw import experiments

    installed = workdir / "site-packages" / "mlhw" / "experiments.yaml"
    installed.parent.mkdir(parents=True)
    installed.write_text(yaml.safe_dump(light_spec()))
    monkeypatch.setattr(experiments, "INSTALLED_FILE", installed)
    monkeypatch.setattr(experiments, "BASELINES", installed.parent / "baselines")
    return installed


def test_a_first_reproduction_of_the_installed_file_is_checked_against_the_shipped_baseline(workdir, monkeypatch):
    """Installed, the committed baselines did not ship: a first reproduction in a new folder said `not checked against
    a baseline`, and `mlhw check` then compared the store with the report it had just written, which cannot fail."""
    import shutil

    import pandas as pd

    installed = installed_copy(workdir, monkeypatch)
    first = workdir / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    res = invoke("reproduce", "--profile", "tiny")
    assert res.exit_code == 0, res.output
    assert "not checked against a baseline: results/tiny/ held no tables before this reproduction" in res.stderr
    shipped = installed.parent / "baselines" / "tiny"
    shutil.copytree(first / "results" / "tiny" / "tables", shipped / "tables")
    shutil.copy(first / "results" / "tiny" / "REPORT.md", shipped / "REPORT.md")
    (shipped / "check.yaml").write_text("k: 3\nmetrics:\n  default: {absolute_floor: 0.02}\n")

    # a new folder, the same store (nothing trains): the report is checked against the baseline shipped with mlhw
    uri = f"sqlite:///{first}/mlflow.db"
    for n, drift in enumerate([0.0, 0.5]):
        if drift:  # the shipped mean moved by 0.5: the reproduction does not reproduce it
            csv = shipped / "tables" / "mlp_full.csv"
            df = pd.read_csv(csv)
            df.loc[0, "test_acc_mean"] = df.loc[0, "test_acc_mean"] - drift
            df.to_csv(csv, index=False)
        here = workdir / f"new-{n}"
        here.mkdir()
        monkeypatch.chdir(here)
        res = invoke("reproduce", "--profile", "tiny", "--tracking-uri", uri)
        assert res.exit_code == (1 if drift else 0), res.output
        assert f"against the baseline shipped with mlhw ({shipped}): check " in res.stderr, res.stderr
        assert ("check passed" in res.stderr) != bool(drift), res.stderr
        # the shipped check.yaml goes into the new report's folder: `mlhw check` there is gated as it was
        assert (here / "results" / "tiny" / "check.yaml").read_text() == (shipped / "check.yaml").read_text()
        assert "results/tiny/check.yaml: the shipped baseline's tolerances, copied for the next checks" in res.stderr
        if drift:
            # no git holds the shipped results: the command that compares them again, this store's
            again = f"`mlhw check --profile tiny --tracking-uri {uri} --baseline {shipped}` compares them again"
            assert f"not reproduced: results/tiny differs from {shipped} (exit 1); {again}" in res.stderr, res.stderr
            res = invoke(*again.split("`")[1].split()[1:])
            assert res.exit_code == 1, res.output  # (it does: the drift, exit 1)
    res = invoke("check", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0 and "check passed" in res.stderr and "no check.yaml" not in res.stderr, res.output
    # a file of the user's (a copy of the installed one) may define the profile otherwise: checked against nothing
    (here / "experiments.yaml").write_text(installed.read_text())
    other = workdir / "mine"
    other.mkdir()
    monkeypatch.chdir(other)
    res = invoke("reproduce", "--profile", "tiny", "--tracking-uri", uri, "--file", here / "experiments.yaml")
    assert res.exit_code == 0, res.output
    assert "not checked against a baseline" in res.stderr and "shipped" not in res.stderr, res.stderr


def shipped_baseline_of_a_first_reproduction(workdir, monkeypatch) -> tuple[Path, str]:
    """The installed copy, and the baseline shipped beside it made of a first reproduction's results; the store."""
    import shutil

    installed = installed_copy(workdir, monkeypatch)
    first = workdir / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    assert invoke("reproduce", "--profile", "tiny").exit_code == 0
    shipped = installed.parent / "baselines" / "tiny"
    shutil.copytree(first / "results" / "tiny" / "tables", shipped / "tables")
    shutil.copy(first / "results" / "tiny" / "REPORT.md", shipped / "REPORT.md")
    (shipped / "check.yaml").write_text("k: 3\nmetrics:\n  default: {absolute_floor: 0.02}\n")
    return shipped, f"sqlite:///{first}/mlflow.db"


def test_a_stop_after_a_first_report_names_the_shipped_baseline_it_was_not_checked_against(workdir, monkeypatch):
    """Ctrl-C once a first reproduction's report is in place, before its verdict against the baseline shipped with
    mlhw: it said the report `was not checked against the results it replaced` and gave `git diff results/tiny/tables`
    to see what moved, in a folder that held no results (and no git checkout)."""
    import mlhw.report

    shipped, uri = shipped_baseline_of_a_first_reproduction(workdir, monkeypatch)
    here = workdir / "new"
    here.mkdir()
    monkeypatch.chdir(here)

    def stop(*a, **kw):  # Ctrl-C while the suite parents are given the report, after its folder's swap
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "report_in_run", stop)
    res = invoke("reproduce", "--profile", "tiny", "--tracking-uri", uri)  # (nothing trains: the store has it all)
    assert res.exit_code == 130, res.output
    said = " ".join(res.stderr.split())
    assert "check passed" not in said and "check FAILED" not in said, said  # the verdict was never said
    assert "results it replaced" not in said and "git diff" not in said, said
    assert f"results/tiny/ was already written anew, whole, and was not checked against the baseline shipped with " \
        f"mlhw ({shipped})" in said, said  # fmt: skip


def test_the_shipped_check_yaml_goes_into_a_linked_folder_under_the_lock_its_swaps_hold(tmp_path, monkeypatch):
    """results/<profile> a link to another disk: the report is swapped in where it points, under the lock of that
    folder's parent (report._replace). The shipped check.yaml was copied under the link's parent's lock, so a report
    swapped in meanwhile by another process (`mlhw tables`) could drop it with the old folder it was copied into."""
    import contextlib

    from mlhw import report

    target = tmp_path / "disk" / "tiny"
    target.mkdir(parents=True)
    link = tmp_path / "results" / "tiny"
    link.parent.mkdir()
    link.symlink_to(target)
    policy = tmp_path / "check.yaml"
    policy.write_text("k: 3\n")
    locked = []

    @contextlib.contextmanager
    def spied(folder):
        locked.append(folder)
        yield

    monkeypatch.setattr(report, "folder_lock", spied)
    assert report.carry_policy(policy, link)
    assert (target / "check.yaml").read_text() == "k: 3\n"
    assert locked == [target.resolve().parent]
    assert not report.carry_policy(policy, link)  # one is there: not replaced


def test_every_committed_baseline_ships_with_the_wheel():
    """Each profile's committed results/<profile>/ (tables, check.yaml, REPORT.md) maps to the folder
    shipped_baseline reads: a profile added to results/ and not to pyproject.toml would be checked against nothing."""
    from mlhw.experiments import BASELINES

    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    shipped = {k: v for k, v in wheel["force-include"].items() if k.startswith("results/")}
    profiles = sorted(p.name for p in (REPO / "results").iterdir() if (p / "tables").is_dir())
    assert profiles and {"digits", "ci"} <= set(profiles)
    expected = {}
    for profile in profiles:
        for part in ("tables", "check.yaml", "REPORT.md"):
            assert (REPO / "results" / profile / part).exists()
            expected[f"results/{profile}/{part}"] = (BASELINES / profile / part).relative_to(REPO).as_posix()
    assert shipped == expected


def test_the_source_distribution_holds_what_git_tracks_and_no_more():
    """hatch put every file git does not ignore into the sdist: a checkout's local folders (a GPU bundle, a copy of
    MNIST, excluded in .git/info/exclude) made it 29.6 MB. Its list is the tracked top-level entries, each of them."""
    sdist = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["sdist"]
    try:
        tracked = _git(REPO, "ls-files").splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare the list with")
    top = {path.split("/")[0] for path in tracked} - {".gitignore"}  # (hatch adds .gitignore itself)
    assert sorted(sdist["only-include"]) == sorted(top)


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


def test_a_checkout_under_a_folder_named_with_a_space_has_its_commit(tmp_path):
    """The toplevel and HEAD that git printed were split on any white space: a checkout under `My Projects/` made
    more than two words, and every run and REPORT.md said no commit (`unknown`), where `git rev-parse HEAD` had one."""
    from mlhw.lifecycle import commit_of

    checkout = tmp_path / "My Projects" / "mlhw"
    (checkout / "mlhw").mkdir(parents=True)
    _git(checkout, "init", "-q")
    _git(checkout, "commit", "-q", "--allow-empty", "-m", "mlhw")
    assert commit_of(checkout / "mlhw") == _git(checkout, "rev-parse", "HEAD")


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
