"""The local executors' process pools under `reproduce --jobs N`: workers and their share of the cores, lanes (one
a GPU, AlexNet first), `--jobs auto`'s choice, a pool's queue order, dead and killed workers, Ctrl-C in a pool, and
the Ray task's SIGINT. Split from tests/test_scale.py (the tracking server's and Ray's), whose profile it shares
(tests/scale_common.py)."""

import math
import os
import re
import signal
import socket
import subprocess
import sys
import uuid

import pytest
from helpers import runs_of
from scale_common import args, finished_per_hash, mlhw_process, wait_for_running, write_project
from typer.testing import CliRunner

from mlhw.cli import app
from mlhw.store import sqlite_client

runner = CliRunner()


@pytest.fixture
def project(workdir):
    return write_project(workdir)


def test_sigkilled_pool_worker_is_marked_and_rerun(project):
    """On the default SQLite store (the workers write through the parent's relay; the other --jobs tests here
    use the server): the parent marks the dead worker's runs KILLED, and the next reproduce reruns them."""
    server = f"sqlite:///{project}/mlflow.db"
    exp = f"poolkill-{uuid.uuid4().hex[:6]}"
    # the database exists before the test polls it (MLflow races when two processes create one): as mlhw makes a
    # store, a copy of its empty template (an MlflowClient ran MLflow's migrations, 1.5-3 s)
    sqlite_client(server)
    proc = mlhw_process(project, *args(server, exp, "--jobs", 2, "--only", "cnn_optimizers", "--set", "epochs=4"))
    victim_id, worker = wait_for_running(project / "mlflow.db", exp, proc)
    pid = int(worker.rsplit(":", 1)[1])
    assert pid != proc.pid  # a worker process, not the parent
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "worker process died" in err, err[-2000:]
    client, _ = runs_of(server, exp)
    killed = client.get_run(victim_id)
    assert killed.info.status == "KILLED" and killed.data.tags["mlhw.dead"] == "worker process died"
    # in this process (the plan and the rerun are the parent's; a second pool's start-up, ~4 s, checks nothing more)
    res = runner.invoke(app, args(server, exp, "--jobs", 1, "--only", "cnn_optimizers", "--set", "epochs=4"))
    assert res.exit_code == 0, res.output
    assert re.search(r"[12] killed", res.stderr)  # the pool ends its other worker too when one dies
    _, runs = runs_of(server, exp)
    assert finished_per_hash(runs)[killed.data.tags["mlhw.config_hash"]] == 1


def test_pool_workers_split_the_cores(monkeypatch):
    """--jobs N: each worker gets cores // N threads (torch's default, every core, oversubscribed them: the
    digits profile ran 2.3x slower with --jobs 2 than with --jobs 1 on 2 cores); an explicit count stays."""
    from mlhw import executors

    monkeypatch.setattr(executors.os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    made = [executors.PoolExecutor(None, executors.Settings("sqlite:///x.db", "e"), jobs) for jobs in (1, 2, 3, 16)]
    assert [p.settings.threads for p in made] == [8, 4, 2, 1]
    kept = executors.PoolExecutor(None, executors.Settings("sqlite:///x.db", "e", threads=3), 2)
    assert kept.settings.threads == 3


def test_lanes_one_worker_per_gpu_and_the_rest_on_the_cpu():
    from mlhw.executors import Lane, PoolExecutor, Settings, plan_lanes

    gpu = [Lane(f"cuda:{i}", 1, cnn_first=True) for i in range(4)]
    assert plan_lanes(2, "auto", 0) == [Lane("auto", 2)]  # no GPU: as many CPU workers, any unit
    assert plan_lanes(3, "cpu", 2) == [Lane("cpu", 3)]  # an explicit device is obeyed
    assert plan_lanes(2, "cuda", 1) == [Lane("cuda", 2)]  # ... even two workers on one GPU
    assert plan_lanes(2, "auto", 1) == [gpu[0], Lane("cpu", 1, cnn=False)]
    assert plan_lanes(2, "auto", 4) == gpu[:2]
    assert plan_lanes(7, "auto", 4) == [*gpu, Lane("cpu", 3, cnn=False)]
    assert PoolExecutor(None, Settings("sqlite:///x.db", "e"), 3, gpus=1).lanes == [gpu[0], Lane("cpu", 2, cnn=False)]


def test_a_gpu_lane_takes_alexnet_first_and_a_cpu_lane_beside_it_never_does():
    from types import SimpleNamespace

    from mlhw.executors import Lane, next_unit, plan_lanes

    kinds = ["mlp", "mlp", "cnn", "cnn", "svm_soft", "theory"]
    units = [[SimpleNamespace(config=SimpleNamespace(kind=k))] for k in kinds]
    gpu, cpu = plan_lanes(2, "auto", 1)
    queue = list(range(len(units)))
    assert next_unit(gpu, queue, units) == 2 and next_unit(cpu, queue, units) == 0
    assert next_unit(cpu, [2, 3], units) is None  # only AlexNet left: the CPU lane waits
    assert next_unit(gpu, [1, 4, 5], units) == 1  # no AlexNet left: the GPU lane takes the rest too
    assert next_unit(Lane("cpu", 2), queue, units) == 0  # one lane: plan order


def test_a_pool_takes_the_longest_first_where_it_is_known():
    """Theory's checks take the same seconds whatever the profile (4.7 s on the 2-core CPU): last in the plan, they
    ran alone after every other unit of a --jobs reproduce (ci profile: 4.7 s of the runs' 8.2 s). Part 1's units
    by SGD steps: the paper's mlp_full (5 runs of 150,000 steps) took 34 s, its sweep (30 runs of 30,000) 16 s."""
    from types import SimpleNamespace

    from mlhw.config import MLPConfig
    from mlhw.executors import Lane, mlp_steps, next_unit, queue_order

    sweep = MLPConfig(dataset="mnist", train_size=10_000, test_size=5_000)
    full, subset = MLPConfig(dataset="mnist"), MLPConfig(dataset="mnist", train_size=20_000, epochs=10)
    assert (mlp_steps(sweep), mlp_steps(subset), mlp_steps(full)) == (30_000, 20_000, math.inf)
    configs = [sweep, subset, full] + [SimpleNamespace(kind=k) for k in ("cnn", "cnn", "svm_soft", "theory")]
    units = [[SimpleNamespace(config=c)] for c in configs]
    assert queue_order(units) == [6, 2, 0, 1, 3, 4, 5]
    assert queue_order(units[3:6]) == [0, 1, 2]  # nothing known: plan order
    assert next_unit(Lane("cpu", 2), queue_order(units), units) == 6
    assert next_unit(Lane("cuda:0", 1, cnn_first=True), queue_order(units), units) == 3  # a GPU lane: AlexNet's


def _plan_configs(alexnets: int, mlp_seeds: int = 3, svms: int = 3):
    """Configs of a plan: `alexnets` AlexNet runs, one MLP unit of `mlp_seeds` seeds, `svms` soft SVMs, theory."""
    from mlhw.config import CNNConfig, MLPConfig, SoftSVMConfig, TheoryConfig

    return (
        [CNNConfig(seed=i) for i in range(alexnets)]
        + [MLPConfig(seed=i) for i in range(mlp_seeds)]
        + [SoftSVMConfig(C=10.0**i) for i in range(svms)]
        + [TheoryConfig()]
    )


@pytest.mark.parametrize(
    "alexnets, device, gpus, cores, expected",
    [
        (16, "auto", 0, 2, (2, "two on the CPU")),  # digits here: 104-111 s in two against 127 s in one
        (16, "auto", 0, 16, (2, "two on the CPU")),  # more than two never measured against two
        (12, "auto", 1, 16, (2, "one per GPU and one on the CPU")),  # no long Part 1 unit (digits)
        (12, "auto", 2, 16, (3, "one per GPU and one on the CPU")),
        (12, "auto", 4, 2, (5, "one per GPU and one on the CPU")),  # GPU workers are not held to the cores
        (12, "auto", 1, 1, (1, "one per GPU and one on the CPU, but 1 CPU core")),  # no core for a CPU worker
        (12, "cuda", 1, 16, (3, "three sharing cuda")),  # H200 paper: 78.6 s, two 87.6 s, one 92.2 s
        (12, "cpu", 1, 16, (2, "two on the CPU")),  # --device cpu on a GPU machine: the CPU's rule
        (16, "auto", 0, 1, (1, "two on the CPU, but 1 CPU core")),
        # digits' SVMs alone: 16.7-17.3 s in one process, 23.4-24.0 s in two; with Part 1 (c) and theory 25.4 / 30.6 s
        (0, "auto", 0, 2, (1, "fewer than two long runs (AlexNet, or Part 1 of 20,000 SGD steps or more)")),
        (1, "auto", 1, 16, (1, "fewer than two long runs (AlexNet, or Part 1 of 20,000 SGD steps or more)")),
    ],
)
def test_jobs_auto_picks_the_workers_by_the_machine_and_the_plan(alexnets, device, gpus, cores, expected):
    from mlhw.executors import auto_jobs

    assert auto_jobs(_plan_configs(alexnets), device, gpus, cores) == expected


def test_jobs_auto_gives_part_1_on_mnist_two_workers_without_a_gpu():
    """The paper profile's suites but CIFAR-10's (its sweep, 30,000 SGD steps, and mlp_full, 150,000): 104.0 s in one
    process, 58.6 s in two on the 2-core CPU. Digits' Part 1 (3,900 steps) earns no worker's start-up, and with a GPU
    Part 1 trains there in one process."""
    from mlhw.config import MLPConfig, SoftSVMConfig, TheoryConfig
    from mlhw.executors import auto_jobs, long_mlp_unit

    sweep = [MLPConfig(dataset="mnist", train_size=10_000, seed=s, lr=lr) for s in range(5) for lr in (0.01, 0.1)]
    full = [MLPConfig(dataset="mnist", seed=s) for s in range(5)]
    rest = [SoftSVMConfig(C=1.0), TheoryConfig()]
    assert long_mlp_unit(sweep[0]) and long_mlp_unit(full[0]) and not long_mlp_unit(MLPConfig(dataset="digits"))
    assert not long_mlp_unit(MLPConfig(dataset="mnist", train_size=10_000, epochs=19))  # 19,000 steps
    assert auto_jobs(sweep + full + rest, "auto", 0, 2) == (2, "two on the CPU")
    assert auto_jobs(sweep + full + rest, "cpu", 1, 16) == (2, "two on the CPU")
    assert auto_jobs(sweep + full + rest, "auto", 1, 16) == (
        1,
        "fewer than two AlexNet runs, and Part 1 trains fastest on the GPU",
    )
    assert auto_jobs(full + rest, "auto", 0, 2)[0] == 1  # one long unit
    digits = [MLPConfig(seed=s, lr=lr) for s in range(5) for lr in (0.01, 0.1)] + [MLPConfig(seed=s) for s in range(5)]
    assert auto_jobs(digits + rest, "auto", 0, 2)[0] == 1


def test_the_jobs_help_names_every_kind_of_plan_auto_gives_workers():
    """`reproduce --help` said "auto: workers only for a plan of two AlexNet runs or more", while auto_jobs gives
    Part 1 on MNIST (no AlexNet) two workers on a CPU: the help names each kind of long run auto counts."""
    from mlhw.config import MLPConfig
    from mlhw.executors import auto_jobs

    sweep = [MLPConfig(dataset="mnist", train_size=10_000, seed=s, lr=lr) for s in range(5) for lr in (0.01, 0.1)]
    full = [MLPConfig(dataset="mnist", seed=s) for s in range(5)]
    assert auto_jobs(sweep + full, "auto", 0, 2)[0] == 2  # no AlexNet, two workers
    res = runner.invoke(app, ["reproduce", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
    assert "two AlexNet runs or more (" not in text
    assert "AlexNet's or, without a GPU, Part 1's of 20,000 SGD steps or more" in text
    assert "Part 1's on MNIST (" not in text  # false of two 2-epoch MNIST units: auto counts steps


@pytest.mark.parametrize(
    "gpus, cores, parts, expected",
    [
        # one H200, the paper profile, one call (2026-11-29): 60.2 s with one CPU worker, 58.5 s two, 55.7 s three
        (
            1,
            16,
            "sweep full",
            (4, "one per GPU and three on the CPU (the SVMs and theory, and Part 1's two long units)"),
        ),
        (
            2,
            16,
            "sweep full",
            (5, "one per GPU and three on the CPU (the SVMs and theory, and Part 1's two long units)"),
        ),
        (1, 16, "full", (3, "one per GPU and two on the CPU (the SVMs and theory, and Part 1's long unit)")),
        (1, 16, "digits", (2, "one per GPU and one on the CPU")),  # Part 1 on digits: seconds, not a long unit
        (1, 16, "", (1, "one per GPU (nothing but AlexNet to train)")),  # no CPU worker to start and wait
        (
            1,
            3,
            "sweep full",
            (3, "one per GPU and three on the CPU (the SVMs and theory, and Part 1's two long units), but 3 CPU cores"),
        ),  # a core for the GPU worker
    ],
)
def test_jobs_auto_beside_a_gpu_gives_each_long_part_1_unit_its_own_cpu_worker(gpus, cores, parts, expected):
    """Beside the GPUs, one CPU worker for the SVMs and theory and one per long Part 1 unit: the paper profile's sweep
    and part (c) start at once beside AlexNet, not one after the other (part (c)'s 5 seeds took 41 s on the H200
    machine's CPU, the GPU worker's 12 AlexNet runs 36 s)."""
    from mlhw.config import CNNConfig, MLPConfig, SoftSVMConfig, TheoryConfig
    from mlhw.executors import auto_jobs

    mlp = {
        "sweep": [MLPConfig(dataset="mnist", train_size=10_000, seed=s, lr=lr) for s in range(5) for lr in (0.01, 1)],
        "full": [MLPConfig(dataset="mnist", seed=s) for s in range(5)],
        "digits": [MLPConfig(seed=s) for s in range(5)] + [SoftSVMConfig(C=1.0), TheoryConfig()],
    }
    configs = [CNNConfig(dataset="cifar10", seed=s, optimizer=o) for s in range(3) for o in ("sgd", "adam")]
    configs += [c for part in parts.split() for c in mlp[part]]
    if parts and parts != "digits":
        configs += [SoftSVMConfig(C=10.0**i) for i in range(3)] + [TheoryConfig()]
    assert auto_jobs(configs, "auto", gpus, cores) == expected


def test_jobs_auto_beside_a_gpu_names_the_first_cpu_workers_share_as_the_plan_has_it():
    """The first CPU worker beside the GPUs is for what is neither AlexNet nor a long Part 1 unit: said "the SVMs and
    theory" only where the plan has them (`--only mlp_full --only mlp_lr_sweep --only cnn_optimizers` has neither)."""
    from mlhw.config import CNNConfig, MLPConfig, SoftSVMConfig, TheoryConfig
    from mlhw.executors import auto_jobs

    cnn = [CNNConfig(dataset="cifar10", seed=s) for s in range(3)]
    sweep = [MLPConfig(dataset="mnist", train_size=10_000, seed=s, lr=lr) for s in range(5) for lr in (0.01, 1)]
    full = [MLPConfig(dataset="mnist", seed=s) for s in range(5)]
    digits = [MLPConfig(seed=s) for s in range(5)]
    said = {
        "": (3, "one per GPU and two on the CPU (Part 1's two long units)"),
        "svm": (4, "one per GPU and three on the CPU (the SVMs, and Part 1's two long units)"),
        "theory": (4, "one per GPU and three on the CPU (theory, and Part 1's two long units)"),
        "digits": (4, "one per GPU and three on the CPU (the other units, and Part 1's two long units)"),
    }
    rest = {"": [], "svm": [SoftSVMConfig(C=1.0)], "theory": [TheoryConfig()], "digits": digits}
    for name, expected in said.items():
        assert auto_jobs(cnn + sweep + full + rest[name], "auto", 1, 16) == expected, name


def test_jobs_auto_never_starts_more_workers_than_units():
    from mlhw.config import CNNConfig
    from mlhw.executors import auto_jobs

    two = [CNNConfig(seed=0), CNNConfig(seed=1), CNNConfig(seed=1)]  # a run shared by two suites is one unit
    assert auto_jobs(two, "cuda:1", 1, 16) == (2, "three sharing cuda:1, but 2 units of work")
    assert auto_jobs(two, "auto", 3, 16) == (2, "one per GPU (nothing but AlexNet to train), but 2 units of work")


def test_jobs_auto_counts_the_gpus_only_where_the_device_may_use_them(monkeypatch):
    from mlhw import executors

    monkeypatch.setattr(executors, "gpu_count", lambda: 1)
    assert executors.auto_jobs(_plan_configs(12), "auto", cores=8) == (2, "one per GPU and one on the CPU")
    monkeypatch.setattr(executors, "gpu_count", lambda: pytest.fail("--device cpu asked for the GPUs"))
    assert executors.auto_jobs(_plan_configs(12), "cpu", cores=8) == (2, "two on the CPU")


@pytest.mark.parametrize(
    "requested, profile, expected, said",
    [
        (None, "auto", 2, "2 worker processes (--jobs auto: two on the CPU, 4 configs)"),
        (None, 1, 1, "one process (the profile's jobs: 1)"),
        ("auto", 1, 2, "2 worker processes (--jobs auto: two on the CPU, 4 configs)"),
        (3, 1, 3, "3 worker processes"),
        (1, "auto", 1, None),  # asked for: nothing to say
        (None, 2, 2, "2 worker processes (the profile's jobs: 2)"),
        # never more workers than units (3 here: C=1 twice is one run); each pays its start-up
        (None, 4, 3, "3 worker processes (the profile's jobs: 4, but 3 units of work)"),
        (5, 1, 3, "3 worker processes (--jobs 5, but 3 units of work)"),
    ],
)
def test_jobs_comes_from_the_option_then_the_profile_then_auto(monkeypatch, requested, profile, expected, said):
    """--jobs (or MLHW_JOBS) first, then the profile's `jobs` (ci says 1), then auto; a pool only for 2 or more,
    started once (a new store's workers start before the plan is made, and the plan's call does nothing). The line
    under the plan says where the number came from, unless --jobs gave it."""
    from mlhw import executors
    from mlhw.cli.reproduce import _Workers
    from mlhw.config import SoftSVMConfig

    started = []
    monkeypatch.setattr(executors, "auto_jobs", lambda configs, device: (2, f"two on the CPU, {len(configs)} configs"))
    monkeypatch.setattr(executors.PoolExecutor, "start", lambda self, configs: started.append(self.jobs))
    monkeypatch.setattr(executors.PoolExecutor, "close", lambda self: None)
    configs = [SoftSVMConfig(C=c) for c in (0.1, 1, 10, 1)]
    with _Workers(executors.Settings("sqlite:///x.db", "e", device="cpu"), requested) as workers:
        workers.start(configs, profile)
        workers.start(configs[:1], 1)  # the plan's call, after a new store's: nothing more
        assert workers.jobs == expected and started == ([expected] if expected > 1 else [])
        assert workers.said() == said
    with _Workers(executors.Settings("sqlite:///x.db", "e", device="cpu"), 2) as workers:
        workers.start(configs[:1], 1)  # one run left (after a Ctrl-C): no pool of two for it
        assert (workers.jobs, workers.said(), workers.pool) == (1, "one process (--jobs 2, but 1 unit of work)", None)
    with _Workers(executors.Settings("sqlite:///x.db", "e", device="cpu"), 2, option="MLHW_JOBS") as workers:
        workers.start(configs[:1], 1)
        assert workers.said() == "one process (MLHW_JOBS=2, but 1 unit of work)"


def test_jobs_auto_trains_a_plan_without_alexnet_in_one_process_and_says_why(project, monkeypatch):
    """Worker start-up costs seconds that runs of seconds never earn back: digits' SVMs alone took 23.4-24.0 s in
    two workers against 16.7-17.3 s in one process."""
    monkeypatch.delenv("MLHW_JOBS")
    uri = f"sqlite:///{project}/mlflow.db"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--only", "svm_soft"])
    assert res.exit_code == 0, res.stderr[-2000:]
    assert (
        "one process (--jobs auto: fewer than two long runs (AlexNet, or Part 1 of 20,000 SGD steps or more))"
        in res.stderr.splitlines()
    )
    _, runs = runs_of(uri, "mlhw")
    assert {r.data.tags.get("mlhw.worker") for r in runs} == {f"{socket.gethostname()}:{os.getpid()}"}  # this process


def test_the_default_jobs_auto_runs_a_plan_in_two_workers_and_says_so(project, monkeypatch):
    """No --jobs and no profile `jobs`: auto, here two workers on the CPU (two cores), named under the plan."""
    monkeypatch.delenv("MLHW_JOBS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    uri = f"sqlite:///{project}/mlflow.db"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri])
    assert res.exit_code == 0, res.stderr[-2000:]
    assert "2 worker processes (--jobs auto: two on the CPU)" in res.stderr.splitlines()
    _, runs = runs_of(uri, "mlhw")
    workers = {r.data.tags.get("mlhw.worker") for r in runs if r.data.tags.get("mlhw.kind") not in ("suite", None)}
    assert len(workers) == 2 and all(r.info.status == "FINISHED" for r in runs)


def test_a_dry_run_says_how_many_workers_would_train(project, monkeypatch):
    monkeypatch.delenv("MLHW_JOBS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    uri = f"sqlite:///{project}/mlflow.db"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--dry-run"])
    assert (
        res.exit_code == 0
        and res.stdout.splitlines()[-1] == "to train in 2 worker processes (--jobs auto: two on the CPU)"
    )
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--dry-run", "--jobs", "1"])
    assert res.exit_code == 0 and "worker processes" not in res.stdout and not (project / "mlflow.db").exists()
    # MLHW_JOBS, not --jobs, is named where the variable gave the number (it read "--jobs 99" with no --jobs given)
    monkeypatch.setenv("MLHW_JOBS", "99")
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--dry-run"])
    assert res.exit_code == 0 and re.fullmatch(
        r"to train in \d+ worker processes \(MLHW_JOBS=99, but \d+ units of work\)", res.stdout.splitlines()[-1]
    )
    monkeypatch.setenv("MLHW_JOBS", "auto")
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--dry-run"])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[-1] == "to train in 2 worker processes (MLHW_JOBS=auto: two on the CPU)"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--tracking-uri", uri, "--dry-run", "--jobs", "99"])
    assert res.exit_code == 0 and "(--jobs 99, but" in res.stdout.splitlines()[-1]  # the option wins, and is named


def test_a_pools_run_hands_out_its_units_in_queue_order(monkeypatch):
    """PoolExecutor.run itself takes the units in queue_order (not the plan's): one worker, so every submission waits
    for the previous unit to come back, and the order submitted is the order run. A stand-in pool runs nothing."""
    import concurrent.futures
    from types import SimpleNamespace

    from mlhw import executors
    from mlhw.config import MLPConfig

    submitted = []

    class InstantPool:
        _processes: dict = {}

        def __init__(self, workers, mp_context=None, initializer=None, initargs=()):
            pass

        def submit(self, fn, *args):
            future = concurrent.futures.Future()
            if fn is executors.work:
                submitted.append(args[1])  # the unit's index in the plan
            future.set_result(executors.UnitResult())
            return future

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", InstantPool)
    sweep = MLPConfig(dataset="mnist", train_size=10_000, test_size=5_000)
    kinds = [SimpleNamespace(kind=k) for k in ("cnn", "svm_soft", "theory")]
    configs = [kinds[0], sweep, kinds[1], MLPConfig(dataset="mnist"), kinds[2]]
    units = [[SimpleNamespace(config=c, to_dict=lambda: {}, name=f"u{i}", tags={})] for i, c in enumerate(configs)]
    monkeypatch.setattr(executors, "label_of", lambda unit: unit[0].name)
    pool = executors.PoolExecutor(None, executors.Settings("sqlite:///x.db", "e", device="cpu"), 1)
    ended = []
    try:
        results = pool.run(units, lambda ev: ended.append(ev.unit) if ev.kind == "end" else None)
    finally:
        pool.close()
    assert submitted == ended == [4, 3, 1, 0, 2] == executors.queue_order(units)
    assert len(results) == 5 and not any(r.error for r in results)


def two_lanes(jobs, device, gpus):
    """A GPU lane and a CPU lane beside it, both on this machine's CPU (no GPU here)."""
    from mlhw.executors import Lane

    return [Lane("cpu", 1, cnn_first=True), Lane("cpu", 1, cnn=False)]


def test_jobs_2_in_lanes_alexnet_on_its_lane_the_rest_beside_it(project, monkeypatch):
    from mlhw import executors

    monkeypatch.setattr(executors, "plan_lanes", two_lanes)
    uri = f"sqlite:///{project}/mlflow.db"
    res = runner.invoke(app, ["reproduce", "--profile", "small", "--jobs", "2", "--tracking-uri", uri])
    assert res.exit_code == 0, res.stderr[-2000:]
    _, runs = runs_of(uri)
    assert len(finished_per_hash(runs)) == 5 and all(r.info.status == "FINISHED" for r in runs)
    workers: dict[str, set[str]] = {}
    for r in runs:
        workers.setdefault(r.data.tags["mlhw.kind"], set()).add(r.data.tags.get("mlhw.worker"))
    assert len(workers["cnn"]) == 1 and workers["cnn"].isdisjoint(workers["mlp"]), workers


def test_a_dead_lane_fails_only_what_no_other_lane_can_run(project):
    """The AlexNet lane's worker is SIGKILLed during its first run: that run ends KILLED, the other AlexNet
    unit (which the CPU lane never takes) is not started (said so, not "failed: a worker process died" of a unit
    that never began), Part 1 and the SVM finish on the CPU lane, exit 1; the next reproduce runs the two AlexNet
    configs."""
    uri = f"sqlite:///{project}/mlflow.db"
    exp = f"lanekill-{uuid.uuid4().hex[:6]}"
    sqlite_client(uri)  # the database exists before the test polls it (a copy of mlhw's template, no migrations)
    launcher = (
        "import sys, test_pool; from mlhw import executors; executors.plan_lanes = test_pool.two_lanes; "
        "from mlhw.cli import app; sys.argv[0] = 'mlhw'; app()"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-c", launcher, *args(uri, exp, "--jobs", 2, "--set", "cnn_optimizers.epochs=4")]
    proc = subprocess.Popen(argv, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    victim_id, worker = wait_for_running(project / "mlflow.db", exp, proc)
    os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "worker process died" in err, err[-2000:]
    assert re.search(r"ran \d+ of \d+ runs in [\d.]+ s, 1 failed, 1 not started once a worker of its lane died", err)
    assert "not started: 1 run once a worker of its lane died (killed or out of memory); the next" in err, err[-2000:]
    client, runs = runs_of(uri, exp)
    assert client.get_run(victim_id).info.status == "KILLED"
    finished = {r.data.tags["mlhw.kind"] for r in runs if r.info.status == "FINISHED"} - {"suite", "mlp-sweep"}
    assert finished == {"mlp", "svm_soft"} and len(finished_per_hash(runs)) == 3, [
        (r.info.run_name, r.info.status) for r in runs
    ]
    res = runner.invoke(app, args(uri, exp, "--set", "cnn_optimizers.epochs=4"))
    assert res.exit_code == 0 and "ran 2 of 2 runs" in res.stderr, res.stderr[-2000:]


def test_a_ray_task_keeps_sigint_for_ray_cancel(project, monkeypatch, sigint_live):
    """`ray.cancel` interrupts a task through SIGINT: a worker that ignored it could not be cancelled on Ctrl-C."""
    import signal

    from mlhw import executors

    settings = executors.Settings(uri=f"sqlite:///{project}/mlflow.db", experiment="mlhw", device="cpu")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(executors, "_WORKER", {})
    seen = []
    monkeypatch.setattr(executors, "execute_unit", lambda *a, **k: seen.append(signal.getsignal(signal.SIGINT)))
    try:
        executors.work([], 0, settings)  # a Ray task: the first unit of its process sets the worker up
        assert seen and seen[0] is not signal.SIG_IGN
        executors.prepare_worker(settings)  # a local worker (the pool's initializer): Ctrl-C is the parent's
        executors.attach_worker(settings)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_a_worker_keeps_numpys_blas_to_its_share_of_the_cores(project, monkeypatch):
    """--jobs N split torch's threads only: each worker's SVMs ran numpy's BLAS on every core, and OpenBLAS
    threads that wait for descheduled siblings made a small SVM 15-50x slower (benchmarks/svm.py --blas)."""
    import signal

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from mlhw import executors

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    settings = executors.Settings(uri=f"sqlite:///{project}/mlflow.db", experiment="mlhw", device="cpu", threads=1)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(executors, "_WORKER", {})
    torch_before = torch.get_num_threads()
    with threadpool_limits(limits=2, user_api="blas"):  # restores the limits on the way out
        try:
            assert blas_threads() == {2}
            executors.prepare_worker(settings)
            executors.attach_worker(settings)
            assert blas_threads() == {1} and torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(torch_before)
            for s, handler in before.items():
                signal.signal(s, handler)


def test_a_worker_keeps_the_blas_that_loads_later_to_its_share_too(tmp_path):
    """scipy carries its own OpenBLAS, loaded when a solver first imports scipy.optimize, after the worker set
    its limits: it ran on every core. A fresh interpreter, as a spawned worker is."""
    import os
    import subprocess
    import sys

    code = (
        "from mlhw import executors; "
        "executors.Store = lambda *a, **k: None; "  # no tracking store: this is about threads (MLflow's start-up)
        f"s = executors.Settings(uri='sqlite:///{tmp_path}/m.db', experiment='mlhw', device='cpu', threads=1); "
        "executors.prepare_worker(s); executors.attach_worker(s); "
        "import scipy.optimize; from threadpoolctl import threadpool_info; "
        "print(sorted({(i['internal_api'], i['num_threads']) for i in threadpool_info() if i['user_api'] == 'blas'}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    libs = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 (our own print of a list of tuples)
    assert libs and {n for _, n in libs} == {1}, out.stdout


def test_ctrl_c_stops_every_pool_process_even_before_its_start_event():
    """Ctrl-C with --jobs N signalled only the workers whose start event the parent had read: one that took a unit
    within the last 0.25 s kept training, and shutdown(wait=True) waited for its whole unit. The stop now takes
    every live process of the pools, named as their runs are tagged (host:pid)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from mlhw.executors import pool_workers
    from mlhw.lifecycle import worker_id

    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pids = set(pool.map(_pid, range(4)))  # the processes that ran something, as a worker reports itself
        assert {worker_id(p) for p in pids} <= pool_workers([pool])
        assert 1 <= len(pool_workers([pool])) <= 2  # (a spawn pool starts its processes as work comes)
    assert pool_workers([pool]) == set()  # shut down: none left


def _pid(_):
    import os

    return os.getpid()


def test_one_default_for_a_dead_run():
    """The seconds without a heartbeat after which a run is dead: claims.STALE_SECONDS, which the report's reader and
    the executors take; reproduce's --stale-after writes it as a literal (importing claims loads MLflow)."""
    import inspect

    from mlhw.claims import STALE_SECONDS
    from mlhw.cli.reproduce import reproduce
    from mlhw.report import collect

    cli_default = inspect.signature(reproduce).parameters["stale_after"].default
    assert cli_default == inspect.signature(collect).parameters["stale_after"].default == STALE_SECONDS


SECOND_CTRL_C = """
import os, signal, sys
from mlhw import executors

stop, run = executors.PoolExecutor._stop, executors.PoolExecutor.run


def stop_pressed_again(self, *a, **k):
    signal.raise_signal(signal.SIGINT)  # the second Ctrl-C, as the stop of the first begins
    return stop(self, *a, **k)


def run_pressed_while_training(self, units, on_event):
    training = set()

    def hook(ev):
        on_event(ev)
        with open("events.log", "a") as seen:  # what the test says if the first Ctrl-C never came
            mask = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))
            print(ev.kind, ev.unit, signal.getsignal(signal.SIGINT), mask, file=seen)
        if ev.kind == "epoch":
            training.add(ev.unit)
            if len(training) == 2:  # both workers' runs exist and train: the first Ctrl-C
                os.kill(os.getpid(), signal.SIGINT)

    return run(self, units, hook)


if __name__ == "__main__":  # (the spawned workers import this file too)
    executors.PoolExecutor._stop, executors.PoolExecutor.run = stop_pressed_again, run_pressed_while_training
    from mlhw.cli import main

    sys.argv = ["mlhw", *sys.argv[1:]]
    main()
"""


def test_a_second_ctrl_c_during_the_stop_still_ends_every_run_killed(tmp_path):
    """An impatient user's second Ctrl-C landed inside the stop of the first: the workers were never signalled and
    the shutdown waited for them, so the runs trained to the end and were FINISHED (46.7 s); in a walk-through with
    three Ctrl-Cs, `reproduce --jobs 2` hung for good with its runs RUNNING. The stop is now held whole."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).resolve().parents[1] / "experiments.yaml", tmp_path / "experiments.yaml")
    (tmp_path / "second_ctrl_c.py").write_text(SECOND_CTRL_C)
    args = ["reproduce", "--profile", "digits", "--only", "cnn_optimizers", "--set", "cnn_optimizers.seeds=[0]"]
    env = {k: v for k, v in os.environ.items() if k != "MLHW_JOBS"}
    res = subprocess.run(
        [sys.executable, "second_ctrl_c.py", *args, "--jobs", "2"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=240,
    )  # fmt: skip
    # (it failed twice in full runs, the runs trained to the end, and not on demand: the events the child's hook saw)
    events = (tmp_path / "events.log").read_text() if (tmp_path / "events.log").exists() else "no events"
    assert res.returncode == 130, (events[-1500:], res.stderr[-1500:])
    client, runs = runs_of(f"sqlite:///{tmp_path}/mlflow.db")
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 3, [(r.info.run_name, r.info.status) for r in runs]


def test_a_worker_whose_data_differs_from_the_planners_runs_nothing(monkeypatch):
    """execute_unit compares each job's identity (its config and the planner's data and code) with the one its own
    data source computes: a unit whose second job differs comes back as an error naming it, and no run starts."""
    from types import SimpleNamespace

    from mlhw import executors

    started = []
    monkeypatch.setattr(executors, "run_unit", lambda unit, *a, **k: started.append(unit) or [])
    jobs = [
        SimpleNamespace(config=SimpleNamespace(kind="svm_soft", name=n), identity=f"{n}@planned", name=n)
        for n in ("svm-a", "svm-b")
    ]
    # this worker sees the planner's data for svm-a and other data for svm-b
    source = SimpleNamespace(identity=lambda cfg: f"{cfg.name}@planned" if cfg.name == "svm-a" else "svm-b@here")
    settings, cpu = executors.Settings("u", "e", device="cpu"), SimpleNamespace(type="cpu")
    result = executors.execute_unit(jobs, None, source, cpu, settings)
    assert result.error == "svm-b: the data or mlhw's code on this worker differs from the planner's"
    assert result.done == {} and not result.claimed and started == []
    # the same unit where the identities agree runs
    agree = SimpleNamespace(identity=lambda cfg: f"{cfg.name}@planned")
    assert executors.execute_unit(jobs, None, agree, cpu, settings).error is None
    assert started == [jobs]


def test_an_mlp_runs_steps_count_its_last_partial_batch():
    """25 rows in batches of 10 are 3 SGD steps an epoch (10, 10, 5), not 2."""
    from mlhw.config import MLPConfig
    from mlhw.executors import mlp_steps

    assert mlp_steps(MLPConfig(train_size=25, batch_size=10, epochs=1)) == 3
    assert mlp_steps(MLPConfig(train_size=25, batch_size=10, epochs=4)) == 12
    assert mlp_steps(MLPConfig(train_size=30, batch_size=10, epochs=1)) == 3  # no partial batch
    assert mlp_steps(MLPConfig(batch_size=10, epochs=1), whole=25) == 3  # the whole split, its size given
