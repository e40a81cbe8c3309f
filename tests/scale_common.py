"""What tests/test_scale.py and tests/test_pool.py share: a small profile of every kind of unit (the MLP sweep,
two AlexNets, the soft SVM on digits), the reproduce command line of it, and the polls of its runs. Split from one
file so that pytest-xdist (--dist loadfile) runs the two halves on two workers: the one file took ~5 minutes of the
suite's ~9 on one of CI's two cores."""

import subprocess
import sys
from collections import Counter

import yaml
from helpers import sqlite_rows, sweep_suite, tiny_cnn_suite, wait_for

PROFILE = {
    "version": 1,
    "suites": {
        "mlp_lr_sweep": sweep_suite(),
        "cnn_optimizers": tiny_cnn_suite("cnn.a", "sgd-0.005", "adam-5e-05"),
        "svm_soft": {"kind": "svm_soft", "part": "svm.q3"},
    },
    "profiles": {"small": {"defaults": {"dataset": "digits"}}},
}


def args(uri, experiment, *extra):
    return ["reproduce", "--profile", "small", "--tracking-uri", uri, "--experiment", experiment, *map(str, extra)]


def finished_per_hash(runs):
    return Counter(
        r.data.tags["mlhw.config_hash"]
        for r in runs
        if r.info.status == "FINISHED" and r.data.tags.get("mlhw.kind") not in ("mlp-sweep", "suite")
    )


def mlhw_process(project, *argv):
    return subprocess.Popen(
        [sys.executable, "-m", "mlhw", *map(str, argv)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_running(db, experiment, proc, kind="cnn"):
    """(run id, mlhw.worker) of a RUNNING run of `kind`, read from the SQLite file `db` (the server's own, for a
    server's store) every 0.05 s, and a failure with `proc`'s stderr the moment it ends. It searched through an
    MlflowClient every 0.2 s for 120 s and said only "no run started", as the poll that timed out in CI did
    (test_reproduce.py): on 2 loaded cores the dead lane's first AlexNet run began 60 s after the start (half the
    deadline) and lasted 4 s, and an MlflowClient error (a locked database) ended the test instead of waiting."""
    query = (
        "select r.run_uuid, w.value from runs r join experiments e on e.experiment_id = r.experiment_id "
        "join tags k on k.run_uuid = r.run_uuid join tags w on w.run_uuid = r.run_uuid "
        f"where e.name = '{experiment}' and r.status = 'RUNNING' and k.key = 'mlhw.kind' and k.value = '{kind}' "
        "and w.key = 'mlhw.worker'"
    )
    return wait_for(lambda: sqlite_rows(db, query), proc, timeout=300, every=0.05)[0]


def write_project(workdir):
    """workdir with PROFILE as its experiments.yaml (the `project` fixture of both files)."""
    (workdir / "experiments.yaml").write_text(yaml.safe_dump(PROFILE))
    return workdir
