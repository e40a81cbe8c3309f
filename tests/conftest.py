import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
# MLflow's experiment variables, which mlhw reads where --experiment is not given (MLFLOW_EXPERIMENT_ID: refused):
# a developer's exported one sent the suite's runs to another experiment than the tests read (mlhw), or refused every
# command. Cleared at import, before any fixture (the session's ci reproduction) or subprocess (test_scale's) starts;
# tests of the variables set them (test_experiment_env.py).
for _name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
    os.environ.pop(_name, None)

# The CLI's consoles take their piped width from COLUMNS once, when mlhw.cli.common is first imported (160 without
# it): imported here, before any test sets COLUMNS for a --help (CliRunner's env, monkeypatch), every test of the
# process sees 160 columns. Imported first inside such a test, a worker's tables were 200 or 400 columns wide.
os.environ.pop("COLUMNS", None)
import mlhw.cli.common  # noqa: E402, F401

# pytest-xdist (`-n auto --dist loadfile` in pyproject.toml): each module runs whole on one worker, so a module's
# fixtures (the local MLflow server of test_scale.py) start once. Tried and dropped: sending the two modules that
# start processes (test_scale.py, test_reproduce.py) first, one to each worker: 6m44 s against 6m15 s for xdist's
# own order, as they then start their processes at the same time.


def pytest_xdist_auto_num_workers(config):
    """One worker per core, at most 4 (each pays its imports and the session's ci reproduction); none on one core.
    PYTEST_XDIST_AUTO_NUM_WORKERS, xdist's own setting, comes first."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, 4) if cores > 1 else 0


def new_cache(tmp_path_factory):
    """A temporary cache folder (the suite never writes ~/.cache/mlhw), each test's own, but for its `stores/`: the
    empty MLflow database that a new store is a copy of (mlhw.store_template) is one for the session (each xdist
    worker's). Made by the first test that makes a store, it spares each later one MLflow's migrations: 117 new
    stores took 203 s of the suite's time, 1.7 s each."""
    cache = tmp_path_factory.mktemp("mlhw-cache")
    shared = tmp_path_factory.getbasetemp() / "store-templates"
    shared.mkdir(exist_ok=True)
    (cache / "stores").symlink_to(shared, target_is_directory=True)
    return cache


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MLHW_CACHE_DIR", str(new_cache(tmp_path_factory)))


@pytest.fixture(autouse=True)
def _signal_handlers():
    """Each test leaves the process's signal handlers as it found them: one left SIGINT ignored in an xdist worker,
    and a later test of that worker failed far from the cause (a Ctrl-C that never landed: exit 0 for 130, in the
    test process and in every child it started, which inherit an ignored signal)."""
    import signal

    signals = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    before = {s: signal.getsignal(s) for s in signals}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, []) if hasattr(signal, "pthread_sigmask") else None
    yield
    changed = {s: signal.getsignal(s) for s in signals if signal.getsignal(s) is not before[s]}
    for s in changed:
        signal.signal(s, before[s])
    blocked = None
    if mask is not None and (now := signal.pthread_sigmask(signal.SIG_BLOCK, [])) != mask:
        blocked = now
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    assert not changed and blocked is None, f"the test left signal handlers changed: {changed}, blocked: {blocked}"


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    """Reproductions run in one process unless a test passes --jobs (or sets MLHW_JOBS): `--jobs auto`, the default,
    starts two workers on this project's 2-core machines for any plan of two units, and each pool pays its processes'
    start-up (torch's and MLflow's imports), which the suite's tiny profiles never earn back. The pools have their own
    tests (test_pool.py, test_scale.py, test_early_workers.py) and auto's choice its own (test_reproduce.py)."""
    monkeypatch.setenv("MLHW_JOBS", "1")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in an empty folder: results/, data/ and mlflow.db land there, never in the repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLHW_DATA_DIR", raising=False)
    return tmp_path


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ci_reproduction(tmp_path_factory):
    """One `mlhw reproduce --profile ci` (the repository's experiments.yaml) for the whole session: its
    folder holds mlflow.db, mlartifacts/ and results/ci/. Tests that change anything work on a copy
    (`copy_ci`), never on this one."""
    import shutil

    from helpers import invoke

    root = tmp_path_factory.mktemp("ci")
    shutil.copy(REPO / "experiments.yaml", root / "experiments.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLHW_CACHE_DIR", str(new_cache(tmp_path_factory)))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLHW_DATA_DIR", raising=False)
        res = invoke("reproduce", "--profile", "ci", "--tracking-uri", f"sqlite:///{root}/mlflow.db")
    assert res.exit_code == 0, res.output
    return root, res


@pytest.fixture
def ci_copy(ci_reproduction, workdir):
    """The session's ci reproduction copied into this test's working folder (the store and results/; the
    artifacts stay where the experiment says they are). Returns its tracking URI."""
    import shutil

    root, _ = ci_reproduction
    for name in ("experiments.yaml", "mlflow.db"):
        shutil.copy2(root / name, workdir / name)
    shutil.copytree(root / "results", workdir / "results")
    return f"sqlite:///{workdir}/mlflow.db"


@pytest.fixture
def mlp_networks(monkeypatch):
    """Every mlp.Network the core builds, in order (the core returns metrics only; tests read the weights)."""
    from mlhw import mlp

    built = []

    class Spy(mlp.Network):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(mlp, "Network", Spy)
    return built


@pytest.fixture
def sigint_live():
    """Python's own Ctrl-C handler for the test, the process's handler put back after: a shell's background job
    (`pytest &` in a script) starts with SIGINT ignored, and a test of which processes ignore it must not
    inherit that."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
