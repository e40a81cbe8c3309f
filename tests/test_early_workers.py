"""`reproduce --jobs N` starts its workers as soon as the plan has runs to train, not after every check, the store
and the suite parents: on an H100 machine a worker took 13.6 s from its spawn to its first run and the parent 16 s
from its start to the spawn, one after the other. The workers must be the ones that train, a check that fails after
their start must leave none behind (and nothing in MLflow), and a reproduce with nothing to train starts none."""

import ctypes
import os
import signal

import pytest
import torch
import yaml
from helpers import (
    assert_nothing_created,
    assert_one_line_error,
    invoke,
    offline_download_worker,
    runs_of,
    write_mnist_idx,
)

from mlhw import data as datalib
from mlhw import executors, processes
from mlhw.cli import reproduce as reproduce_cli
from mlhw.cli import validate as validate_cli

PROFILE = {
    "version": 1,
    "suites": {
        "mlp_lr_sweep": {
            "kind": "mlp",
            "part": "mlp.b",
            "base": {"epochs": 1, "train_size": 100, "test_size": 30},
            "grid": {"lr": [0.1, 1.0]},
        },
        "svm_soft": {"kind": "svm_soft", "part": "svm.q3", "grid": {"C": [1.0]}},
    },
    "profiles": {"small": {"defaults": {"dataset": "digits"}}},
}


@pytest.fixture
def project(workdir):
    (workdir / "experiments.yaml").write_text(yaml.safe_dump(PROFILE))
    return workdir


def repro(project, *extra):
    """reproduce --profile small on the project's own database, named by its absolute path: MLflow caches a store
    per URI in the process, and the relative default (sqlite:///mlflow.db) would reach an earlier test's file."""
    return invoke("reproduce", "--profile", "small", "--tracking-uri", f"sqlite:///{project}/mlflow.db", *extra)


@pytest.fixture
def spied(monkeypatch):
    """What happened, in order: the pool's start (with the pids it started) and the suite parents' creation."""
    seen: list = []
    start, parents = executors.PoolExecutor.start, reproduce_cli._suite_parents

    def spy_start(self, configs=()):
        fresh = self._pools is None  # run() calls start() again: a no-op once started
        start(self, configs)
        if fresh:
            seen.append(("start", {pid for pool in self._pools for pid in pool._processes}, list(configs)))

    def spy_parents(*a, **kw):
        seen.append(("suite parents",))
        return parents(*a, **kw)

    monkeypatch.setattr(executors.PoolExecutor, "start", spy_start)
    monkeypatch.setattr(reproduce_cli, "_suite_parents", spy_parents)
    return seen


def test_the_workers_start_with_the_plan_and_are_the_ones_that_train(project, spied, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    waits, shutdown, run = [], ProcessPoolExecutor.shutdown, executors.PoolExecutor.run

    def spy_shutdown(self, wait=True, **kw):
        waits.append(wait)
        return shutdown(self, wait, **kw)

    def spy_run(self, units, on_event):
        out = run(self, units, on_event)
        spied.append(("run returned", list(waits)))  # the idle workers end while the parent compiles its report
        return out

    monkeypatch.setattr(ProcessPoolExecutor, "shutdown", spy_shutdown)
    monkeypatch.setattr(executors.PoolExecutor, "run", spy_run)
    res = repro(project, "--jobs", 2)
    assert res.exit_code == 0, res.output
    assert [s[0] for s in spied] == ["start", "suite parents", "run returned"]  # started before any run existed
    assert spied[2][1] == [False]  # run() did not wait for its workers to exit...
    pids, configs = spied[0][1], spied[0][2]
    for pid in pids:  # ... and they had ended, reaped, when reproduce returned
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert len(pids) == 2  # both workers at once, each taking its share of the work
    assert sorted(c.kind for c in configs) == ["mlp", "mlp", "svm_soft"]  # what it was told would run
    _, runs = runs_of(f"sqlite:///{project}/mlflow.db")
    trained = [r for r in runs if r.data.tags["mlhw.kind"] not in ("suite", "mlp-sweep")]
    assert len(trained) == 3 and {r.info.status for r in trained} == {"FINISHED"}
    worker_pids = {int(r.data.tags["mlhw.worker"].rsplit(":", 1)[1]) for r in trained}
    assert worker_pids <= pids  # no second set of processes: run() took the started ones


def test_a_new_stores_workers_start_before_the_data_are_read(project, spied, monkeypatch):
    """A store (or an experiment) that does not exist yet has every planned run to train: its workers start before
    the parent reads and checks the data and makes the plan (2.5 s of the paper profile's start-up on the 2-core CPU
    with an empty fingerprint cache). A store that holds runs waits for the plan, which says what is left."""
    unreadable = validate_cli._unreadable

    def spy_unreadable(*a, **kw):
        spied.append(("data read",))
        return unreadable(*a, **kw)

    monkeypatch.setattr(validate_cli, "_unreadable", spy_unreadable)
    # two units of work in each step (no pool of two workers for one unit): two Cs, two batch sizes of the sweep
    doc = yaml.safe_load((project / "experiments.yaml").read_text())
    doc["suites"]["svm_soft"]["grid"]["C"] = [1.0, 10.0]
    doc["suites"]["mlp_lr_sweep"]["grid"]["batch_size"] = [5, 10]
    (project / "experiments.yaml").write_text(yaml.safe_dump(doc))
    assert repro(project, "--jobs", 2, "--only", "svm_soft").exit_code == 0
    assert list(dict.fromkeys(s[0] for s in spied))[:3] == ["start", "data read", "suite parents"]
    spied.clear()
    assert repro(project, "--jobs", 2).exit_code == 0  # the store exists now: the sweep is left
    assert list(dict.fromkeys(s[0] for s in spied))[:3] == ["data read", "start", "suite parents"]
    assert sorted(c.kind for c in spied[1][2]) == ["mlp"] * 4
    # --download fetches files that are here too: the parent's alone, before any worker (they would fetch them too).
    # On a suite that reads files (a digits-only profile refuses --download): MNIST's, the fetch itself left out
    # here and in the workers (no network in the tests; the files are in place), its report beside the digits one
    doc["profiles"]["small"]["suites"] = {"mlp_lr_sweep": {"base": {"dataset": "mnist"}}}
    (project / "experiments.yaml").write_text(yaml.safe_dump(doc))
    write_mnist_idx(project / "data", 300, 50, side=28)
    monkeypatch.setattr(datalib, "_fetch_mnist", lambda data_dir: None)
    monkeypatch.setattr(executors, "prepare_worker", offline_download_worker)
    spied.clear()
    res = repro(project, "--jobs", 2, "--download", "--experiment", "other", "--results-dir", project / "mnist")
    assert res.exit_code == 0, res.output
    assert list(dict.fromkeys(s[0] for s in spied))[:2] == ["data read", "start"]
    assert sorted(c.dataset for c in spied[1][2]) == ["digits"] * 2 + ["mnist"] * 4


def test_a_new_store_whose_data_are_absent_starts_no_worker_before_the_parents_check(project, spied):
    """An absent dataset is the parent's to fetch or to refuse: workers started beside it would fetch it too."""
    doc = yaml.safe_load((project / "experiments.yaml").read_text())
    doc["profiles"]["small"]["defaults"]["dataset"] = "mnist"
    (project / "experiments.yaml").write_text(yaml.safe_dump(doc))
    res = repro(project, "--jobs", 2, "--no-download", "--only", "mlp_lr_sweep")
    assert res.exit_code == 2 and "mnist" in res.stderr and spied == []
    assert not (project / "mlflow.db").exists()


def test_a_check_that_fails_after_the_start_leaves_no_worker_and_nothing_written(project, spied, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: --device cuda must fail its check")
    monkeypatch.setattr(executors, "gpu_driver_absent", lambda: False)  # a driver, but no CUDA torch can use
    res = repro(project, "--jobs", 2, "--device", "cuda")
    assert_one_line_error(res, "--device cuda", "CUDA is not available")
    assert [s[0] for s in spied] == ["start"]  # started by the plan, before the device's check failed
    for pid in spied[0][1]:  # stopped and reaped: no process left behind, not even a zombie
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert_nothing_created(project, f"sqlite:///{project}/mlflow.db")


def test_cuda_where_no_gpu_driver_exists_fails_before_any_worker_starts(project, spied, monkeypatch):
    """Known without torch (no GPU driver's files): --device cuda fails before the workers start, not after they
    imported torch beside the parent's check (2-core CPU: 7.5-8 s to the error instead of 4.6 s)."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: --device cuda must fail its check")
    monkeypatch.setattr(executors, "GPU_DRIVER_FILES", (str(project / "no-such-driver"),))
    res = repro(project, "--jobs", 2, "--device", "cuda")
    assert_one_line_error(res, "--device cuda", "CUDA is not available")
    assert spied == []
    assert_nothing_created(project, f"sqlite:///{project}/mlflow.db")


def test_a_broken_baseline_fails_before_any_worker_starts(project, spied):
    """The committed results are read with the plan: a broken baseline (here a tables folder without a table)
    stops reproduce --jobs 2 before its workers start (2-core CPU: 2.5 s to the error instead of 6.7 s)."""
    from mlhw.layout import TABLES

    (project / "results" / "small" / TABLES).mkdir(parents=True)
    res = repro(project, "--jobs", 2)
    assert_one_line_error(res, "results/small/tables", "no CSV tables")
    assert spied == []
    assert not (project / "mlflow.db").exists()


def test_a_reproduce_with_nothing_to_train_starts_no_worker(project, spied):
    assert repro(project).exit_code == 0  # the store made whole, in this process (a pool's start-up: 4-5 s)
    spied.clear()
    res = repro(project, "--jobs", 2)
    assert res.exit_code == 0 and "up to date" in res.stderr
    assert spied == []


def test_jobs_1_starts_no_pool(project, spied):
    res = repro(project)
    assert res.exit_code == 0, res.output
    assert [s[0] for s in spied] == ["suite parents"]


class FakeNVML:
    """libnvidia-ml's three calls, answering `count` GPUs (or failing its init)."""

    def __init__(self, count: int, init_status: int = 0):
        self.count, self.init_status, self.shut = count, init_status, False

    def nvmlInit_v2(self):
        return self.init_status

    def nvmlDeviceGetCount_v2(self, ref):
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_uint)).contents.value = self.count
        return 0

    def nvmlShutdown(self):
        self.shut = True


def test_gpu_count_asks_nvml_and_falls_back_to_torch(monkeypatch, tmp_path):
    """The lanes of --jobs are planned from the GPU count before the workers start: NVIDIA's library answers without
    importing torch; where it does not load or fails, or CUDA_VISIBLE_DEVICES narrows the GPUs, torch answers;
    where no GPU driver is here at all, there is no GPU (and torch is not imported for it)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "nvidiactl").touch()
    monkeypatch.setattr(executors, "torch_built_with_cuda", lambda: True)
    monkeypatch.setattr(executors, "GPU_DRIVER_FILES", (str(tmp_path / "absent"), str(tmp_path / "nvidiactl")))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 5)
    nvml = FakeNVML(3)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: nvml)
    assert executors.gpu_count() == 3 and nvml.shut
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert executors.gpu_count() == 5  # torch's count honours the variable
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(executors, "torch_built_with_cuda", lambda: False)  # a CPU wheel on a GPU machine: torch's
    assert executors.gpu_count() == 5  # answer (here a fake 5; a CPU wheel's is 0), not a lane on a GPU it cannot use
    monkeypatch.setattr(executors, "torch_built_with_cuda", lambda: True)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeNVML(3, init_status=9))  # e.g. a driver/library mismatch
    assert executors.gpu_count() == 5

    def no_library(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    assert executors.gpu_count() == 5
    monkeypatch.setattr(executors, "GPU_DRIVER_FILES", (str(tmp_path / "absent"),))  # a CPU machine
    assert executors.gpu_count() == 0
    monkeypatch.setattr(executors, "GPU_DRIVER_FILES", (str(tmp_path / "nvidiactl"),))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert executors.gpu_count() == 0


def test_a_workers_start_up_never_raises_its_first_unit_says_what_failed(project, monkeypatch):
    """A failure while a worker starts (before any check could fail, or of a device it cannot use) would print
    concurrent.futures' traceback and break the pool: the start-up swallows it, and the unit reports it."""
    import signal

    settings = executors.Settings(uri=f"sqlite:///{project}/mlflow.db", experiment="mlhw", device="cuda:7")
    # (a worker ignores SIGHUP: left so, every process the later tests start inherited it, and ignored a hangup)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    monkeypatch.setattr(executors, "_WORKER", {})
    monkeypatch.setattr(executors, "execute_unit", lambda *a, **k: pytest.fail("the unit ran without its device"))
    try:
        executors.prepare_worker(settings, datasets=("no-such-dataset",))  # raises nothing
        assert "device" not in executors._WORKER
        result = executors.work([], 0, settings)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert result.error and "--device cuda:7" in result.error


def test_a_new_stores_workers_start_before_the_parent_imports_mlflow(project):
    """MLflow's import (1.4 s on the 2-core CPU, 2-2.6 s on an H100 machine) was the parent's first step, through
    mlhw.executors: the workers, which import it too, started that much later. Now a new store's workers start
    first. A fresh process: this one imported MLflow long ago."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from mlhw import executors\n"
        "def start(self, configs=()):\n"
        "    print('mlflow imported at the start:', 'mlflow' in sys.modules, flush=True)\n"
        "    os._exit(0)\n"
        "executors.PoolExecutor.start = start\n"
        "from mlhw.cli import main\n"
        "sys.argv = ['mlhw', 'reproduce', '--profile', 'small', '--jobs', '2', '--tracking-uri', sys.argv[1]]\n"
        "main()\n"
    )
    uri = f"sqlite:///{project}/mlflow.db"
    out = subprocess.run([sys.executable, "-c", code, uri], capture_output=True, text=True, cwd=project)
    assert out.stdout.strip() == "mlflow imported at the start: False", out.stdout + out.stderr
    assert not (project / "mlflow.db").exists()


def _sigint_ignored(queue) -> None:
    import signal

    queue.put(all(signal.getsignal(s) == signal.SIG_IGN for s in processes.QUIET_SIGNALS))


def test_the_writers_process_loads_only_the_standard_library_before_it_answers():
    """A spawned child imports the modules of its Process class and of its initializer before it runs: the writer's
    were mlhw.executors', and it imported MLflow (1.1 s on the 2-core CPU) while the parent waited in its start.
    mlhw.processes holds them and imports nothing of mlhw's, MLflow's or torch's; the writer loads MLflow on a
    thread once it answers."""
    import subprocess
    import sys

    from mlhw.relay import RelayManager

    code = (
        "import sys, mlhw.processes\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlhw', 'mlflow', 'torch', 'numpy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mlhw', 'mlhw.processes']"
    assert executors.QuietSpawnContext is processes.QuietSpawnContext
    assert executors.writer_signals is processes.writer_signals
    assert RelayManager.__module__ == "mlhw.relay"


def test_a_spawned_worker_starts_with_sigint_ignored(sigint_live):
    """A terminal's Ctrl-C reaches the whole process group: a worker still importing (before its initializer ran)
    printed a KeyboardInterrupt traceback. The workers and the writer start with SIGINT ignored, and SIGHUP (a
    closed terminal's hangup killed a worker still importing, or the writer)."""
    import signal

    assert signal.SIGINT in processes.QUIET_SIGNALS
    assert not hasattr(signal, "SIGHUP") or signal.SIGHUP in processes.QUIET_SIGNALS
    hup = signal.signal(signal.SIGHUP, signal.SIG_DFL) if hasattr(signal, "SIGHUP") else None
    ctx = processes.QuietSpawnContext()
    queue = ctx.SimpleQueue()
    p = ctx.Process(target=_sigint_ignored, args=(queue,))
    p.start()
    try:
        assert queue.get() is True
    finally:
        p.join(30)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's own handler is back
    if hup is not None:
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
        signal.signal(signal.SIGHUP, hup)


class _TeardownProbe:
    def __init__(self, path):
        import os

        # what __del__ needs, held here: at the teardown the builtins (open) may be gone already
        self.fd, self.write = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), os.write

    def __del__(self):
        self.write(self.fd, b"torn down\n")


def _child_with_probe(path, fail: bool) -> None:
    import atexit

    global _probe
    _probe = _TeardownProbe(path)  # a module global: freed by the interpreter's teardown, never before
    atexit.register(lambda: open(path, "a").write("exit handler ran\n"))
    if fail:
        raise RuntimeError("the target failed")


@pytest.mark.parametrize("fail, code", [(False, 0), (True, 1)])
def test_a_spawned_process_ends_without_the_interpreters_teardown(tmp_path, fail, code):
    """A worker or the writer ends as multiprocessing ends a forked child (os._exit after its work), less the
    teardown that took seconds beside the report once torch and MLflow were loaded: its exit code and its exit
    handlers are kept."""
    ctx = processes.QuietSpawnContext()
    p = ctx.Process(target=_child_with_probe, args=(str(tmp_path / "said"), fail))
    p.start()
    p.join(60)
    assert p.exitcode == code
    assert (tmp_path / "said").read_text().splitlines() == ["exit handler ran"]


def _orphan_child(queue) -> None:
    import os
    import time

    processes.exit_with_parent()
    queue.put(os.getpid())
    time.sleep(300)


def test_a_worker_ends_with_its_killed_parent(tmp_path):
    """A parent killed outright (SIGKILL, the OOM killer) left its workers and its writer waiting for work for ever,
    holding their memory (and a GPU's). Each watches its parent and ends with it."""
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from mlhw import processes\nimport test_early_workers as t\n"
        "if __name__ == '__main__':\n"
        "    ctx = processes.QuietSpawnContext(); q = ctx.SimpleQueue()\n"
        "    ctx.Process(target=t._orphan_child, args=(q,)).start()\n"
        "    print(q.get(), flush=True)\n"
        "    import time; time.sleep(300)\n"
    )
    script = tmp_path / "parent.py"
    script.write_text(code)
    parent = subprocess.Popen(
        [sys.executable, str(script), os.path.dirname(__file__)], stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            with open(f"/proc/{child}/stat") as f:  # an exited child of init that is not reaped yet counts as gone
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the child outlived its killed parent")
    finally:
        parent.kill()


def test_the_lanes_that_take_alexnet_warm_it_up_with_its_first_planned_config():
    """A GPU worker pays AlexNet's first-run costs (kernels loaded on first use, cuDNN's autotuning: 8 s of a fresh
    process's first paper-sized run on an H100) before its first unit: with the first CNN config of the plan, on
    the lanes that take AlexNet's units; the CPU lane beside a GPU does not."""
    from mlhw.config import CNNConfig, MLPConfig

    mlp, sgd, adam = MLPConfig(), CNNConfig(optimizer="sgd", seed=1), CNNConfig(optimizer="adam")
    gpu, cpu = executors.plan_lanes(2, "auto", 1)
    assert executors.warm_config(gpu, [mlp, sgd, adam]) is sgd
    assert executors.warm_config(cpu, [mlp, sgd, adam]) is None
    assert executors.warm_config(gpu, [mlp]) is None
    (pooled,) = executors.plan_lanes(3, "cuda", 1)  # --device cuda: every worker takes any unit
    assert executors.warm_config(pooled, [mlp, adam]) is adam


@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.parametrize("device", ["cuda:0", "cpu"])
def test_a_worker_warms_alexnet_up_on_a_gpu_only(monkeypatch, device, compile):
    import signal

    import mlhw.cnn
    import mlhw.device
    from mlhw.config import CNNConfig

    warmed = []
    monkeypatch.setattr(executors, "_WORKER", {})
    monkeypatch.setattr(mlhw.device, "resolve_device", lambda name: torch.device(name))
    monkeypatch.setattr(executors, "warm_cuda", lambda dev: None)
    monkeypatch.setattr(
        mlhw.cnn, "warm_up", lambda cfg, data, dev, precision, comp: warmed.append((cfg, data, dev, precision, comp))
    )
    cfg = CNNConfig(dataset="digits")
    settings = executors.Settings(
        uri="sqlite:///unused.db", experiment="mlhw", device=device, precision="fp32", compile=compile
    )
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        executors.prepare_worker(settings, device, ("digits",), False, cfg)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    if device == "cpu":
        assert warmed == []
    else:  # the dataset the worker read, on its device; compiled under reproduce --compile, not in the first run
        [(c, data, dev, precision, comp)] = warmed
        assert c is cfg and data is executors._WORKER["source"].base("digits") and dev == torch.device("cuda:0")
        assert (precision, comp) == ("fp32", compile)


def test_a_gpu_worker_warms_up_before_it_reads_the_datasets_of_its_later_units(monkeypatch):
    """A GPU lane takes AlexNet's units first: its warm-up (seconds of CUDA's start-up) comes before reading Part 1's
    MNIST, which only the lane's last units may need."""
    import signal

    import mlhw.cnn
    import mlhw.device
    from mlhw.config import CNNConfig

    calls = []

    class Source:
        def __init__(self, data_dir, download):
            pass

        def base(self, name):
            calls.append(("read", name))
            return name

    monkeypatch.setattr(executors, "_WORKER", {})
    monkeypatch.setattr(executors, "DataSource", Source)
    monkeypatch.setattr(mlhw.device, "resolve_device", lambda name: torch.device(name))
    monkeypatch.setattr(executors, "warm_cuda", lambda dev: None)
    monkeypatch.setattr(mlhw.cnn, "warm_up", lambda cfg, data, dev, precision, comp: calls.append(("warm", data)))
    settings = executors.Settings(uri="sqlite:///unused.db", experiment="mlhw", device="cuda:0", precision="fp32")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        executors.prepare_worker(settings, "cuda:0", ("mnist", "cifar10"), False, CNNConfig(dataset="cifar10"))
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    assert calls[:3] == [("read", "cifar10"), ("warm", "cifar10"), ("read", "mnist")]


def test_a_failed_warm_up_is_said_with_the_workers_first_unit(monkeypatch):
    """A warm-up that fails (out of GPU memory, a bug of its own) costs the first AlexNet run its start-up, and said
    nothing: the worker's first unit now sends a note (after its start event), once; the unit itself runs."""
    import queue
    import signal

    import mlhw.cnn
    import mlhw.device
    from mlhw.config import CNNConfig
    from mlhw.runs import Job

    def broken(cfg, data, dev, precision, comp):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(executors, "_WORKER", {})
    monkeypatch.setattr(mlhw.device, "resolve_device", lambda name: torch.device(name))
    monkeypatch.setattr(executors, "warm_cuda", lambda dev: None)
    monkeypatch.setattr(mlhw.cnn, "warm_up", broken)
    ran = []
    monkeypatch.setattr(executors, "execute_unit", lambda jobs, *a, **kw: ran.append(jobs) or executors.UnitResult())
    cfg = CNNConfig(dataset="digits")
    settings = executors.Settings(uri="sqlite:///unused.db", experiment="mlhw", device="cuda:0", precision="fp32")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        executors.prepare_worker(settings, "cuda:0", ("digits",), False, cfg)
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
    executors._WORKER["store"] = "attached"
    unit = [Job(cfg, "id", "a run").to_dict()]
    events = queue.Queue()
    executors.work(unit, 3, settings, events)
    executors.work(unit, 4, settings, events)
    said = [events.get_nowait() for _ in range(events.qsize())]
    assert [(e.kind, e.unit) for e in said] == [("start", 3), ("note", 3), ("start", 4)] and len(ran) == 2
    assert said[1].label == (
        "AlexNet's warm-up on cuda:0 failed (RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB); this "
        "worker's first AlexNet run pays CUDA's start-up instead"
    )


def _stopping_pool():
    """A PoolExecutor for calling _stop on processes of a test's own, its store holding no RUNNING run to mark."""
    nothing_running = type("Store", (), {"search": lambda self, query: []})()
    return executors.PoolExecutor(nothing_running, executors.Settings("sqlite:///x.db", "e", device="cpu"), 2)


def _ends_its_run_then_idles(path: str, ready) -> None:
    """A stand-in for a busy worker (_terminate_in_run): its first SIGTERM ends its run, which takes a second, and
    the SIGTERMs that come meanwhile are taken as that one (the kernel's merge of two pending ones, or a worker
    already ending its runs); idle after that, it exits at the next SIGTERM."""
    import signal
    import time

    first = []

    def on_term(signum, frame):
        if not first:
            first.append(time.monotonic())
        elif time.monotonic() - first[0] >= 1.0:  # idle: nothing to clean up
            with open(path, "w") as f:
                f.write("idle")
            os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    ready.set()
    while True:
        time.sleep(0.05)


def test_stop_signals_again_a_worker_left_idle_by_a_group_sigterm(tmp_path):
    """A SIGTERM to reproduce's whole process group and the parent's own SIGTERM reached a busy worker at once (the
    kernel delivers pending signals of one kind as one), so the worker ended its run KILLED and waited for work,
    alive, and the parent waited its full 10 s for it. Once every unit is back, _stop signals the live ones again."""
    import multiprocessing
    import threading
    import time
    from concurrent.futures import Future

    ctx = multiprocessing.get_context("spawn")
    ready, path = ctx.Event(), tmp_path / "exited"
    proc = ctx.Process(target=_ends_its_run_then_idles, args=(str(path), ready))
    proc.start()
    try:
        assert ready.wait(60)
        pool = _stopping_pool()
        back = Future()
        back.set_result(None)  # its unit came back
        threading.Thread(target=proc.join, daemon=True).start()  # reaps it at its exit, as a pool's own thread does
        os.kill(proc.pid, signal.SIGTERM)  # the group's, which ends its run
        t0 = time.monotonic()
        pool._stop([], {f"host:{proc.pid}"}, [back])  # the parent's comes while it still ends it
        took = time.monotonic() - t0
        proc.join(30)
        assert path.read_text() == "idle" and proc.exitcode == 143
        assert took < 5, f"_stop waited {took:.1f} s for a worker left idle"
    finally:
        if proc.is_alive():
            proc.kill()


def test_the_mlflow_writer_outlives_a_sigterm_and_its_parent_stops_it(tmp_path):
    """A SIGTERM to the whole process group reaches the writer too: it must go on answering the workers, which end
    their runs KILLED through it (one that died with the group left their calls unanswered, and the parent marked
    the runs after its 10 s wait); its parent stops it."""
    import time

    pool = executors.PoolExecutor(None, executors.Settings(f"sqlite:///{tmp_path}/m.db", "e", device="cpu"), 1)
    pool.start([])
    try:
        writer = pool._manager._process
        os.kill(writer.pid, signal.SIGTERM)
        time.sleep(0.5)
        queue = pool._manager.Queue()  # a round trip: the writer still serves
        queue.put(1)
        assert queue.get() == 1 and writer.is_alive()
    finally:
        pool.close()
    assert not writer.is_alive()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_group_sigterm_ends_the_runs_killed_and_leaves_no_process(project, sig):
    """`kill -- -PGID` (a CI runner's cancel): every process of reproduce --jobs 2 gets SIGTERM, the MLflow writer
    included. The runs end KILLED, the exit is SIGTERM's, and no process is left. A closed terminal's SIGHUP to the
    group is the same: it killed the writer and multiprocessing's resource tracker (whose relaunched self printed a
    KeyError traceback per semaphore), and left the runs RUNNING."""
    import subprocess
    import sys
    import time

    from helpers import descendants, live_processes, sqlite_rows, wait_for

    uri = f"sqlite:///{project}/mlflow.db"
    argv = ["reproduce", "--profile", "small", "--jobs", "2", "--tracking-uri", uri, "--set", "mlp_lr_sweep.epochs=400"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", *argv],
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a terminal's job: SIGHUP as the system's default, not as this test process has it (under `nohup pytest`
        # it is ignored, and mlhw keeps it so)
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),
    )
    try:
        q = "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid where r.status = 'RUNNING' "
        q += "and t.key = 'mlhw.kind' and t.value = 'mlp'"
        wait_for(lambda: len(sqlite_rows(project / "mlflow.db", q)) == 2, proc, timeout=180, every=0.05)
        time.sleep(0.5)  # a few epochs in
        children = descendants(proc.pid)
        os.killpg(proc.pid, getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + getattr(signal, sig), err[-3000:]
    assert "Traceback" not in err and "resource_tracker" not in err, err[-3000:]
    _, runs = runs_of(uri)
    mlp = [r for r in runs if r.data.tags.get("mlhw.kind") == "mlp"]
    assert len(mlp) == 2 and {r.info.status for r in mlp} == {"KILLED"}
    assert all(r.info.status != "RUNNING" for r in runs)
    # the writer's too. Zombies aside: /proc lists an exited child until whoever inherited it reaps it, which a
    # container's init may do seconds later (the resource tracker stayed there 1.5-2 s on this project's machine)
    deadline = time.time() + 60
    while children & set(live_processes()) and time.time() < deadline:
        time.sleep(0.1)
    assert children and not children & set(live_processes()), {p: live_processes().get(p) for p in children}


def test_the_parent_of_jobs_n_imports_no_torch_unless_its_device_needs_checking(project):
    """torch's import took 3.1 s of an H100 machine's start-up with --jobs 2 (resolving --device for a report line)
    and 2-3 s of a 2-core CPU's (counting GPUs where NVIDIA's library is absent), while the workers that train
    import it anyway. The report names the devices the runs recorded. (An explicit --device cuda is still checked
    with torch: NVML can see a GPU that this torch cannot use.)"""
    import subprocess
    import sys

    launcher = (
        "import sys\n"
        "from mlhw import executors\n"
        "executors.GPU_DRIVER_FILES, executors._nvml_count = (), lambda *a: None  # a CPU machine, wherever this runs\n"
        "from mlhw.cli import app\n"
        "sys.argv[0] = 'mlhw'\n"
        "try:\n"
        "    app()\n"
        "finally:\n"
        "    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    )
    argv = ["reproduce", "--profile", "small", "--jobs", "2", "--tracking-uri", f"sqlite:///{project}/mlflow.db"]
    proc = subprocess.run([sys.executable, "-c", launcher, *argv], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == "torch imported: False"
    assert "- device: cpu;" in (project / "results" / "small" / "REPORT.md").read_text()


def test_the_writers_proxies_are_not_let_go_of_in_the_main_thread_while_it_stops(project, monkeypatch):
    """After the runs the writer stops in a thread while the parent compiles the report. The parent's proxies of its
    objects (the event queue, the relay), dropped or garbage-collected in the main thread meanwhile, each connected to
    it to say so and waited for an answer that does not come while it shuts down: a SIGTERM to the group then landed
    in that finalizer, which printed "Exception ignored in: <Finalize object, dead>" with a traceback and lost it
    (reproduce wrote the whole report and exited 0). They go with the writer's shutdown now."""
    import gc
    import threading
    from multiprocessing import managers

    calls = []
    decref = managers.BaseProxy._decref

    def spy(token, authkey, state, *rest):
        main = threading.current_thread() is threading.main_thread()
        calls.append((main, state is not None and state.value == managers.State.STARTED))
        return decref(token, authkey, state, *rest)

    monkeypatch.setattr(managers.BaseProxy, "_decref", staticmethod(spy))
    run = executors.PoolExecutor.run

    def run_then_collect(self, units, on_event):
        results = run(self, units, on_event)
        gc.collect()  # what the report's first allocations do
        return results

    monkeypatch.setattr(executors.PoolExecutor, "run", run_then_collect)
    res = repro(project, "--jobs", "2")
    assert res.exit_code == 0, res.output
    gc.collect()
    assert calls and (True, True) not in calls, calls  # never from the main thread to a writer still serving


def test_a_sigterm_lost_during_the_report_still_ends_the_reproduction(project, monkeypatch):
    """A SIGTERM whose exception a finalizer swallowed while the report was compiled (lifecycle.terminate noted it)
    ends the reproduction 143, as one swallowed during the checks or the runs does, not with the verdict's 0."""
    from mlhw import lifecycle

    compile_report = reproduce_cli._compile

    def swallowed(*a, **kw):
        compiled = compile_report(*a, **kw)
        lifecycle._TERMINATED.set()  # what terminate() leaves where its exception was lost
        return compiled

    monkeypatch.setattr(reproduce_cli, "_compile", swallowed)
    try:
        res = repro(project)
    finally:
        lifecycle._TERMINATED.clear()
    assert res.exit_code == 143 and "terminated (SIGTERM)" in res.stderr, res.output
    _, runs = runs_of(f"sqlite:///{project}/mlflow.db")
    assert {r.info.status for r in runs if r.data.tags.get("mlhw.kind") == "suite"} == {"KILLED"}
    assert all(r.info.status != "RUNNING" for r in runs)


def _deaf_to_sigterm(ready) -> None:
    import time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    while True:
        time.sleep(0.05)


def test_stop_kills_a_worker_still_alive_at_its_deadline():
    """A worker that outlives _stop's wait (its KILLED writes stalled against a server, a SIGTERM swallowed) is
    killed: run()'s shutdown(wait=True) after _stop would otherwise wait for it without a limit."""
    import multiprocessing
    from types import SimpleNamespace

    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_deaf_to_sigterm, args=(ready,))
    proc.start()
    try:
        assert ready.wait(60)
        pool = _stopping_pool()
        pool.STOP_SECONDS = 1.0
        fake = SimpleNamespace(_processes={proc.pid: proc}, shutdown=lambda **kw: None)
        pool._stop([fake], {f"host:{proc.pid}"})
        proc.join(30)
        assert proc.exitcode == -signal.SIGKILL
    finally:
        if proc.is_alive():
            proc.kill()


def _exits_at_once() -> None:
    pass


def test_stop_does_not_wait_for_a_pool_process_that_exited_unreaped():
    """A pool's process that exited before its pool's thread joined it is a zombie: os.kill(pid, 0) still finds it,
    and _stop waited its whole deadline for it. It asks the pool's own Process objects, which reap it."""
    import multiprocessing
    import time
    from types import SimpleNamespace

    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_exits_at_once)
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while executors._alive(proc.pid) and _state(proc.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(proc.pid) == "Z" and executors._alive(proc.pid)  # exited, not reaped: "alive" to os.kill
        pool = _stopping_pool()
        pool.STOP_SECONDS = 5.0
        fake = SimpleNamespace(_processes={proc.pid: proc}, shutdown=lambda **kw: None)
        t0 = time.monotonic()
        pool._stop([fake], {f"host:{proc.pid}"})
        assert time.monotonic() - t0 < 2, "_stop waited for a process that had exited"
        assert proc.exitcode == 0
    finally:
        if proc.is_alive():
            proc.kill()


def _state(pid: int) -> str:
    """A process's state letter from /proc (Z: a zombie)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_the_lanes_workers_get_their_warm_up_config(monkeypatch):
    """start() hands each lane's initializer its warm-up config (warm_config): the GPU lane the first AlexNet
    config, the CPU lane beside it none."""
    import concurrent.futures

    from mlhw.config import CNNConfig, MLPConfig

    made = []

    class FakePool:
        def __init__(self, workers, mp_context=None, initializer=None, initargs=()):
            made.append((initializer, initargs))

        def submit(self, fn, *a):
            pass

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", FakePool)
    monkeypatch.setattr(executors.PoolExecutor, "close", lambda self: None)
    pool = executors.PoolExecutor(None, executors.Settings("sqlite:///x.db", "e"), 2, gpus=1)
    mlp, cnn = MLPConfig(), CNNConfig(optimizer="sgd")
    try:
        pool.start([mlp, cnn])
    finally:
        executors._shutdown(pool._manager)
    (gpu_init, gpu_args), (cpu_init, cpu_args) = made
    assert gpu_init is cpu_init is executors.prepare_worker
    assert gpu_args[1] == "cuda:0" and gpu_args[4] is cnn
    assert cpu_args[1] == "cpu" and cpu_args[4] is None
