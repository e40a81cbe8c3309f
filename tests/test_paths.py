"""Paths the user names that Python cannot look at: on Python 3.11 Path.exists(), is_file() and is_dir() raise, not
answer False, where a folder on the way cannot be searched (a parent of mode 700 owned by another user: EACCES) or a
name is too long (a part over 255 bytes: ENAMETOOLONG). Each was a traceback, exit 1; each is now one line naming the
option, the path and the reason, exit 2, before anything is created."""

import errno
import os
import pathlib

import pytest
import yaml
from helpers import assert_nothing_created, assert_one_line_error, invoke

MNIST_SPEC = {
    "version": 1,
    "suites": {"mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 1, "train_size": 50}}},
    "profiles": {"m": {"defaults": {"dataset": "mnist"}}},
}


def commands(bad):
    """(argv, the culprit the line starts with) for each place a command looks at a path it was given; `bad` is a
    folder that cannot be looked into."""
    return [
        (["mlp", "train", "--dataset", "mnist", "--data-dir", f"{bad}/mn"], f"--data-dir {bad}/mn: {bad}/mn/"),
        (["cnn", "train", "--dataset", "cifar10", "--data-dir", f"{bad}/c"], f"--data-dir {bad}/c: {bad}/c/"),
        (["reproduce", "--profile", "m", "--file", "m.yaml", "--data-dir", f"{bad}/d"], f"--data-dir {bad}/d: "),
        (["reproduce", "--profile", "m", "--file", "m.yaml", "--data-dir", f"{bad}/d", "--dry-run"], "--data-dir"),
        (["mlp", "train", "--tracking-uri", f"sqlite:///{bad}/m.db"], f"--tracking-uri sqlite:///{bad}/m.db: "),
        (["reproduce", "--results-dir", f"{bad}/res"], f"--results-dir {bad}/res: "),
        (["reproduce", "--results-dir", f"{bad}/res", "--dry-run"], f"--results-dir {bad}/res: "),
        (["tables", "--results-dir", f"{bad}/res"], f"--results-dir {bad}/res: "),
        (["reproduce", "--file", f"{bad}/e.yaml"], f"--file {bad}/e.yaml: "),
        (["check", "--baseline", f"{bad}/res"], f"--baseline {bad}/res: "),
    ]


def test_a_default_baseline_folder_that_cannot_be_searched(project, monkeypatch):
    """`mlhw check` without --baseline reads results/<profile>/: a results/ of another user's, mode 700."""
    refuse_under(monkeypatch, project / "results")
    res = invoke("check", "--profile", "m")
    assert_one_line_error(res, "--profile m (its baseline results/m): results/m cannot be accessed (Permission denied)")


IDS = ["mlp data", "cnn data", "reproduce data", "dry-run data", "sqlite", "results", "dry-run results", "tables",
       "file", "baseline"]  # fmt: skip


def refuse_under(monkeypatch, locked):
    """Every look at a path under `locked` raises what Python 3.11 raises there for a user who may not search it."""

    def refusing(real):
        def look(self, *args, **kwargs):
            if os.path.abspath(self).startswith(f"{locked}{os.sep}"):
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        return look

    for name in ("stat", "exists", "is_file", "is_dir"):
        monkeypatch.setattr(pathlib.Path, name, refusing(getattr(pathlib.Path, name)))


@pytest.fixture
def project(workdir):
    (workdir / "m.yaml").write_text(yaml.safe_dump(MNIST_SPEC))
    (workdir / "experiments.yaml").write_text(yaml.safe_dump(MNIST_SPEC | {"profiles": {"digits": {}}}))
    return workdir


@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
def test_a_name_too_long(project, case):
    """The real thing: a 300-character folder name (OSError: [Errno 36] File name too long)."""
    argv, culprit = commands(project / ("a" * 300))[case]
    res = invoke(*argv)
    assert_one_line_error(res, culprit, "cannot be accessed (File name too long)")
    assert_nothing_created(project)


@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
def test_a_folder_on_the_way_that_cannot_be_searched(project, monkeypatch, case):
    """Root searches any folder, so the refusal is simulated (refuse_under): a folder of another user's, mode 700."""
    locked = project / "locked"
    locked.mkdir()
    refuse_under(monkeypatch, locked)
    argv, culprit = commands(locked / "inner")[case]
    res = invoke(*argv)
    assert_one_line_error(res, culprit, "cannot be accessed (Permission denied)")
    assert_nothing_created(project)


@pytest.mark.parametrize(
    "argv", [["mlp", "train", "--dataset", "mnist"], ["reproduce", "--profile", "m", "--file", "m.yaml"]]
)
def test_a_data_folder_that_mlhw_data_dir_named_says_so(project, monkeypatch, argv):
    """'--data-dir X: ... cannot be accessed' named an option a user who set MLHW_DATA_DIR never passed; a folder not
    found says whose it is (the folder X is MLHW_DATA_DIR's), and so does a folder that cannot be looked at."""
    bad = project / ("a" * 300)
    monkeypatch.setenv("MLHW_DATA_DIR", str(bad))
    line = assert_one_line_error(invoke(*argv), f"--data-dir {bad}: ", "cannot be accessed (File name too long)")
    assert line.endswith(f" (the folder {bad} is MLHW_DATA_DIR's)"), line
    assert_nothing_created(project)


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["check", "--profile", "m", "--baseline", ""], "--baseline '': empty (the default is results/m)"),
        (["reproduce", "--profile", "m", "--file", ""], "--file '': empty (the default is experiments.yaml)"),
    ],
    ids=["baseline", "file"],
)
def test_an_empty_path_is_refused_as_every_folder_option_is(project, argv, culprit):
    """`--baseline "$DIR"` with DIR unset checked results/<profile>, a baseline never named (as no --baseline), and
    `--file ''` said "error: .: is a directory", naming no option; --data-dir '' and --results-dir '' said empty."""
    base = project / "results" / "m" / "tables"
    base.mkdir(parents=True)
    (base / "x.csv").write_text("a\n1\n")
    assert_one_line_error(invoke(*argv), culprit)
    assert not (project / "mlflow.db").exists()


def test_the_ui_hint_of_a_store_under_a_folder_with_spaces_is_a_command_the_shell_runs(workdir):
    """A single command's last line offers the `mlhw ui` that browses its runs: with the store under `my dir/` it
    read `mlhw ui --tracking-uri sqlite:///.../my dir/m.db`, which the shell splits at the space (the UI opened
    `sqlite:///.../my`), and it left out the run's --experiment (ui's own default is mlhw)."""
    import re
    import shlex

    (workdir / "my dir").mkdir()
    uri = f"sqlite:///{workdir}/my dir/ünï m.db"
    res = invoke("svm", "soft", "--tracking-uri", uri, "--experiment", "my exp")
    assert res.exit_code == 0, res.output
    hint = re.search(r"`(mlhw ui [^`]*)` to browse", res.stdout)  # (a table's command: after its table)
    assert hint and shlex.split(hint[1]) == ["mlhw", "ui", "--tracking-uri", uri, "--experiment", "my exp"], res.stdout


def _suggested(pattern: str, text: str) -> list[str]:
    """The command in backticks that `pattern` finds in `text`, as the shell would split it."""
    import re
    import shlex

    found = re.search(pattern, " ".join(text.split()))
    assert found, text
    return shlex.split(found[1])


def test_the_fuser_a_locked_store_suggests_names_a_path_with_spaces_as_one_word(workdir):
    """`fuser my dir/m.db` asked about `my` and `dir/m.db`, neither of them the store."""
    from mlhw.store import _locked_error

    path = workdir / "my dir" / "m.db"
    said = str(_locked_error(f"sqlite:///{path}", path))
    assert _suggested(r"`(fuser [^`]*)` names it", said) == ["fuser", str(path)]


def test_the_restore_a_deleted_experiment_suggests_names_a_store_with_spaces_as_one_word(workdir):
    """`MLFLOW_TRACKING_URI=sqlite:///my dir/m.db mlflow ...` set the variable to `sqlite:///my` and ran `dir/m.db`."""
    from mlhw.store import Store

    uri = f"sqlite:///{workdir}/my dir/m.db"
    (workdir / "my dir").mkdir()
    store = Store(uri, "gone")
    store.client.delete_experiment(store.experiment_id)
    from mlhw.errors import MLHWError

    with pytest.raises(MLHWError) as e:
        Store(uri, "gone")
    words = _suggested(r"`(MLFLOW_TRACKING_URI=[^`]*)`", str(e.value))
    assert words[:4] == [f"MLFLOW_TRACKING_URI={uri}", "mlflow", "experiments", "restore"], words


def test_the_reproduce_an_absent_experiment_suggests_names_it_as_one_word(workdir):
    """`mlhw reproduce --profile ci --experiment my exp` reproduced into `my`, and `exp` was an extra argument."""
    from mlhw.store import Store

    uri = f"sqlite:///{workdir}/m.db"
    Store(uri, "mlhw")  # a store (its experiment mlhw), without the one asked for
    res = invoke("tables", "--profile", "ci", "--tracking-uri", uri, "--experiment", "my exp")
    assert res.exit_code != 0, res.output
    words = _suggested(r"`(mlhw reproduce [^`]*)` makes it", res.stderr)
    assert words == ["mlhw", "reproduce", "--profile", "ci", "--tracking-uri", uri, "--experiment", "my exp"], words


def test_the_restore_a_keyless_baseline_table_suggests_names_a_path_with_spaces_as_one_word(workdir):
    """`git checkout -- my base/tables/mlp_full.csv` restored nothing: git took `my` and `base/tables/...`."""
    (workdir / "my base" / "tables").mkdir(parents=True)
    (workdir / "my base" / "tables" / "mlp_full.csv").write_text("a,b\n1,2\n")  # a CSV, not one mlhw wrote
    res = invoke("check", "--profile", "ci", "--baseline", "my base", "--tracking-uri", f"sqlite:///{workdir}/m.db")
    assert res.exit_code != 0 and "not a table mlhw wrote" in res.stderr, res.output
    words = _suggested(r"\(`(git checkout [^`]*)`\)", res.stderr)
    assert words == ["git", "checkout", "--", "my base/tables/mlp_full.csv"], words
