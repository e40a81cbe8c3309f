"""MLflow's own MLFLOW_EXPERIMENT_NAME names the experiment where --experiment is not given (then mlhw): a user who
exported it (CI, a shared server) had every run logged to mlhw, the variable ignored in silence. MLFLOW_EXPERIMENT_ID,
which MLflow honours too, is refused in one line rather than ignored. Each test reads the store back: where the runs
landed, not only the exit code."""

import re
import shlex

import pytest
import yaml
from helpers import assert_nothing_created, assert_one_line_error, invoke, reproduce_tiny, runs_of

NAME, ID = "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"


@pytest.fixture
def env(workdir, monkeypatch):
    """Neither variable set (conftest clears them for the suite; said again here, where they are the subject)."""
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(ID, raising=False)
    return workdir


def soft(workdir, *args):
    """`mlhw svm soft` (seconds) on workdir's SQLite store."""
    return invoke("svm", "soft", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db", *args)


def experiments(workdir) -> dict[str, int]:
    """The store's experiments that hold runs: name -> number of runs (Default, empty, left out)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    found = {e.name: len(client.search_runs([e.experiment_id])) for e in client.search_experiments()}
    return {name: n for name, n in found.items() if n}


def ui_hint(res) -> list[str]:
    hint = re.search(r"`(mlhw ui[^`]*)` to browse", res.stdout)
    assert hint, res.stdout
    return shlex.split(hint[1])


def test_the_variable_names_the_experiment_a_run_is_logged_to(env, monkeypatch):
    monkeypatch.setenv(NAME, "from env")
    res = soft(env)
    assert res.exit_code == 0, res.output
    assert experiments(env) == {"from env": 1}  # it went to mlhw
    # the `mlhw ui` that browses it names the experiment in full: right in this shell, and in one without the variable
    assert ui_hint(res) == ["mlhw", "ui", "--tracking-uri", f"sqlite:///{env}/mlflow.db", "--experiment", "from env"]


def test_the_option_comes_before_the_variable_and_its_hint_says_so(env, monkeypatch):
    """--experiment mlhw with the variable set: the runs go to mlhw, and the hint's `mlhw ui` (which, bare, would take
    the variable's experiment in this shell) names mlhw. It said `mlhw ui --tracking-uri ...`, as for no variable."""
    monkeypatch.setenv(NAME, "from env")
    res = soft(env, "--experiment", "mlhw")
    assert res.exit_code == 0, res.output
    assert experiments(env) == {"mlhw": 1}
    assert ui_hint(res)[-2:] == ["--experiment", "mlhw"], res.stdout


@pytest.mark.parametrize("value", ["", None], ids=["empty", "unset"])
def test_an_empty_or_unset_variable_is_mlhw(env, monkeypatch, value):
    """`MLFLOW_EXPERIMENT_NAME= mlhw ...` unsets it for one command, as an empty MLFLOW_TRACKING_URI is none; the hint
    stays the bare `mlhw ui`."""
    if value is not None:
        monkeypatch.setenv(NAME, value)
    res = soft(env)
    assert res.exit_code == 0, res.output
    assert experiments(env) == {"mlhw": 1}
    assert "--experiment" not in ui_hint(res)


def _deleted(workdir, name: str) -> None:
    from mlhw.store import Store

    store = Store(f"sqlite:///{workdir}/mlflow.db", name)
    store.client.delete_experiment(store.experiment_id)


@pytest.mark.parametrize(
    "value, culprit",
    [
        ("   ", "MLFLOW_EXPERIMENT_NAME='   ': an experiment needs a name"),
        ("x" * 501, "MLFLOW_EXPERIMENT_NAME=" + "x" * 40 + "...: 501 characters, where MLflow takes at most 500"),
        ("caf\udce9", "MLFLOW_EXPERIMENT_NAME: caf\\xe9 is not UTF-8 text"),  # a latin-1 name under a UTF-8 locale
        ("gone", "MLFLOW_EXPERIMENT_NAME=gone: deleted in sqlite:///"),
    ],
    ids=["blank", "too long", "not text", "deleted"],
)
@pytest.mark.parametrize("command", ["svm soft", "reproduce", "tables"])
def test_a_bad_name_from_the_variable_is_one_line_naming_it(env, monkeypatch, value, culprit, command):
    """Refused as `--experiment X` is, before anything runs, but naming the variable: a user who passed no option was
    told to fix `--experiment`. (Before: the variable was not read at all, and the run went to mlhw.)"""
    if value == "gone":
        _deleted(env, value)
    (env / "exp.yaml").write_text(yaml.safe_dump(SOFT_ONLY))
    monkeypatch.setenv(NAME, value)
    if command == "svm soft":
        res = soft(env)
    elif command == "reproduce":
        res = reproduce_tiny(env)
    else:
        res = invoke("tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{env}/mlflow.db")
    line = assert_one_line_error(res, f"error: {culprit}")
    if value == "gone":
        assert "mlflow experiments restore" in line, line
    assert_nothing_created(env)
    if (env / "mlflow.db").exists():  # (the deleted experiment's store): no run in any experiment
        assert experiments(env) == {}


@pytest.mark.parametrize("also_name", [False, True], ids=["id alone", "with a name"])
@pytest.mark.parametrize("command", ["svm soft", "reproduce", "tables", "ui"])
def test_the_experiment_id_variable_is_refused_not_ignored(env, monkeypatch, also_name, command):
    """MLflow runs in the experiment MLFLOW_EXPERIMENT_ID names; mlhw takes its experiment by name (its workers and
    the commands it prints carry one), and logged to mlhw with the variable set, in silence. One line naming it,
    exit 2, before anything (the UI's server too) starts."""
    from mlhw import ui

    def no_server(*a, **k):
        raise AssertionError("the UI's server was started")

    monkeypatch.setattr(ui, "start", no_server)
    (env / "exp.yaml").write_text(yaml.safe_dump(SOFT_ONLY))
    monkeypatch.setenv(ID, "5")
    if also_name:
        monkeypatch.setenv(NAME, "named")
    uri = f"sqlite:///{env}/mlflow.db"
    if command == "svm soft":
        res = soft(env)
    elif command == "reproduce":
        res = reproduce_tiny(env)
    elif command == "tables":
        res = invoke("tables", "--profile", "tiny", "--tracking-uri", uri)
    else:
        res = invoke("ui", "--tracking-uri", uri, "--port", "5999")
    line = assert_one_line_error(res, "error: MLFLOW_EXPERIMENT_ID=5: mlhw takes an experiment by name", "--experiment")
    assert ("MLFLOW_EXPERIMENT_NAME alone names it" in line) == also_name, line
    assert_nothing_created(env)


def test_an_id_whose_bytes_are_not_text_is_shown_as_its_bytes(env, monkeypatch):
    monkeypatch.setenv(ID, "\udcff")  # the byte 0xff, as Python holds it from the environment
    res = invoke("tables", "--tracking-uri", f"sqlite:///{env}/mlflow.db")
    assert_one_line_error(res, "error: MLFLOW_EXPERIMENT_ID=\\xff: mlhw takes an experiment by name")
    assert_nothing_created(env)


def test_an_experiment_given_as_an_option_is_not_refused_for_the_id_variable(env, monkeypatch):
    """--experiment says which experiment, as mlflow.set_experiment does over MLflow's variables."""
    monkeypatch.setenv(ID, "5")
    res = soft(env, "--experiment", "given")
    assert res.exit_code == 0, res.output
    assert experiments(env) == {"given": 1}
    assert ui_hint(res)[-2:] == ["--experiment", "given"]


SOFT_ONLY = {
    "version": 1,
    "suites": {"svm_soft": {"kind": "svm_soft", "part": "svm.q3"}},
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}}},
}


def test_reproduce_and_tables_take_the_variables_experiment(env, monkeypatch):
    """A reproduction with the variable set: its runs and suite parent in that experiment, none in mlhw; `mlhw tables`
    in the same shell finds it, and without the variable names mlhw, where it looked, and the one that is there."""
    (env / "exp.yaml").write_text(yaml.safe_dump(SOFT_ONLY))
    monkeypatch.setenv(NAME, "course")
    res = reproduce_tiny(env)
    assert res.exit_code == 0, res.output
    uri = f"sqlite:///{env}/mlflow.db"
    _, course = runs_of(uri, "course")
    assert {r.data.tags.get("mlhw.kind") for r in course} == {"suite", "svm_soft"} and len(course) == 2, course
    assert runs_of(uri, "mlhw")[1] == []
    assert "experiment `course`" in (env / "results" / "tiny" / "REPORT.md").read_text()
    # a reproduction's and a tables' output end as a single command's: where the runs are, and how to browse them
    # (the experiment in full: a shell without the variable opens it too)
    browse = ["mlhw", "ui", "--tracking-uri", uri, "--experiment", "course"]
    assert res.stdout.splitlines()[-1].startswith(f"tracking: {uri} (experiment 'course'); ") and ui_hint(res) == browse
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert ui_hint(res) == browse
    monkeypatch.delenv(NAME)
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", uri)
    assert_one_line_error(res, "error: --experiment mlhw: no such experiment", "(experiments there: Default, course)")


def test_an_absent_experiment_from_the_variable_names_it_and_the_reproduce_that_makes_it(env, monkeypatch):
    from mlhw.store import Store

    uri = f"sqlite:///{env}/mlflow.db"
    Store(uri, "mlhw")  # a store (its experiment mlhw), without the one the variable names
    monkeypatch.setenv(NAME, "my exp")
    res = invoke("tables", "--profile", "ci", "--tracking-uri", uri)
    line = assert_one_line_error(res, "error: MLFLOW_EXPERIMENT_NAME=my exp: no such experiment in ")
    made = re.search(r"`(mlhw reproduce [^`]*)` makes it", line)
    # in the store that lacks it: without --tracking-uri it made the experiment in ./mlflow.db (or the variable's)
    command = ["mlhw", "reproduce", "--profile", "ci", "--tracking-uri", uri, "--experiment", "my exp"]
    assert made and shlex.split(made[1]) == command, line
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the store this shell's commands take: not repeated
    line = assert_one_line_error(invoke("tables", "--profile", "ci"), "error: MLFLOW_EXPERIMENT_NAME=my exp: ")
    made = re.search(r"`(mlhw reproduce [^`]*)` makes it", line)
    assert made and shlex.split(made[1]) == ["mlhw", "reproduce", "--profile", "ci", "--experiment", "my exp"], line


def test_the_tables_command_a_failed_report_names_carries_the_experiment(env, monkeypatch):
    """The `mlhw tables` that rebuilds a report names the variable's experiment in full, and mlhw where the variable
    names another: run bare in this shell, it read the variable's experiment."""
    from mlhw.cli.reproduce import _tables_command
    from mlhw.executors import Settings

    uri = f"sqlite:///{env}/mlflow.db"
    monkeypatch.setenv(NAME, "course")
    assert _tables_command("ci", Settings(uri, "course"), "results").endswith("--experiment course")
    assert _tables_command("ci", Settings(uri, "mlhw"), "results").endswith("--experiment mlhw")
    monkeypatch.delenv(NAME)
    assert "--experiment" not in _tables_command("ci", Settings(uri, "mlhw"), "results")


def test_the_ui_links_the_variables_experiment(env, monkeypatch):
    from mlhw import ui
    from mlhw.store import Store

    uri = f"sqlite:///{env}/mlflow.db"
    Store(uri, "mlhw")
    other = Store(uri, "course").experiment_id
    monkeypatch.setenv(NAME, "course")
    assert ui.experiment_url(uri, 5001) == (
        f"http://127.0.0.1:5001/#/experiments/{other}/runs?workflowType=machine_learning",
        None,
    )
    monkeypatch.setenv(NAME, "nope")
    _, note = ui.experiment_url(uri, 5001)
    assert note.startswith(f"no experiment 'nope' in {uri} (named by MLFLOW_EXPERIMENT_NAME; --experiment"), note


@pytest.mark.parametrize(
    "command", [["svm", "soft"], ["svm", "multiclass"], ["mlp", "train"], ["mlp", "sweep"], ["cnn", "train"],
                ["cnn", "compare"], ["theory"], ["reproduce"], ["tables"], ["check"], ["ui"]],
    ids=" ".join,
)  # fmt: skip
def test_every_experiment_option_says_the_variables(command):
    from typer.testing import CliRunner

    from mlhw.cli import app

    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.replace("│", " ").split())
    assert "[default: ($MLFLOW_EXPERIMENT_NAME or mlhw)]" in text, text
    assert "MLFLOW_EXPERIMENT_ID without this option is refused" in text, text
