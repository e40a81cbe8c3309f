"""`mlhw reproduce` end to end on tiny profiles: idempotent, resumable, validated before anything exists,
one owner of results/, suites as parent runs, tables equal to MLflow; `mlhw ui` leaves no process behind."""

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import (
    assert_nothing_created,
    assert_one_line_error,
    descendants,
    free_port,
    invoke,
    light_spec,
    live_processes,
    reproduce_tiny,
    runs_of,
    sqlite_rows,
    sweep_suite,
    tiny_cnn_suite,
    wait_for,
    write_mnist_idx,
)

TINY = {
    "version": 1,
    "suites": {
        "mlp_lr_sweep": sweep_suite(),
        "mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2}},
        "cnn_optimizers": tiny_cnn_suite("cnn.a", "sgd-0.005", "adam-5e-05"),
        "cnn_batchnorm": tiny_cnn_suite("cnn.c", "adam-5e-05-plain", "adam-5e-05"),
        "svm_soft": {"kind": "svm_soft", "part": "svm.q3"},
    },
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}, "suites": {"mlp_full": {"seeds": [8, 9]}}}},
}

# No CNN: seconds, for the tests of reproduce's own behaviour (plan, output, report, signals).
LIGHT = light_spec()


reproduce = reproduce_tiny


def runs(workdir, all_lifecycles=False):
    return runs_of(f"sqlite:///{workdir}/mlflow.db", all_lifecycles=all_lifecycles)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under a folder: its bytes, mtime (ns) and mode."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode & 0o777)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def tiny(workdir):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(TINY))
    return workdir


@pytest.fixture
def light(workdir):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(LIGHT))
    return workdir


def test_second_run_executes_nothing_and_tables_equal_mlflow(tiny):
    res = reproduce(tiny)
    assert res.exit_code == 0, res.output
    assert "ran 8 of 8 runs" in res.stderr  # 2 + 2 + 2 + 1 (shared adam-5e-05 once) + 1
    client, first = runs(tiny)
    assert all(r.info.status == "FINISHED" for r in first)
    root = tiny / "results" / "tiny"
    before = snapshot(root)
    res = reproduce(tiny)
    assert res.exit_code == 0
    assert res.stderr.strip() == f"up to date: 8 runs, profile tiny ({Path('results') / 'tiny' / 'REPORT.md'})"
    assert len(runs(tiny)[1]) == len(first)  # no duplicates, no new parent runs
    assert snapshot(root) == before  # nothing rewritten
    # the batched MLP runs share one computation's time: the report counts it once
    text = (root / "REPORT.md").read_text()
    together = {}
    for r in first:
        if "mlhw.trained_together" in r.data.tags:
            together.setdefault(r.data.tags["mlhw.trained_together"], []).append(r.info)
    assert together and all(len(v) == int(k.rsplit("/", 1)[1]) for k, v in together.items())
    leaves = [r.info for r in first if r.data.tags["mlhw.kind"] not in ("suite", "mlp-sweep")]
    alone = sum(
        (i.end_time - i.start_time) / 1000
        for i in leaves
        if i.run_id not in {x.run_id for v in together.values() for x in v}
    )
    spans = [(max(i.end_time for i in v) - min(i.start_time for i in v)) / 1000 for v in together.values()]
    shown = float(
        re.search(
            r"total run time ([\d.]+) s \(the runs' durations summed, whichever process ran them; "
            r"runs trained together counted once\)",
            text,
        ).group(1)
    )
    assert shown == pytest.approx(alone + sum(spans), abs=0.06)
    assert text.count("(one computation with 1 other)") == 2 * sum(len(v) == 2 for v in together.values())
    tables = invoke("tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{tiny}/mlflow.db")
    assert tables.exit_code == 0, tables.output  # rebuilt from the store alone: still up to date after
    res = reproduce(tiny)
    assert res.exit_code == 0 and res.stderr.startswith("up to date: 8 runs"), res.stderr[-500:]
    for name in ("mlp_lr_sweep", "mlp_full", "sgd_vs_adam", "batchnorm_dropout", "svm"):
        for ext in ("md", "csv", "tex"):
            assert (root / "tables" / f"{name}.{ext}").stat().st_size > 0
    assert (root / "REPORT.md").read_text().count("## ") >= 6
    full = pd.read_csv(root / "tables" / "mlp_full.csv")
    accs = [
        r.data.metrics["test/acc"]
        for r in first
        if r.data.tags.get("mlhw.suite") == "mlp_full" and r.data.tags["mlhw.kind"] == "mlp"
    ]
    assert len(accs) == 2
    assert full.loc[0, "n"] == 2 and full.loc[0, "test_acc_mean"] == pytest.approx(sum(accs) / 2, rel=1e-12)
    cnn = pd.read_csv(root / "tables" / "sgd_vs_adam.csv")
    by_variant = {r.data.tags["mlhw.variant"]: r.data.metrics for r in first if r.data.tags.get("mlhw.kind") == "cnn"}
    assert len(by_variant) == 3
    for _, row in cnn.iterrows():
        assert row["val_acc_mean"] == pytest.approx(by_variant[row["variant"]]["val/acc"], rel=1e-12)
    shared = [r for r in first if r.data.tags.get("mlhw.variant") == "adam-5e-05"]
    assert len(shared) == 1 and set(shared[0].data.tags["mlhw.suites"].split(",")) == {
        "cnn_optimizers",
        "cnn_batchnorm",
    }


def test_interrupted_run_is_killed_and_rerun(tiny, monkeypatch):
    import mlhw.cnn

    real = mlhw.cnn.train_cnn
    calls = {"n": 0}

    def interrupt_second(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(mlhw.cnn, "train_cnn", interrupt_second)
    res = reproduce(tiny, "--only", "cnn_optimizers")
    assert res.exit_code == 130 and "interrupted" in res.stderr
    _, after = runs(tiny)
    cnn = [r for r in after if r.data.tags.get("mlhw.kind") == "cnn"]
    assert sorted(r.info.status for r in cnn) == ["FINISHED", "KILLED"]
    assert [r.info.status for r in after if r.data.tags.get("mlhw.kind") == "suite"] == ["KILLED"]
    uri = f"sqlite:///{tiny}/mlflow.db"  # `mlhw tables` (and check) say the reproduction was stopped, and the way on
    stopped = " ".join(invoke("tables", "--profile", "tiny", "--tracking-uri", uri).stderr.split())
    assert "its reproduction was stopped (1 suite run(s) KILLED or FAILED): `mlhw reproduce --profile" in stopped
    monkeypatch.setattr(mlhw.cnn, "train_cnn", real)
    res = reproduce(tiny, "--only", "cnn_optimizers")
    assert res.exit_code == 0 and "ran 1 of 1 run in" in res.stderr and "1 killed" in res.stderr
    # The suite's FINISHED parent holds both finished runs, the first attempt's and the rerun (the first stayed
    # under the KILLED parent, which the UI showed holding it while the FINISHED one held only the rerun); the
    # KILLED parent keeps the run that was interrupted, a record of that attempt.
    _, final = runs(tiny)
    parents = {r.info.status: r for r in final if r.data.tags.get("mlhw.kind") == "suite"}
    assert sorted(parents) == ["FINISHED", "KILLED"]
    cnn = [r for r in final if r.data.tags.get("mlhw.kind") == "cnn"]
    done = [r for r in cnn if r.info.status == "FINISHED"]
    assert len(done) == 2 and {r.data.tags["mlflow.parentRunId"] for r in done} == {parents["FINISHED"].info.run_id}
    (killed,) = [r for r in cnn if r.info.status == "KILLED"]
    assert killed.data.tags["mlflow.parentRunId"] == parents["KILLED"].info.run_id


def test_a_failing_run_does_not_stop_the_others(tiny, monkeypatch):
    import mlhw.svm

    def broken(*a, **kw):
        raise RuntimeError("solver exploded")

    real = mlhw.svm.solve_primal
    monkeypatch.setattr(mlhw.svm, "solve_primal", broken)
    res = reproduce(tiny, "--only", "svm_soft", "--only", "mlp_full")
    assert res.exit_code == 1 and "solver exploded" in res.stderr
    client, after = runs(tiny)
    work = [r for r in after if r.data.tags.get("mlhw.kind") != "suite"]
    failed = [r for r in work if r.info.status == "FAILED"]
    assert len(failed) == 1 and sum(r.info.status == "FINISHED" for r in work) == 2
    assert "error.txt" in {a.path for a in client.list_artifacts(failed[0].info.run_id)}
    monkeypatch.setattr(mlhw.svm, "solve_primal", real)  # not undo(): that would also undo workdir's chdir
    res = reproduce(tiny, "--only", "svm_soft", "--only", "mlp_full")
    assert res.exit_code == 0 and "ran 1 of 1 run in" in res.stderr and "1 failed" in res.stderr


def test_invalid_file_runs_nothing(tiny):
    bad = dict(TINY, suites=dict(TINY["suites"], mlp_full={"kind": "mlp", "part": "mlp.c", "base": {"lr": -1}}))
    (tiny / "exp.yaml").write_text(yaml.safe_dump(bad))
    res = reproduce(tiny)
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {tiny / 'exp.yaml'}: suites.mlp_full.base.lr: must be > 0 (got -1)"
    assert not (tiny / "results").exists() and not (tiny / "mlflow.db").exists()


# --- reproduce's own behaviour, on the light profile ----------------------------------------------------------


def test_a_report_that_could_not_be_written_names_the_tables_command_that_rebuilds_it(light, monkeypatch):
    """It said `mlhw tables --profile tiny`: run as given, that read ./mlflow.db (not this --tracking-uri) and wrote
    under results/ (not this --results-dir). The command names what differs from `mlhw tables`' own defaults."""
    import errno
    import shlex

    from mlhw import report

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_report", full)
    out = light / "my results"
    res = reproduce(light, "--results-dir", out, "--experiment", "hw4")
    assert res.exit_code != 0 and "No space left on device" in res.stderr, res.stderr
    line = next(x for x in res.stderr.splitlines() if "rebuilds the report" in x)
    command = re.search(r"`([^`]+)` rebuilds the report", line)[1]
    assert shlex.split(command) == [
        *("mlhw", "tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{light}/mlflow.db"),
        *("--experiment", "hw4", "--results-dir", str(out)),
    ]


def test_piped_output_is_one_line_per_run_start_and_end(light):
    res = reproduce(light)
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    starts = [m for line in lines if (m := re.fullmatch(r"\[runs? (\d+)(?:-(\d+))? of 5\] start (.+)", line))]
    ends = [
        m
        for line in lines
        if (m := re.fullmatch(r"\[runs? (\d+)(?:-(\d+))? of 5\] done: (.+) \(\d+\.\d s; \d of 5 done\)", line))
    ]
    # units: the sweep (2 rates train together), mlp_full (seeds 8 and 9 train together), svm_soft
    assert len(starts) == len(ends) == 3, res.stderr
    assert {"mlp_lr_sweep: 2 learning rates", "mlp_full: 2 seeds"} < {m[3] for m in starts}
    covered = [int(m[2] or m[1]) for m in starts]  # [first-last/5] of each unit at its start and its end
    assert [m.groups() for m in starts] == [m.groups() for m in ends]
    assert covered == sorted(covered) and covered[-1] == 5
    assert sum(int(m[2] or m[1]) - int(m[1]) + 1 for m in starts) == 5
    assert "ran 5 of 5 runs" in res.stderr
    assert "\x1b[" not in res.stderr  # no progress bars or colour codes in a pipe
    # the report's answers on stdout too (the README said so; only the tables were printed), as plain lines
    report = (light / "results" / "tiny" / "REPORT.md").read_text()
    for question in ("Part 1 (b):", "Part 1 (c):"):
        (line,) = [q for q in res.stdout.splitlines() if q.startswith(question)]
        assert f"**{line}**" in report
    assert "╭" not in res.stdout and "\x1b[" not in res.stdout


def test_the_answers_in_a_log_are_plain_lines_even_with_force_color(light):
    """FORCE_COLOR asks for colour, not for a terminal: rich took it for one and drew the findings as boxed panels
    into a piped log; they are plain lines there, as the progress is."""
    assert reproduce(light).exit_code == 0
    argv = ["tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{light}/mlflow.db"]
    env = os.environ | {"FORCE_COLOR": "1", "CI": ""}
    res = subprocess.run([sys.executable, "-m", "mlhw", *argv], cwd=light, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert any(line.startswith("Part 1 (c):") for line in res.stdout.splitlines()), res.stdout
    assert "╭" not in res.stdout


def test_a_reproduction_stopped_after_its_report_is_compiled_again_and_its_dead_runs_ended(light):
    """Stopped after its report was swapped in (Ctrl-C there, or SIGKILL), a reproduction left a whole, stamped
    results/ and suite parents KILLED (or RUNNING): every later reproduce said 'up to date' and exited 0, while
    `mlhw tables` and `check` found no finished reproduction and sent the user back to reproduce; the RUNNING ones
    stayed RUNNING, since only a reproduce with runs to do ended stale runs."""
    import time

    from mlhw.lifecycle import HEARTBEAT_TAG

    assert reproduce(light).exit_code == 0
    uri = f"sqlite:///{light}/mlflow.db"
    client, every = runs(light)
    parents = {r.data.tags["mlhw.suite"]: r.info.run_id for r in every if r.data.tags["mlhw.kind"] == "suite"}
    assert sorted(parents) == ["mlp_full", "mlp_lr_sweep", "svm_soft"]
    client.set_terminated(parents["mlp_full"], "KILLED")
    client.set_terminated(parents["svm_soft"], "KILLED")
    dead = client.create_run(every[0].info.experiment_id, tags={"mlhw.kind": "suite", "mlhw.profile": "tiny"})
    client.set_tag(dead.info.run_id, HEARTBEAT_TAG, str(int(time.time()) - 3600))  # its process gone an hour ago
    res = reproduce(light)
    assert res.exit_code == 0, res.output
    assert "but the reproduction that wrote it stopped before its suite parent runs finished (mlp_full, svm_soft)" in (
        res.stderr
    )
    assert "ran 0 of 0 runs" in res.stderr, res.stderr  # compiled, nothing trained
    assert client.get_run(dead.info.run_id).info.status == "FAILED"
    assert invoke("tables", "--profile", "tiny", "--tracking-uri", uri).exit_code == 0
    assert reproduce(light).stderr.startswith("up to date: 5 runs")
    _, after = runs(light)
    finished = [r for r in after if r.data.tags["mlhw.kind"] == "suite" and r.info.status == "FINISHED"]
    assert sorted(r.data.tags["mlhw.suite"] for r in finished) == ["mlp_full", "mlp_lr_sweep", "svm_soft"]


def test_another_files_newer_reproduction_of_the_profile_leaves_this_one_up_to_date(light):
    """Two experiments files with one profile name in one store: the other file's newer suite parent made this one's
    no-op say its parents never finished, and compile again, each file in turn."""
    import copy

    other = copy.deepcopy(LIGHT)
    other["suites"]["svm_soft"]["grid"] = {"C": [10.0]}
    (light / "b.yaml").write_text(yaml.safe_dump(other))
    assert reproduce(light).exit_code == 0
    res = reproduce(light, "--file", light / "b.yaml", "--results-dir", light / "b")
    assert res.exit_code == 0, res.output
    res = reproduce(light)
    assert res.stderr == f"up to date: 5 runs, profile tiny ({Path('results') / 'tiny' / 'REPORT.md'})\n", res.stderr


def test_second_reproduce_is_a_one_line_no_op_that_rewrites_nothing(light):
    assert reproduce(light).exit_code == 0
    root = light / "results" / "tiny"
    before, db_mtime = snapshot(root), (light / "mlflow.db").stat().st_mtime_ns
    _, first = runs(light, all_lifecycles=True)
    time.sleep(0.05)
    res = reproduce(light)
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr == f"up to date: 5 runs, profile tiny ({Path('results') / 'tiny' / 'REPORT.md'})\n"
    assert snapshot(root) == before
    assert len(runs(light, all_lifecycles=True)[1]) == len(first)
    assert (light / "mlflow.db").stat().st_mtime_ns == db_mtime  # not even a parent run


def test_a_data_dir_or_download_no_planned_run_reads_is_refused_even_when_up_to_date(light, monkeypatch):
    """`reproduce --data-dir DIR` on a profile of digits alone said `up to date: 39 runs` (or trained on digits) and
    exit 0: the folder was ignored in silence, where `mlhw mlp train --data-dir DIR` refuses it; so was --download.
    Both are refused before anything exists, on the no-op path too, naming a profile that reads the folder;
    MLHW_DATA_DIR (any command's) and --no-download are not, nor --only beside other suites that read it."""
    exp = yaml.safe_load((light / "exp.yaml").read_text())
    exp["profiles"]["real"] = {"suites": {"mlp_full": {"base": {"dataset": "mnist"}}}}
    (light / "exp.yaml").write_text(yaml.safe_dump(exp))
    folder = light / "mnist"
    folder.mkdir()
    refused = (
        (("--data-dir", folder), f"--data-dir {folder}: not used here", "--profile real reads mnist from it"),
        (("--download",), "--download: not used here", "--profile real downloads mnist"),
        (("--data-dir", folder, "--dry-run"), f"--data-dir {folder}: not used here", "reads mnist from it"),
        (("--only", "mlp_full", "--data-dir", folder), "no planned run (profile tiny)", "--profile real reads"),
    )

    def all_refused():
        for args, *needles in refused:
            line = assert_one_line_error(reproduce(light, *args), *needles)
            assert "no planned run (profile tiny)" in line and "(digits is embedded)" in line, line

    all_refused()
    assert_nothing_created(light, f"sqlite:///{light}/mlflow.db")
    assert not (light / "mlflow.db").exists()
    # the profile that reads it, its runs put back on digits by --set: refused, naming the profile without --set
    res = reproduce(light, "--profile", "real", "--set", "mlp_full.dataset=digits", "--data-dir", folder, "--dry-run")
    assert_one_line_error(res, "no planned run (profile real, --set)", "profile real without --set reads mnist")
    # --only: the other suites' runs are looked up in the folder for the report, but nothing is downloaded for them
    real_only = ("--profile", "real", "--only", "svm_soft", "--dry-run")
    assert reproduce(light, *real_only, "--data-dir", folder).exit_code == 0
    res = reproduce(light, *real_only, "--download")
    assert_one_line_error(res, "--download: not used here: no planned run (profile real, --only svm_soft) downloads")
    assert "profile real without --only downloads mnist" in res.stderr
    assert reproduce(light).exit_code == 0
    before = snapshot(light / "results" / "tiny")
    all_refused()  # the up-to-date path checks it too
    assert snapshot(light / "results" / "tiny") == before
    monkeypatch.setenv("MLHW_DATA_DIR", str(folder))
    res = reproduce(light, "--no-download")
    assert res.exit_code == 0 and res.stderr.startswith("up to date: 5 runs"), res.output


def test_an_absent_device_stops_a_reproduce_that_would_train_but_not_a_no_op(light):
    """--device cuda where there is no CUDA: one line, before any run exists, when something would train. A
    reproduce with nothing to train does not ask: the question imports torch, 4.5 s of a 9.2 s no-op on the
    H200 machine, and it refused an up-to-date profile on a machine without the device."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    for device, culprit in (("cuda", "--device cuda"), ("gpu", "'gpu'"), ("cuda:x", "'cuda:x'"), ("cuda:1", "cuda:1")):
        res = reproduce(light, "--device", device)
        assert_one_line_error(res, culprit, "not a device" if "'" in culprit else "CUDA is not available")
    assert not (light / "mlflow.db").exists() and not (light / "results").exists()
    res = reproduce(light, "--device", "cuda", "--dry-run")  # plans a GPU reproduction here: it trains nothing
    assert res.exit_code == 0 and "5 runs" in res.stderr + res.stdout, res.output
    assert reproduce(light).exit_code == 0
    res = reproduce(light, "--device", "cuda")
    assert res.exit_code == 0 and res.stderr.startswith("up to date: 5 runs"), res.stderr
    res = reproduce(light, "--device", "cuda", "--only", "mlp_full", "--force")  # would train again: refused
    assert_one_line_error(res, "--device cuda", "CUDA is not available")
    res = reproduce(light, "--device", "gpu")  # a malformed device is refused even when nothing would train
    assert_one_line_error(res, "'gpu'", "is not a device")


def test_an_edit_of_the_mlp_code_reruns_the_mlp_runs_and_only_them(light, monkeypatch):
    """A student who broke the backprop got "up to date: 12 runs" and the old results. An edit of the code that
    computes a kind of run makes its runs new ones: the MLP's 4 train again, the soft SVM's run is kept; each run
    says which code computed it."""
    from mlhw import config

    assert reproduce(light).exit_code == 0
    _, first = runs(light)
    real = config._module_digest
    monkeypatch.setattr(config, "_module_digest", lambda m: "an edited mlp.py" if m == "mlp" else real(m))
    res = reproduce(light)
    assert res.exit_code == 0 and "5 runs: 4 pending, 1 done" in res.stderr and "ran 4 of 4 runs" in res.stderr
    _, second = runs(light)
    mlp = [r for r in second if r.data.tags.get("mlhw.kind") == "mlp"]
    assert len(mlp) == 8 and len({r.data.tags["mlhw.code_digest"] for r in mlp}) == 2
    svm = [r for r in second if r.data.tags.get("mlhw.kind") == "svm_soft"]
    assert len(svm) == 1 and svm[0].data.tags["mlhw.code_digest"] == config.code_digest("svm_soft")
    assert len(first) < len(second)


def test_a_deleted_figure_or_an_edited_table_is_not_up_to_date(light):
    """The no-op looked at the plan stamp alone: with a figure deleted (REPORT.md still linking it) or a table
    edited by hand it said "up to date" and exited 0. Each file's digest is in the stamp now: the report is compiled
    again from the store (nothing runs), the message names the file, and an edited baseline number is checked."""
    first = reproduce(light)
    assert first.exit_code == 0
    # the first reproduction says it had nothing to compare with (no verdict line was read as a pass)
    assert "not checked against a baseline: results/tiny/ held no tables before this reproduction" in first.stderr
    root = light / "results" / "tiny"
    (root / "figures" / "mlp_lr_sweep.png").unlink()
    res = reproduce(light)
    assert res.exit_code == 0 and "figures/mlp_lr_sweep.png differs from what the last reproduction" in res.stderr
    assert "ran 0 of" in res.stderr or "start" not in res.stderr
    assert (root / "figures" / "mlp_lr_sweep.png").stat().st_size > 10_000
    assert reproduce(light).stderr.startswith("up to date")
    table = root / "tables" / "mlp_full.csv"
    df = pd.read_csv(table)
    df["test_acc_mean"] = df["test_acc_mean"] - 0.3
    df.to_csv(table, index=False)
    res = reproduce(light)
    assert res.exit_code == 1 and "tables/mlp_full.csv differ" in res.stderr and "mlp_full" in res.stderr
    assert pd.read_csv(table)["test_acc_mean"].iloc[0] == pytest.approx(df["test_acc_mean"].iloc[0] + 0.3)


def test_results_are_world_readable_files_in_one_folder(light):
    assert reproduce(light).exit_code == 0
    files = [p for p in (light / "results").rglob("*") if p.is_file()]
    assert {p.relative_to(light / "results").parts[0] for p in files} == {"tiny"}
    assert len(files) == 12  # REPORT.md, 3 tables x (md, csv, tex), the sweep's figure, the plan stamp
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o644)}
    assert {p.name for p in (light / "results").iterdir()} == {"tiny"}  # no temporary folders left


def test_suites_are_parent_runs_with_their_plan_tables_figures_and_children(light):
    assert reproduce(light).exit_code == 0
    client, all_runs = runs(light)
    parents = {r.data.tags["mlhw.suite"]: r for r in all_runs if r.data.tags.get("mlhw.kind") == "suite"}
    assert set(parents) == {"mlp_lr_sweep", "mlp_full", "svm_soft"}
    assert all(r.info.status == "FINISHED" and r.data.tags["mlhw.profile"] == "tiny" for r in parents.values())
    assert all(r.data.tags["mlhw.partial"] == "false" for r in parents.values())
    # the dataset of its runs, as theirs says it: a filter on tags.`mlhw.dataset` found the children alone
    assert {r.data.tags.get("mlhw.dataset") for r in all_runs} == {"digits"}
    expected = {"mlp_lr_sweep": ("mlp_lr_sweep", 2), "mlp_full": ("mlp_full", 2), "svm_soft": ("svm", 1)}
    for suite, (table, n_children) in expected.items():
        run_id = parents[suite].info.run_id
        arts = {a.path for a in client.list_artifacts(run_id)} | {
            a.path for folder in ("tables", "figures") for a in client.list_artifacts(run_id, folder)
        }
        assert {"plan.json", "REPORT.md", f"tables/{table}.md", f"tables/{table}.csv"} <= arts, arts
        assert ("figures/mlp_lr_sweep.png" in arts) == (suite == "mlp_lr_sweep")
        # the whole report, in the UI as on disk (it was only in results/), but for its figure: MLflow's viewer
        # shows no image (it read "[caption](figures/mlp_lr_sweep.png)"), so the line says where the figure is
        report = client.download_artifacts(run_id, "REPORT.md", str(light / "dl" / f"r-{suite}"))
        on_disk = (light / "results" / "tiny" / "REPORT.md").read_text()
        image = (
            "![Part 1 (b) on digits: training accuracy, training loss and test accuracy per epoch]"
            "(figures/mlp_lr_sweep.png)"
        )
        # in the UI's Model training view, as `mlhw ui` opens it: a link without it opened the GenAI view
        sweep_link = (
            f"#/experiments/{parents[suite].info.experiment_id}/runs/{parents['mlp_lr_sweep'].info.run_id}"
            "?workflowType=machine_learning"
        )
        where = (
            "this run's artifacts"
            if suite == "mlp_lr_sweep"
            else f"the artifacts of [mlp_lr_sweep's parent run]({sweep_link})"
        )
        assert on_disk.count(image) == 1
        assert Path(report).read_text() == on_disk.replace(image, f"Figure `figures/mlp_lr_sweep.png`: in {where}.")
        children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == run_id]
        assert len(children) == n_children and all(c.info.status == "FINISHED" for c in children)
        local = Path(client.download_artifacts(run_id, "plan.json", str(light / "dl" / suite)))
        plan = json.loads(local.read_text())
        assert sorted(e["identity"] for e in plan) == sorted(c.data.tags["mlhw.config_hash"] for c in children)
    # Q3's run says its two classes, as the single command's does: "svm_soft (digits)" read as the whole of digits
    assert [r.info.run_name for r in all_runs if r.data.tags.get("mlhw.kind") == "svm_soft"] == [
        "svm_soft (digits, 3 vs 8)"
    ]
    csv = client.download_artifacts(parents["mlp_full"].info.run_id, "tables/mlp_full.csv", str(light / "dl" / "t"))
    assert Path(csv).read_text() == (light / "results" / "tiny" / "tables" / "mlp_full.csv").read_text()
    # a parent has a number of its own, its best row's mean (MLflow's sweep convention): its charts were empty
    sweep = pd.read_csv(light / "results" / "tiny" / "tables" / "mlp_lr_sweep.csv")
    best = sweep.loc[sweep["test_acc_mean"].idxmax()]
    p = parents["mlp_lr_sweep"].data
    assert p.metrics["test/acc"] == pytest.approx(best["test_acc_mean"])
    runs_word = "its one run's" if best["n"] == 1 else f"the mean of its {best['n']} runs'"
    assert p.tags["mlhw.best"] == f"lr={best['lr']:g} ({runs_word} test/acc)"
    assert "test/acc" in parents["mlp_full"].data.metrics and not parents["svm_soft"].data.metrics
    # compiled again from the same parents (a report file deleted): the number is not logged a second time
    (light / "results" / "tiny" / "REPORT.md").unlink()
    assert reproduce(light).exit_code == 0
    history = client.get_metric_history(parents["mlp_lr_sweep"].info.run_id, "test/acc")
    assert [(m.step, m.value) for m in history] == [(0, pytest.approx(best["test_acc_mean"]))]
    assert "mlhw.best" not in parents["svm_soft"].data.tags


@pytest.mark.parametrize(
    "args, note",
    [
        (["--set", "epochs=1"], "`--set epochs=1`"),
        (["--only", "svm_soft", "--set", "svm_soft.C=2"], "`--set svm_soft.C=2`"),
    ],
)
def test_an_overridden_reproduce_writes_its_own_report_and_leaves_the_profiles_alone(light, args, note):
    assert reproduce(light).exit_code == 0
    full = snapshot(light / "results" / "tiny")
    res = reproduce(light, *args)
    assert res.exit_code == 0, res.output
    assert snapshot(light / "results" / "tiny") == full
    report = (light / "results" / "tiny-partial" / "REPORT.md").read_text()
    assert "(partial)" in report.splitlines()[0] and note in report
    # where the full one is, as a link that resolves from this report's folder whatever --results-dir (it was
    # `results/tiny/REPORT.md` always)
    links = re.findall(r"\]\(([^)]*REPORT\.md)\)", report)
    partial_folder = light / "results" / "tiny-partial"
    assert links and all((partial_folder / x).resolve() == (light / "results" / "tiny" / "REPORT.md") for x in links)
    assert (partial_folder / links[0]).is_file()
    settings = report.split("## Settings\n")[1].split("\n## ")[0]  # a description no longer reads as a contradiction
    assert (
        f"The suites' descriptions are as the profile's file writes them; this reproduction's {note} changed its runs"
        in settings
    )
    _, all_runs = runs(light)
    partial_parents = [r for r in all_runs if r.data.tags.get("mlhw.partial") == "true"]
    assert partial_parents and all("partial" in r.info.run_name for r in partial_parents)
    assert reproduce(light, *args).stderr.startswith("up to date")  # an overridden plan is resumable too
    assert snapshot(light / "results" / "tiny") == full


def test_only_reruns_one_suite_and_keeps_the_profiles_report_whole(light):
    assert reproduce(light).exit_code == 0
    root = light / "results" / "tiny"
    before = snapshot(root)
    res = reproduce(light, "--only", "mlp_full")
    assert res.exit_code == 0 and res.stderr.startswith("up to date")
    assert snapshot(root) == before
    client, all_runs = runs(light)
    for r in all_runs:  # make the suite's runs go missing: --only mlp_full has work to do
        if r.data.tags.get("mlhw.suite") == "mlp_full":
            client.delete_run(r.info.run_id)
    res = reproduce(light, "--only", "mlp_full")
    assert res.exit_code == 0 and "ran 2 of 2 runs" in res.stderr
    after = snapshot(root)
    assert set(after) == set(before)  # every suite still in the report
    for name in ("tables/svm.csv", "tables/mlp_lr_sweep.csv"):
        assert after[name][0] == before[name][0]
    assert "partial" not in (root / "REPORT.md").read_text().splitlines()[0]
    assert not (light / "results" / "tiny-partial").exists()


def test_only_reports_the_other_suites_done_runs_though_no_reproduction_made_them(light):
    """--only: the report takes the other suites' runs by identity, as the plan would; it said 'not reproduced
    here (no finished runs in the store)' of runs that a single command (or another profile) had made."""
    uri = f"sqlite:///{light}/mlflow.db"
    for seed in ("8", "9"):  # mlp_full's two runs, made by a single command, not by a reproduction
        single = invoke("mlp", "train", "--epochs", "2", "--train-size", "300", "--seed", seed, "--tracking-uri", uri)
        assert single.exit_code == 0, single.output
    res = reproduce(light, "--only", "svm_soft", "--only", "mlp_lr_sweep")
    assert res.exit_code == 0 and "ran 3 of 3 runs in" in res.stderr, res.stderr
    report = (light / "results" / "tiny" / "REPORT.md").read_text()
    assert "partial" not in report.splitlines()[0] and "Not reproduced here" not in report
    full = pd.read_csv(light / "results" / "tiny" / "tables" / "mlp_full.csv")
    assert list(full["n"]) == [2]  # the two single-command runs, found by their identity
    assert not (light / "results" / "tiny-partial").exists()
    # mlp_full has a parent run now, holding both: `mlhw tables` rebuilds the same report (it said mlp_full was
    # not reproduced, having no parent run to read it from)
    client, all_runs = runs(light)
    (parent,) = [
        r for r in all_runs if r.data.tags.get("mlhw.kind") == "suite" and r.data.tags["mlhw.suite"] == "mlp_full"
    ]
    kids = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(kids) == 2
    tables = light / "results" / "tiny" / "tables"
    before = {k: v[0] for k, v in snapshot(tables).items()}
    rebuilt = invoke("tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{light}/mlflow.db")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert {k: v[0] for k, v in snapshot(tables).items()} == before  # the same bytes


def test_only_on_a_store_without_the_other_suites_leaves_the_profiles_report_alone(light):
    """--only on a fresh store: the report would lack the other suites, so it goes to <profile>-partial/; it
    replaced results/<profile>/ with one suite's tables (the committed baseline gone, the check empty)."""
    assert reproduce(light).exit_code == 0
    root = light / "results" / "tiny"
    before = snapshot(root)
    client, all_runs = runs(light)
    for r in all_runs:  # a store without the runs, as on a fresh checkout
        client.delete_run(r.info.run_id)
    res = reproduce(light, "--only", "mlp_full")
    assert res.exit_code == 0, res.output
    assert snapshot(root) == before
    assert "the store lacks done runs of mlp_lr_sweep, svm_soft, so the report covers mlp_full alone" in res.stderr
    partial = light / "results" / "tiny-partial"
    assert sorted(p.name for p in (partial / "tables").iterdir()) == ["mlp_full.csv", "mlp_full.md", "mlp_full.tex"]
    report = (partial / "REPORT.md").read_text()
    assert "(partial)" in report.splitlines()[0] and "only mlp_full" in report
    # it answers what it ran: Part 1 (c), not "Part 1 (b) ... not reproduced here" nor Part 2's questions
    findings = report.split("## Findings")[1].split("\n## ")[0]
    assert "Part 1 (c)" in findings and "Part 1 (b)" not in findings and "Part 2" not in findings
    # the verdict still compares the suite's table with the profile's committed one (same machine, same seeds)
    assert f"against the baseline that was in {Path('results') / 'tiny'}: check passed" in res.stderr
    assert "check passed: 3 ok" in res.stderr  # the three numbers of mlp_full's table
    # a baseline reproduce wrote, with no check.yaml: the verdict says what policy it used
    assert "(no check.yaml in" in res.stderr and "default tolerances, no row marked chaotic)" in res.stderr
    again = reproduce(light, "--only", "mlp_full")
    assert again.exit_code == 0 and again.stderr.startswith("up to date") and "tiny-partial" in again.stderr
    assert snapshot(root) == before


def test_only_does_not_read_or_refuse_the_data_of_suites_it_does_not_run(light):
    """--only svm_soft: the other suites are looked up for the report; a broken CIFAR-10 folder that only a suite
    not run would read is reported as not reproduced, not a refusal of the whole command."""
    from helpers import write_cifar_batches

    _with_cifar_suite(light)
    dry = reproduce(light, "--dry-run", "--only", "cnn_optimizers", "--data-dir", light / "nowhere")
    assert dry.exit_code == 0 and "2 runs: 2 no data" in dry.output  # the suite does read CIFAR-10
    assert f"no data: cifar10 not in {light / 'nowhere'}/" in " ".join(dry.stdout.split())  # where it looked
    whole = reproduce(light, "--data-dir", light / "nowhere")  # the way forward names the suites without it
    assert_one_line_error(
        whole, "CIFAR-10", "suites without cifar10: --only mlp_full --only mlp_lr_sweep --only svm_soft"
    )
    folder = light / "data" / "cifar-10-batches-py"
    write_cifar_batches(folder, per_batch=20, n_test=15)
    (folder / "data_batch_1").write_bytes(b"not a pickle")
    others = ("--only", "svm_soft", "--only", "mlp_lr_sweep", "--only", "mlp_full")  # all but the CNN suite
    res = reproduce(light, *others, "--data-dir", light / "data")
    assert res.exit_code == 0, res.output
    assert "cnn_optimizers" in (light / "results" / "tiny" / "REPORT.md").read_text().split("Not reproduced here")[1]
    bad = reproduce(light, "--only", "cnn_optimizers", "--data-dir", light / "data")  # a suite that reads it: refused
    assert bad.exit_code == 2 and "data_batch_1" in bad.stderr


def test_a_long_run_in_a_log_says_its_epochs(light, monkeypatch):
    """Piped (as CliRunner is), a run longer than EPOCH_LINE_EVERY gets plain epoch lines between its start and end
    lines; a short one (the default 30 s here) none, so that the digits log stays a line a run."""
    from mlhw.cli.reproduce import _Reporter

    quiet = reproduce(light, "--only", "mlp_full")
    assert quiet.exit_code == 0 and ": epoch " not in quiet.stderr, quiet.stderr
    monkeypatch.setattr(_Reporter, "EPOCH_LINE_EVERY", 0.0)
    res = reproduce(light, "--only", "mlp_full", "--force")
    assert res.exit_code == 0, res.output
    epochs = yaml.safe_load((light / "exp.yaml").read_text())["suites"]["mlp_full"]["base"]["epochs"]
    lines = [x for x in res.stderr.splitlines() if ": epoch " in x]
    # "[runs 1-2 of 2] mlp_full: 2 seeds: epoch 2/2 (1 s)": the unit's place and name, as its start line has them
    # (it printed "[0/2] : epoch 2/2": an epoch event carries no label)
    pattern = rf"^\[runs 1-2 of 2\] mlp_full: 2 seeds: epoch \d+/{epochs} \(\d+ s\)$"
    assert lines and all(re.search(pattern, x) for x in lines), res.stderr
    assert any(f"epoch {epochs}/{epochs}" in x for x in lines), lines


def test_force_runs_the_done_runs_again(light):
    assert reproduce(light, "--only", "mlp_full").exit_code == 0
    res = reproduce(light, "--only", "mlp_full", "--force")
    assert res.exit_code == 0 and "ran 2 of 2 runs" in res.stderr, res.stderr
    _, all_runs = runs(light)
    done = [r for r in all_runs if r.data.tags.get("mlhw.kind") == "mlp" and r.info.status == "FINISHED"]
    assert len(done) == 4 and len({r.data.tags["mlhw.config_hash"] for r in done}) == 2


def test_results_dir_that_is_a_file_fails_before_any_run(light):
    (light / "blocker").write_text("a file where a folder should be\n")
    for results_dir in ("blocker", "blocker/sub"):
        res = reproduce(light, "--results-dir", light / results_dir)
        assert_one_line_error(res, "--results-dir", str(light / results_dir), "is a file")
        res = invoke("tables", "--profile", "tiny", "--results-dir", light / results_dir)
        assert_one_line_error(res, "--results-dir", str(light / results_dir))
    assert_nothing_created(light)
    assert not (light / "mlflow.db").exists()
    assert (light / "blocker").read_text() == "a file where a folder should be\n"


def test_an_empty_results_dir_is_refused_before_any_run(light):
    """--results-dir '' is Path('.'): the report folder went into the working directory itself."""
    before = sorted(p.name for p in light.iterdir())
    for res in (reproduce(light, "--results-dir", ""), invoke("tables", "--profile", "tiny", "--results-dir", " ")):
        assert_one_line_error(res, "--results-dir", "empty (the default is results)")
    # --data-dir '' read ./data, a folder never named (`--data-dir "$DIR"`, DIR unset); a dry run is refused too
    for res in (reproduce(light, "--data-dir", ""), reproduce(light, "--data-dir", "", "--dry-run")):
        assert_one_line_error(res, "--data-dir '': empty (the default is data)")
    assert sorted(p.name for p in light.iterdir()) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no folder can be made")
def test_results_dir_that_cannot_be_created_is_named_with_its_cause(light):
    """--results-dir /proc/ro said "cannot write in /proc (No such file or directory)": neither the folder asked for
    nor that it is the one that could not be made."""
    from mlhw.errors import MLHWError
    from mlhw.layout import check_writable

    with pytest.raises(MLHWError) as info:
        check_writable("/proc/ro/x", "tiny")
    assert str(info.value).startswith(
        "--results-dir /proc/ro/x: /proc/ro/x cannot be created: no folder can be made in /proc ("
    )
    with pytest.raises(MLHWError, match=r"^--results-dir /proc: cannot write in /proc \("):
        check_writable("/proc", "tiny")
    res = invoke("tables", "--profile", "tiny", "--results-dir", "/proc/ro")
    assert_one_line_error(res, "--results-dir /proc/ro: /proc/ro cannot be created: no folder can be made in /proc")
    # a dry run is refused as the run is: it printed `report: /proc/ro/tiny/` and exit 0 for a run refused with 2
    for args in ([], ["--dry-run"]):
        res = reproduce(light, "--results-dir", "/proc/ro", *args)
        assert_one_line_error(res, "--results-dir /proc/ro: /proc/ro cannot be created: no folder can be made in")
    before = sorted(p.name for p in light.iterdir())
    assert reproduce(light, "--dry-run").exit_code == 0  # the probe of a writable one leaves nothing behind
    assert sorted(p.name for p in light.iterdir()) == before and not (light / "results").exists()


def test_a_profile_folder_that_is_a_link_gets_the_report_where_it_points(light):
    """results/tiny a link to a folder elsewhere (another disk): the report's swap replaced the link with a folder of
    its own, and the folder it pointed to never got the report."""
    (light / "elsewhere").mkdir()
    (light / "results").mkdir()
    (light / "results" / "tiny").symlink_to(light / "elsewhere", target_is_directory=True)
    for _ in range(2):  # and again, over the report it wrote there
        res = reproduce(light, "--force")
        assert res.exit_code == 0, res.output
        assert (light / "results" / "tiny").is_symlink() and (light / "elsewhere" / "REPORT.md").is_file()
    assert sorted(p.name for p in (light / "results").iterdir()) == ["tiny"]
    assert not [p for p in light.iterdir() if p.name.startswith(".elsewhere")]  # no swap's leftovers beside it


def test_a_profile_folder_that_is_a_file_fails_before_any_run(light):
    """results/tiny a plain file: the report would replace it (and left a .tiny.old-PID file behind)."""
    (light / "results").mkdir()
    (light / "results" / "tiny").write_text("mine\n")
    res = reproduce(light)
    assert_one_line_error(res, "--results-dir", str(Path("results") / "tiny"), "is a file, not a folder")
    assert not (light / "mlflow.db").exists()
    assert sorted(p.name for p in (light / "results").iterdir()) == ["tiny"]


def test_a_report_keeps_the_files_that_are_not_its_own(ci_copy, workdir):
    """`mlhw tables` (and reproduce) replace what an earlier report wrote, not a user's notes or extra figure in
    the folder (they were deleted: only check.yaml was carried over); a table of a suite the report no longer has
    is still dropped, as the stamp lists it."""
    folder = workdir / "results" / "ci"
    (folder / "notes.md").write_text("my notes\n")
    (folder / "figures" / "my_extra.png").write_bytes(b"png")
    (folder / "drafts").mkdir()
    (folder / "drafts" / "a.txt").write_text("draft\n")
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    assert (folder / "notes.md").read_text() == "my notes\n" and (folder / "figures" / "my_extra.png").is_file()
    assert (folder / "drafts" / "a.txt").read_text() == "draft\n"
    assert not list(folder.parent.glob(".ci*"))  # no temporary or old folder left beside it
    # a file the last report wrote (its stamp lists it) is the report's: compiled anew or dropped, never kept
    import json

    stamp = json.loads((folder / ".mlhw-plan").read_text())
    assert "tables/svm.csv" in stamp["files"] and "notes.md" not in stamp["files"]
    (folder / "tables" / "gone.csv").write_text("x\n")  # not in the stamp: kept as the user's
    stamp["files"]["tables/old_suite.csv"] = "0"
    (folder / "tables" / "old_suite.csv").write_text("stale\n")
    (folder / ".mlhw-plan").write_text(json.dumps(stamp))
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    assert not (folder / "tables" / "old_suite.csv").exists() and (folder / "tables" / "gone.csv").is_file()
    # a report that is not stamped (missing runs, a failing check) lists its files all the same: a user's table
    # or figure of the report's kinds beside it was taken for the report's and deleted
    stamp = json.loads((folder / ".mlhw-plan").read_text())
    (folder / ".mlhw-plan").write_text(json.dumps({"files": stamp["files"]}))  # as an unsound report leaves it
    (folder / "tables" / "my_notes.md").write_text("mine\n")
    (folder / "figures" / "my_plot.png").write_bytes(b"png")
    (folder / "link.md").symlink_to(folder / "notes.md")
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    assert (folder / "tables" / "my_notes.md").is_file() and (folder / "figures" / "my_plot.png").is_file()
    assert (folder / "link.md").is_symlink() and (folder / "link.md").read_text() == "my notes\n"


def test_a_broken_baseline_stops_the_reproduction_before_any_run(light):
    """The committed results a reproduction is checked against are input too: a check.yaml that is not YAML, or a
    table that is not a CSV, was skipped silently (no verdict, exit 0); now one line names the file, exit 2."""
    tables = light / "results" / "tiny" / "tables"
    tables.mkdir(parents=True)
    (tables / "mlp_full.csv").write_text("lr,test_acc_mean,n\n0.1,0.9,2\n")
    (tables.parent / "check.yaml").write_text("k: [3\n")
    res = reproduce(light)
    assert_one_line_error(res, "results/tiny/check.yaml: line 2 not valid YAML")
    (tables.parent / "check.yaml").write_text("k: -1\n")
    assert_one_line_error(reproduce(light), "check.yaml", "k")
    (tables.parent / "check.yaml").write_text("tables: [mlp_ful]\n")  # a typo failed the gate after every run
    assert_one_line_error(reproduce(light), "results/tiny/check.yaml: tables: 'mlp_ful' is no table of the baseline")
    (tables.parent / "check.yaml").unlink()
    (tables / "mlp_full.csv").write_bytes(b"")
    assert_one_line_error(reproduce(light), "results/tiny/tables/mlp_full.csv: not a readable CSV")
    assert not (light / "mlflow.db").exists() or runs(light, all_lifecycles=True)[1] == []
    assert sorted(p.name for p in (light / "results").rglob("*") if p.is_file()) == ["mlp_full.csv"]


def test_dry_run_writes_and_downloads_nothing(light):
    doc = dict(LIGHT)
    doc["profiles"] = dict(LIGHT["profiles"], mnist={"defaults": {"dataset": "mnist"}})
    (light / "exp.yaml").write_text(yaml.safe_dump(doc))
    outputs = {}
    for profile in ("tiny", "mnist"):
        res = invoke("reproduce", "--profile", profile, "--file", light / "exp.yaml", "--dry-run")
        assert res.exit_code == 0, res.output
        assert "dry run" in res.stdout and "dry run" not in res.stderr  # the plan is the output: `> plan.txt`
        outputs[profile] = res.stdout
    assert "no data" in outputs["mnist"]  # MNIST is not here: listed, not fetched
    assert outputs["tiny"].rstrip().endswith(f"report: {Path('results') / 'tiny'}/")  # where it would go
    partial = invoke("reproduce", "--profile", "tiny", "--file", light / "exp.yaml", "--dry-run", "--set", "epochs=1")
    assert f"report: {Path('results') / 'tiny-partial'}/ (partial: --set or --only;" in partial.stdout, partial.output
    assert not (light / "data").exists() and not (light / "results").exists()
    cache = Path(os.environ["MLHW_CACHE_DIR"])
    assert [p.name for p in cache.iterdir()] == ["stores"]  # not even the fingerprint cache (stores/: conftest's link)
    assert not (light / "mlartifacts").exists()
    if (light / "mlflow.db").exists():
        client, found = runs(light, all_lifecycles=True)
        assert found == [] and client.get_experiment_by_name("mlhw") is None
    assert reproduce(light).exit_code == 0  # and a dry run of a done profile says so
    res = reproduce(light, "--dry-run")
    assert res.exit_code == 0 and "5 runs: 5 done" in res.stdout
    assert len(runs(light)[1]) == 5 + 3
    assert "5 runs: 5 pending" in outputs["tiny"]
    # the mnist profile keeps mlp_full's one seed: four runs, each counted once although none has an identity yet
    assert "4 runs: 4 no data" in outputs["mnist"], outputs["mnist"]


def test_a_dry_runs_no_data_line_names_the_subfolder_that_holds_the_files(light):
    """`--data-dir shared/data` for `shared/data/mnist/`: a single command's error names the folder one level down
    (test_cli_mlp.py); the dry run's "no data" line said only where it looked, and left the student to find it."""
    doc = dict(LIGHT)
    doc["profiles"] = dict(LIGHT["profiles"], mnist={"defaults": {"dataset": "mnist"}})
    (light / "exp.yaml").write_text(yaml.safe_dump(doc))
    write_mnist_idx(light / "data" / "mnist", 400, 200, side=28)  # the suites' subsets fit in it
    args = ("reproduce", "--profile", "mnist", "--file", light / "exp.yaml", "--dry-run", "--no-download")
    res = invoke(*args, "--data-dir", light / "data")
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if x.startswith("no data:"))
    where = light / "data" / "mnist"
    assert line.endswith(f"; the MNIST files are in {where}: --data-dir {where}"), line
    res = invoke(*args, "--data-dir", where)  # the folder it names: the runs are pending, no line
    assert res.exit_code == 0 and "no data" not in res.stdout and "4 runs: 4 pending" in res.stdout, res.output


def test_a_dry_run_names_a_file_in_the_reports_way(light):
    """A dry run writes nothing, but a --results-dir that is a file stops the real run: the dry run says so too
    (it printed the plan, 'report: FILE/tiny/' and exit 0)."""
    (light / "afile").write_text("")
    res = reproduce(light, "--dry-run", "--results-dir", light / "afile")
    assert_one_line_error(res, "afile is a file, not a folder")
    assert (light / "afile").read_text() == ""


def test_sigterm_kills_the_active_run_and_the_next_reproduce_resumes(light):
    """SIGTERM during the first suite's run (one at a time: the SVM suite has not begun): the run and both suite
    parents end KILLED, nothing is written to results/. The next reproduce trains that run again, and deletes the
    SVM suite's stopped parent, which holds nothing; the MLP suite's stays, holding the killed run."""
    suites = {
        "mlp_full": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 120}},
        "svm_soft": LIGHT["suites"]["svm_soft"],
    }
    doc = dict(LIGHT, suites=suites, profiles={"tiny": {"defaults": {"dataset": "digits"}}})
    (light / "exp.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    uri = f"sqlite:///{light}/mlflow.db"
    argv = ["reproduce", "--profile", "tiny", "--file", light / "exp.yaml", "--tracking-uri", uri]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", *map(str, argv), "--jobs", "1"], cwd=light, stderr=subprocess.PIPE, text=True
    )
    try:
        # read SQLite directly: an MLflow client per poll took seconds on a loaded machine, and the run (a few
        # seconds) could start and end between two polls
        running = (
            "select r.run_uuid from runs r join tags t on t.run_uuid = r.run_uuid "
            "where r.status = 'RUNNING' and t.key = 'mlhw.kind' and t.value = 'mlp'"
        )
        ((victim_id,),) = wait_for(lambda: sqlite_rows(light / "mlflow.db", running), proc, every=0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    # the whole stderr on failure: a traceback seen once under load (an unraisable exception at exit?) was cut
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("terminated"), print(err) or err[-4000:]
    client, after = runs_of(uri)
    victim = client.get_run(victim_id)
    assert victim.info.status == "KILLED"
    assert {r.info.status for r in after} == {"KILLED"}  # the suites' parents too: nothing left RUNNING
    stopped = {r.data.tags["mlhw.suite"]: r.info.run_id for r in after if r.data.tags["mlhw.kind"] == "suite"}
    assert victim.data.tags["mlflow.parentRunId"] == stopped["mlp_full"] and len(after) == 3  # the SVM never began
    assert not (light / "results").exists()
    res = invoke(*argv)
    assert res.exit_code == 0, res.output
    assert "1 killed" in res.stderr and "ran 2 of 2 runs in" in res.stderr
    _, final = runs_of(uri)
    done = [r for r in final if r.info.status == "FINISHED" and r.data.tags.get("mlhw.kind") == "mlp"]
    assert len(done) == 1 and done[0].data.tags["mlhw.config_hash"] == victim.data.tags["mlhw.config_hash"]
    assert client.get_run(stopped["svm_soft"]).info.lifecycle_stage == "deleted"
    assert client.get_run(stopped["mlp_full"]).info.status == "KILLED"  # kept: the record of the stopped attempt
    killed = [r for r in final if r.info.status == "KILLED"]
    assert {r.info.run_id for r in killed} == {victim_id, stopped["mlp_full"]}
    parents = [r for r in final if r.data.tags["mlhw.kind"] == "suite" and r.info.status == "FINISHED"]
    assert {r.data.tags["mlhw.suite"] for r in parents} == {"mlp_full", "svm_soft"} and len(final) == 2 + 2 + 2


def start_long_training(workdir, db: str = "mlflow.db", hangup=signal.SIG_DFL) -> subprocess.Popen:
    """`mlhw mlp train` of 100,000 epochs into workdir/db, to be stopped by a signal. `hangup`: how it starts with
    SIGHUP, nohup's SIG_IGN or the system's default (not this test process's: `nohup pytest` ignores it). Its
    metrics are sent every 0.2 s, not every lifecycle.FLUSH_SECONDS (5 s): the tests wait for the first ones."""
    launcher = (
        "import sys; from mlhw import lifecycle; lifecycle.FLUSH_SECONDS = 0.2; "
        "from mlhw.cli import main; sys.argv[0] = 'mlhw'; main()"
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            launcher,
            "mlp",
            "train",
            "--epochs",
            "100000",
            "--tracking-uri",
            f"sqlite:///{workdir / db}",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGHUP, hangup)) if hasattr(signal, "SIGHUP") else None,
    )


@pytest.mark.parametrize(
    "sig, code, said",
    [("SIGTERM", 143, "terminated (SIGTERM)")]
    # a closed terminal or a dropped SSH connection: its default ended the process at once, its run left RUNNING
    # (exit 129) until a later reproduce found the process gone
    + ([("SIGHUP", 129, "hung up (SIGHUP)")] if hasattr(signal, "SIGHUP") else []),
)
def test_sigterm_ends_a_single_run_killed(workdir, sig, code, said):
    uri = f"sqlite:///{workdir}/mlflow.db"
    proc = start_long_training(workdir)
    try:
        # not runs_of: its MlflowClient would create and migrate the database while the command makes its own (a
        # CI run timed out here, the command's stderr unseen)
        logged = "select distinct run_uuid from metrics where key = 'train/loss'"
        ((victim_id,),) = wait_for(lambda: sqlite_rows(workdir / "mlflow.db", logged), proc)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code and "Traceback" not in err, err
    # the message of reproduce ("the next `mlhw reproduce` resumes") is not true of a single command: run again, it
    # trains anew (a user who stopped `cnn compare` after its first variant expected the rerun to go on)
    assert err.strip().splitlines()[-1] == (
        f"{said}: any active run is marked KILLED, finished ones stay FINISHED; run again, this command "
        "starts over (`mlhw reproduce` resumes)"
    ), err
    run = runs_of(uri)[0].get_run(victim_id)
    assert run.info.status == "KILLED" and "train/loss" in run.data.metrics  # what was logged is kept


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_hangup_nohup_ignores_stays_ignored(workdir):
    """A hangup ends runs as SIGTERM does (above), unless SIGHUP is ignored already: `nohup mlhw ...` asks to
    outlive the terminal, and the command goes on."""
    logged = "select distinct run_uuid from metrics where key = 'train/loss'"
    proc = start_long_training(workdir, "nohup.db", hangup=signal.SIG_IGN)
    try:
        wait_for(lambda: sqlite_rows(workdir / "nohup.db", logged), proc)
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None  # nohup's wish kept: still training
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and err.strip().splitlines()[-1].startswith("terminated (SIGTERM)"), err


# --- the ci profile: one reproduction for the session -------------------------------------------------------


def test_ci_profile_end_to_end_sane_numbers(ci_reproduction):
    """The repository's own experiments.yaml, the CI-sized profile: every table, the report, sane ranges."""
    workdir, _ = ci_reproduction
    root = workdir / "results" / "ci"
    names = ["mlp_lr_sweep", "mlp_full", "sgd_vs_adam", "adam_lr", "batchnorm_dropout", "svm", "theory"]
    tables = {n: pd.read_csv(root / "tables" / f"{n}.csv") for n in names}
    for n in ("mlp_lr_sweep", "mlp_full"):
        assert tables[n]["test_acc_mean"].between(0, 1).all()
    assert tables["mlp_full"]["test_acc_mean"].iloc[0] > 0.8  # 5 epochs on digits
    for n in ("sgd_vs_adam", "adam_lr", "batchnorm_dropout"):
        assert tables[n]["val_acc_mean"].between(0, 1).all() and len(tables[n]) == 2
    svm = tables["svm"]
    assert svm.loc[svm["question"].str.startswith("Q1"), "objective"].iloc[0] == 0.0
    assert tables["theory"]["passed"].all() and len(tables["theory"]) == 41
    report = (root / "REPORT.md").read_text()
    assert "not the assignment's" in report and "![" in report and "## Environment" in report
    assert "partial" not in report.splitlines()[0]
    for fig in ("mlp_lr_sweep", "sgd_vs_adam", "adam_lr", "batchnorm_dropout"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 10_000
    files = [p for p in (workdir / "results").rglob("*") if p.is_file()]
    assert {p.stat().st_mode & 0o777 for p in files} == {0o644}


def test_the_report_says_what_each_suite_ran_on_and_with_what(ci_reproduction):
    """## Settings: each suite's data and its sizes as its runs logged them, the settings of experiments.yaml's
    ci profile, what varies, the seeds, and the runs two suites share (one MLflow run, counted twice)."""
    from sklearn.datasets import load_digits

    workdir, _ = ci_reproduction
    settings = (workdir / "results" / "ci" / "REPORT.md").read_text().split("## Settings\n")[1].split("\n## ")[0]
    lines = {line.split("**")[1]: line for line in settings.splitlines() if line.startswith("- **")}
    ci = yaml.safe_load((workdir / "experiments.yaml").read_text())["profiles"]["ci"]["suites"]
    sweep = ci["mlp_lr_sweep"]
    size = f"digits, {sweep['base']['train_size']} train / {sweep['base']['test_size']} test;"
    assert size in lines["mlp_lr_sweep"] and f"epochs {sweep['base']['epochs']}," in lines["mlp_lr_sweep"]
    assert "lr: " + ", ".join(f"{lr:g}" for lr in sweep["grid"]["lr"]) + ";" in lines["mlp_lr_sweep"]
    test = 500  # digits' test split; the rest trains
    assert f"digits, {len(load_digits().target) - test:,} train / {test} test;" in lines["mlp_full"]
    assert (
        "seeds 8, 9." in lines["mlp_full"]
        and f"width {ci['cnn_optimizers']['base']['width']}," in lines["cnn_optimizers"]
    )
    # the two variants that ran, not a grid of batchnorm x dropout; Adam has no momentum
    assert "variants Adam lr=5e-5, no BN/Dropout vs Adam lr=5e-5;" in lines["cnn_batchnorm"]
    assert "batchnorm:" not in lines["cnn_batchnorm"] and "momentum" not in lines["cnn_batchnorm"]
    assert (
        "variants SGD lr=0.005 vs Adam lr=5e-5;" in lines["cnn_optimizers"] and "momentum 0" in lines["cnn_optimizers"]
    )
    # the two-class task's own sizes: every 3 and 8 of digits, split between train and test
    digits = load_digits().target
    found = re.search(r"digits 3 vs 8, (\d+) train / (\d+) test;", lines["svm_soft"])
    assert found and int(found[1]) + int(found[2]) == ((digits == 3) | (digits == 8)).sum(), lines["svm_soft"]
    assert 50 < int(found[2]) < 150  # about 500 / 1797 of the 357
    assert "classes 3 vs 8" not in lines["svm_soft"]  # said once, in the data part
    assert "cnn_adam_lr and cnn_optimizers share 1 run" in settings and "Part 1 (a)" in settings
    assert "± is the sample standard deviation" in settings
    assert "AlexNet here is 0.125 of the paper's width at 67 px" in settings  # ci's width, digits' preset size
    assert "Q1 and Q3 run on digits" not in settings  # said only where Part 1 ran on MNIST


def test_ci_store_holds_suites_sections_and_unique_names(ci_reproduction):
    workdir, _ = ci_reproduction
    client, all_runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    exp = client.get_experiment_by_name("mlhw")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    names = Counter(r.info.run_name for r in all_runs)
    assert len(all_runs) == 12 + 8 and max(names.values()) == 1, names  # 12 distinct runs, 8 suites
    # what sets a run apart from its siblings comes first: the UI's narrow Run Name column showed the suite alone
    assert "SGD lr=0.005 (digits, width 0.125, 1 epoch) · cnn_optimizers" in names, names
    assert (
        "lr=100 (digits 300/100, 3 epochs) · mlp_lr_sweep" in names and "seed 9 (digits, 5 epochs) · mlp_full" in names
    )
    assert "C=1 (digits, 3 vs 8) · svm_soft" in names, names  # a two-class task says its classes
    parents = {r.info.run_id: r for r in all_runs if r.data.tags.get("mlhw.kind") == "suite"}
    assert len(parents) == 8 and {r.data.tags["mlhw.profile"] for r in parents.values()} == {"ci"}
    children = [r for r in all_runs if r.info.run_id not in parents]
    assert all(r.data.tags["mlflow.parentRunId"] in parents for r in children)
    assert all(r.info.status == "FINISHED" for r in all_runs)
    for r in children:
        tags = r.data.tags
        assert tags["mlflow.source.name"] == "mlhw reproduce --profile ci" and tags["mlflow.user"]
        assert len(tags["mlflow.source.git.commit"]) == 40 and tags["mlflow.note.content"]
        # what the run is, then its suite's description (a child copied its suite's "SGD vs Adam" alone)
        suite = tags["mlhw.suite"]
        assert f"one run of {suite} (" in tags["mlflow.note.content"], tags["mlflow.note.content"]
        assert len(tags["mlhw.config_hash"]) == 16
    for r in (r for r in children if r.data.tags["mlhw.kind"] in ("mlp", "cnn")):
        assert {"train/loss", "test/acc", "system/epoch_seconds"} <= set(r.data.metrics)
        assert not {"train_loss", "test_acc", "val_acc", "epoch_seconds"} & set(r.data.metrics)
    cnn = [r for r in children if r.data.tags["mlhw.kind"] == "cnn"]
    assert len(cnn) == 4 and all("val/acc" in r.data.metrics for r in cnn)
    diverged = [r for r in children if "mlhw.diverged_epoch" in r.data.tags]
    assert [float(r.data.params["lr"]) for r in diverged] == [100.0]  # the sweep's lr 100 on digits
    # a suite whose runs live under another parent links them from its description (it looked empty in the UI)
    by_suite = {r.data.tags["mlhw.suite"]: r for r in parents.values()}
    note = by_suite["cnn_adam_lr"].data.tags["mlflow.note.content"]
    (shared,) = [r for r in cnn if r.data.tags["mlhw.suite"] == "cnn_optimizers" and "Adam" in r.info.run_name]
    link = f"(#/experiments/{shared.info.experiment_id}/runs/{shared.info.run_id}?workflowType=machine_learning)"
    assert link in note and "(under cnn_optimizers)" in note, note  # in the Model training view, as `mlhw ui`
    for parent in parents.values():
        suite = parent.data.tags["mlhw.suite"]
        arts = {
            a.path for folder in ("", "tables", "figures") for a in client.list_artifacts(parent.info.run_id, folder)
        }
        assert "plan.json" in arts
        assert any(a.startswith("tables/") and a.endswith(".md") for a in arts), (suite, arts)
        assert any(a.startswith("tables/") and a.endswith(".csv") for a in arts), (suite, arts)
        if suite in ("mlp_lr_sweep", "cnn_optimizers", "cnn_adam_lr", "cnn_batchnorm"):
            assert any(a.startswith("figures/") and a.endswith(".png") for a in arts), (suite, arts)


def test_ci_second_reproduce_is_up_to_date_and_rewrites_nothing(ci_copy, workdir):
    before = snapshot(workdir / "results")
    res = invoke("reproduce", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    assert res.stderr.strip() == f"up to date: 12 runs, profile ci ({Path('results') / 'ci' / 'REPORT.md'})"
    assert snapshot(workdir / "results") == before


def test_a_missing_shared_run_is_counted_once_with_the_suites_it_serves(ci_copy, workdir):
    """A run three suites share (Adam lr=5e-5: Part 2 (a), (b) and (c)'s BN+Dropout variant) is one planned run; its
    loss was reported as 3 runs not finished, where the plan and the README count distinct runs."""
    client, runs = runs_of(ci_copy)
    (shared,) = [r for r in runs if r.data.params.get("lr") == "5e-05" and r.data.params.get("batchnorm") == "True"]
    client.delete_run(shared.info.run_id)
    (plain,) = [r for r in runs if r.data.params.get("lr") == "0.01" and r.data.tags.get("mlhw.kind") == "mlp"]
    client.delete_run(plain.info.run_id)
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    report = (workdir / "results" / "ci" / "REPORT.md").read_text()
    line = next(x for x in report.splitlines() if "not finished" in x)
    assert line.startswith("**2 planned runs are not finished**"), line
    assert line.count("Adam lr=5e-5") == 1 and "mlp_lr_sweep lr=0.01" in line, line
    assert all(s in line for s in ("cnn_optimizers", "cnn_adam_lr", "cnn_batchnorm")), line


def test_the_plan_says_which_earlier_suite_trains_a_suites_shared_runs(ci_copy, workdir):
    """A suite whose runs another suite trains shows no progress line of its own (digits' mlp_full: the sweep's
    lr 0.1); the plan names that suite and how many ("to run 3" then nothing about it, in a walkthrough's log)."""
    res = invoke("reproduce", "--profile", "ci", "--only", "theory", "--force", "--tracking-uri", ci_copy)
    assert res.exit_code == 0, res.output
    rows = {line.split("│")[1].strip(): line for line in res.stderr.splitlines() if line.count("│") > 5}
    assert "cnn_optimizers (1)" in rows["cnn_adam_lr"] and "cnn_optimizers (1)" in rows["cnn_batchnorm"]
    assert "(" not in rows["cnn_optimizers"].split("│")[5] and "trained with" in res.stderr


def test_mlp_sweep_after_reproduce_leaves_the_profiles_report_untouched(ci_copy, workdir):
    """The same rates, seed and sizes as the ci sweep: the single-run command still writes only to MLflow."""
    before = snapshot(workdir / "results")
    res = invoke(
        "mlp",
        "sweep",
        "--lrs",
        "0.01,0.1,100",
        "--epochs",
        3,
        "--train-size",
        300,
        "--test-size",
        100,
        "--tracking-uri",
        ci_copy,
    )
    assert res.exit_code == 0, res.output
    assert snapshot(workdir / "results") == before
    assert sorted(p.name for p in workdir.iterdir()) == ["experiments.yaml", "mlflow.db", "results"]
    res = invoke("reproduce", "--profile", "ci", "--tracking-uri", ci_copy)
    assert res.exit_code == 0 and res.stderr.startswith("up to date: 12 runs")
    assert snapshot(workdir / "results") == before


# --- mlhw ui --------------------------------------------------------------------------------------------------


def test_ui_serves_the_store_on_localhost_and_leaves_no_process(workdir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    tree: set[int] = set()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any("MLflow UI:" in line for line in lines):
            tree |= descendants(proc.pid)
            time.sleep(0.3)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).status == 200
        tree |= descendants(proc.pid)
        assert tree, "the UI runs in a child process"
        groups = {live_processes()[p][1] for p in tree if p in live_processes()}
        # no MLflow job runner (7 huey consumers, ~1.7 GB, for GenAI jobs a browse of runs never starts)
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in tree if Path(f"/proc/{p}/cmdline").exists()]
        assert not any(b"huey" in c for c in cmdlines), cmdlines
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 143, out
    assert f"MLflow UI: http://127.0.0.1:{port}/#/" in out  # printed by mlhw, once the server answers
    # starting, the URL, that the store is new (none here yet), the one click for the UI's view, terminated: the
    # server's lines go to its log
    assert f"{workdir.resolve()}/mlflow.db did not exist: the UI shows a new, empty store" in out
    assert len(out.strip().splitlines()) <= 5 and "Model training" in out, out
    deadline = time.time() + 20
    while time.time() < deadline:
        procs = live_processes()
        left = {p for p in tree if p in procs} | {p for p, (_, pgrp, _) in procs.items() if pgrp in groups}
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"processes left behind: {left}"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


def test_ui_says_when_its_store_is_a_new_one(workdir, monkeypatch):
    """`mlhw ui` in a folder without mlflow.db (not the one the runs were logged in) showed an empty UI and left an
    empty mlflow.db behind, saying nothing: MLflow's server makes the database. It now says so, once the UI is up."""
    from mlhw import ui

    assert ui.new_store_note("sqlite:///mlflow.db") == (
        f"{workdir.resolve()}/mlflow.db did not exist: the UI shows a new, empty store; runs are logged where a "
        "command was run (start `mlhw ui` in that folder, or pass --tracking-uri sqlite:///PATH/mlflow.db)"
    )
    (workdir / "mlflow.db").touch()
    assert ui.new_store_note("sqlite:///mlflow.db") is None
    assert ui.new_store_note("http://127.0.0.1:5000") is None


def test_ui_links_the_experiment_it_is_asked_for(workdir):
    """`mlhw ui` had no --experiment: its link opened mlhw's runs, even for runs logged with --experiment other."""
    from mlhw import ui
    from mlhw.store import Store

    uri = f"sqlite:///{workdir}/mlflow.db"
    other = Store(uri, "other").experiment_id
    assert other is not None and other != Store(uri, "mlhw").experiment_id
    assert ui.experiment_url(uri, 5001, "other") == (
        f"http://127.0.0.1:5001/#/experiments/{other}/runs?workflowType=machine_learning",
        None,
    )
    url, note = ui.experiment_url(uri, 5001, "nope")
    assert url == "http://127.0.0.1:5001/#/?workflowType=machine_learning"
    assert note == f"no experiment 'nope' in {uri} (--experiment names another): the link opens the experiment list"
    assert Store(uri, "nope", create=False).experiment_id is None  # asked, not made
    Store(uri, "mlhw").client.delete_experiment(Store(uri, "mlhw").experiment_id)  # its note says how to restore it
    url, note = ui.experiment_url(uri, 5001, "mlhw")
    assert url == "http://127.0.0.1:5001/#/?workflowType=machine_learning"
    assert note.startswith("--experiment mlhw: deleted in ") and "mlflow experiments restore" in note, note


def test_ui_on_a_port_in_use_is_one_line_not_a_url_to_another_store(workdir):
    """The second server died with 'address already in use' in its log while the first answered /health: mlhw
    printed a URL that opened the other store, and exited 0."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = invoke("ui", "--port", port, "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert_one_line_error(res, f"--port {port}: in use on 127.0.0.1")


def test_ui_killed_with_sigkill_takes_its_server_along(workdir):
    """Even a parent that cannot clean up (SIGKILL): the server gets SIGTERM from the kernel and exits."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", "ui", "--port", str(port), "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = wait_for(lambda: descendants(proc.pid), proc, timeout=60)
        groups = {live_processes()[p][1] for p in server if p in live_processes()}
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        procs = live_processes()
        left = {p for p in server if p in procs} | {p for p, (_, pgrp, _) in procs.items() if pgrp in groups}
        if not left:
            break
        time.sleep(0.2)
    for pid in left:  # do not leak them into the rest of the suite, whatever the verdict
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def test_a_ui_server_whose_parent_died_before_its_prctl_exits():
    """The kernel's SIGTERM at mlhw's death is asked for in the server's preexec_fn, between its fork and its exec:
    a SIGKILL that lands before it (the test above kills `mlhw ui` the moment the server is seen) sends nothing, and
    the server served on, orphaned. Such a child finds another parent there and exits."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    code = (
        "import os, time\n"
        "from mlhw import ui\n"
        "parent = os.getpid()\n"
        "if os.fork() == 0:\n"
        "    while os.getppid() == parent:\n"  # the parent dies between the fork and the preexec_fn
        "        time.sleep(0.01)\n"
        "    ui._die_with_parent(parent)()\n"
        "    print('served on as an orphan', flush=True)\n"
        "    os._exit(0)\n"
        "os._exit(0)\n"
    )
    # the pipe closes when the forked child ends: run() waits for it
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout == "", (res.stdout, res.stderr)


def test_a_report_that_cannot_be_written_keeps_the_finished_runs(light, monkeypatch):
    """The disk fills up while the report is written: the training is not lost, the command says so
    (one line, non-zero exit), and the next reproduce writes the report without training again."""
    import mlhw.report

    real = mlhw.report._write

    def full_disk(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(mlhw.report, "_write", full_disk)
    res = reproduce(light)
    _, after = runs(light)
    work = [r for r in after if r.data.tags.get("mlhw.kind") != "suite"]
    assert len(work) == 5 and {r.info.status for r in work} == {"FINISHED"}
    assert not (light / "results" / "tiny").exists()
    assert res.exit_code not in (0, 2), res.output
    assert isinstance(res.exception, SystemExit), f"uncaught {res.exception!r}: a traceback for the user"
    assert "No space left on device" in res.stderr.strip().splitlines()[-1]
    monkeypatch.setattr(mlhw.report, "_write", real)
    res = reproduce(light)
    assert res.exit_code == 0 and "ran 0 of 0 runs" in res.stderr, res.stderr
    assert (light / "results" / "tiny" / "REPORT.md").is_file()


def test_a_run_of_a_single_command_joins_the_suite_that_uses_it(light):
    """A done run the plan adopts (here from `mlhw mlp train`) kept its old tags and no parent: filtering the UI
    by suite missed it, and the suite's parent run did not hold it."""
    uri = f"sqlite:///{light}/mlflow.db"
    single = invoke("mlp", "train", "--epochs", "2", "--train-size", "300", "--seed", "8", "--tracking-uri", uri)
    assert single.exit_code == 0, single.output
    res = reproduce(light, "--only", "mlp_full")
    assert res.exit_code == 0 and "ran 1 of 1 run in" in res.stderr, res.stderr  # seed 8 was done already
    _, all_runs = runs(light)
    (parent,) = [r for r in all_runs if r.data.tags.get("mlhw.kind") == "suite"]
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["8", "9"]
    adopted = next(r for r in children if r.data.params["seed"] == "8")
    assert adopted.data.tags["mlflow.source.name"] == "mlhw mlp train"  # the single command's run itself
    assert adopted.data.tags["mlhw.suites"] == "mlp_full" and adopted.data.tags["mlhw.profile"] == "tiny"
    again = reproduce(light, "--only", "mlp_full")  # nothing to run: the report is up to date, nothing moves
    assert again.exit_code == 0 and "up to date" in again.stderr, again.stderr


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed exception
def test_a_sigterm_swallowed_by_a_finalizer_still_stops_the_reproduction(light, monkeypatch):
    """A SIGTERM that lands while Python runs a finalizer (SQLAlchemy's, during start-up) raised its exception
    there, where it was "ignored": the reproduction ran every run to the end. The handler's flag stops it."""
    import signal

    import mlhw.plan

    real = mlhw.plan.make_plan

    class Finalized:
        def __del__(self):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # its exception is printed and dropped

    def plan_then_sigterm_in_a_finalizer(*a, **k):
        plan = real(*a, **k)
        Finalized()
        return plan

    monkeypatch.setattr(mlhw.plan, "make_plan", plan_then_sigterm_in_a_finalizer)
    res = reproduce(light)
    assert res.exit_code == 143, res.output
    assert "terminated (SIGTERM)" in res.stderr
    _, after = runs(light)
    assert not [r for r in after if r.data.tags.get("mlhw.kind") != "suite"]  # no run started
    assert not (light / "results").exists()


def test_a_run_live_elsewhere_is_not_pending():
    from mlhw.plan import Plan, Planned

    plan = Plan("p", [Planned(None, "a", "running"), Planned(None, "b", "stale"), Planned(None, "c", "done")])
    assert [p.identity for p in plan.pending()] == ["b"] and plan.counts() == {"running": 1, "stale": 1, "done": 1}


def test_a_suite_parent_says_where_its_shared_runs_are():
    """A run has one parent (its first suite's): digits' mlp_full, whose runs are mlp_lr_sweep's lr = 0.1, was an
    empty parent in the UI; its description now says where they are, and the report keeps the suite's own."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _parent_note
    from mlhw.plan import Plan, Planned

    def planned(suite, identity, label):
        return Planned(SimpleNamespace(suite=suite, label=label), identity)

    entries = [planned("sweep", "a", "lr=0.1"), planned("sweep", "b", "lr=1"), planned("full", "a", "seed 8")]
    entries.append(planned("full", "c", "seed 9"))
    plan = Plan("digits", entries, descriptions={"sweep": "Part 1 (b)", "full": "Part 1 (c)"})
    assert _parent_note(plan, "sweep") == "Part 1 (b)"
    first, note = _parent_note(plan, "full").split("\n\n")
    assert first == "Part 1 (c)" and note.startswith(
        "1 of its 2 runs is a child of digits · sweep, whose run it also is"
    )
    # once the runs exist, each shared one is a link to its page (plan.json names it by config hash alone)
    links = {"seed 8": "#/experiments/1/runs/r8", "seed 9": "#/experiments/1/runs/r9"}
    assert _parent_note(plan, "full", links).split("\n\n")[2] == "- [seed 8](#/experiments/1/runs/r8) (under sweep)"


def test_a_q3_run_is_named_with_its_two_classes_once():
    """A reproduction named Q3's runs 'C=1 (digits) · svm_soft', read as the whole of digits; the single command says
    '3 vs 8'. Its data note says the pair, unless a grid of classes puts it in the label already."""
    from mlhw.config import SoftSVMConfig
    from mlhw.experiments import RunSpec
    from mlhw.plan import Plan, Planned, job_of

    def name(label, classes):
        spec = RunSpec("svm_soft", "svm_soft", "svm.q3", SoftSVMConfig(dataset="digits", classes=classes), label)
        return job_of(Plan("digits", [Planned(spec, "x")]), Planned(spec, "x"), {}).name

    assert name("C=1", (3, 8)) == "C=1 (digits, 3 vs 8) · svm_soft"
    assert name("", (1, 7)) == "svm_soft (digits, 1 vs 7)"
    assert name("classes=[1, 7], C=1", (1, 7)) == "classes=[1, 7], C=1 (digits) · svm_soft"


def test_a_suite_parent_ends_when_its_suites_last_run_did(ci_reproduction):
    """Every suite parent ended when the report was compiled: in the UI, each showed the whole reproduction's
    duration. A parent now ends with the last run of its suite (its shared runs too, which are another's children)."""
    root, _ = ci_reproduction
    _, found = runs_of(f"sqlite:///{root}/mlflow.db")
    parents = [r for r in found if r.data.tags.get("mlhw.kind") == "suite"]
    runs = [r for r in found if r.data.tags.get("mlhw.kind") != "suite"]
    assert len(parents) == 8 and all(p.info.status == "FINISHED" for p in parents)
    for p in parents:
        suite = p.data.tags["mlhw.suite"]
        ends = [r.info.end_time for r in runs if suite in r.data.tags["mlhw.suites"].split(",")]
        assert ends and p.info.end_time == max(ends), suite
        assert p.info.start_time <= min(r.info.start_time for r in runs if suite in r.data.tags["mlhw.suites"])
    assert len({p.info.end_time for p in parents}) > 1  # (they were one: the end of the compile)


def test_a_shared_run_says_every_suite_it_is_a_run_of():
    """A run shared by suites is the child of its first suite's parent alone: its description named that suite
    only (digits' Adam 5e-5 runs read "one run of cnn_optimizers (Part 2 (a) ...)" though the cnn_adam_lr and
    cnn_batchnorm parents link to them as theirs); it now names the others too."""
    from types import SimpleNamespace

    from mlhw.plan import Plan, Planned, _run_note

    def planned(suite, identity, label):
        return Planned(SimpleNamespace(suite=suite, label=label), identity)

    entries = [planned("opt", "adam", "Adam lr=5e-5"), planned("opt", "sgd", "SGD lr=0.005")]
    entries += [planned("lr", "adam", "Adam lr=5e-5"), planned("bn", "adam", "Adam lr=5e-5, BN")]
    entries += [planned("sweep", "a", "lr=0.1"), planned("full", "a", "seed 8"), planned("theory", "t", "")]
    plan = Plan("digits", entries, descriptions={"opt": "Part 2 (a)", "lr": "Part 2 (b)", "sweep": "Part 1 (b)"})
    assert _run_note(plan, entries[0]) == (
        "Adam lr=5e-5: one run of opt (Part 2 (a)); also a run of lr (Part 2 (b)) and bn, whose parent runs link here"
    )
    assert _run_note(plan, entries[1]) == "SGD lr=0.005: one run of opt (Part 2 (a))"  # not shared: as before
    assert _run_note(plan, entries[4]) == (
        "lr=0.1: one run of sweep (Part 1 (b)); also a run of full, whose parent run links here"
    )
    assert _run_note(plan, entries[6]) == "The one run of theory"


def _with_cifar_suite(light):
    """LIGHT plus a CNN suite on CIFAR-10 (the profile's override of the digits default)."""
    exp = yaml.safe_load((light / "exp.yaml").read_text())
    exp["suites"]["cnn_optimizers"] = {
        "kind": "cnn",
        "part": "cnn.a",
        "base": {"dataset": "cifar10", "epochs": 1, "width": 0.125, "image_size": 67},
        "grid": {"variant": ["sgd-0.005", "adam-5e-05"]},
    }
    exp["profiles"]["tiny"]["suites"]["cnn_optimizers"] = {"base": {"dataset": "cifar10"}}
    (light / "exp.yaml").write_text(yaml.safe_dump(exp))


def test_only_without_a_dataset_keeps_the_tables_the_profiles_report_has_of_it(light):
    """--only of every suite but CIFAR-10's, where CIFAR-10 is absent: the committed report's CNN table was
    deleted (the absent dataset excused its suite). Where the report has such a table, the report is partial."""
    _with_cifar_suite(light)
    tables = light / "results" / "tiny" / "tables"
    tables.mkdir(parents=True)
    (tables / "sgd_vs_adam.csv").write_text("variant,n,val_acc_mean,val_acc_std\nadam-5e-05,3,0.71,0.01\n")  # a GPU's
    before = snapshot(light / "results" / "tiny")
    others = ("--only", "svm_soft", "--only", "mlp_lr_sweep", "--only", "mlp_full")
    res = reproduce(light, *others, "--data-dir", light / "nowhere", "--no-download")
    assert res.exit_code == 0, res.output
    assert snapshot(light / "results" / "tiny") == before
    assert "lacks done runs of cnn_optimizers" in " ".join(res.stderr.split())
    assert (light / "results" / "tiny-partial" / "REPORT.md").is_file()


def test_tables_does_not_take_a_partial_only_for_the_profiles_reproduction(light):
    """`mlhw tables` rebuilt results/<profile>/ from an --only run's suite parents (tagged as a full one) and
    replaced the report with that suite alone."""
    assert reproduce(light).exit_code == 0
    before = snapshot(light / "results" / "tiny")
    client, all_runs = runs(light)
    for r in all_runs:  # a fresh store
        client.delete_run(r.info.run_id)
    assert reproduce(light, "--only", "mlp_full").exit_code == 0  # partial: results/tiny-partial/
    _, fresh = runs(light)
    assert {r.data.tags["mlhw.partial"] for r in fresh if r.data.tags.get("mlhw.kind") == "suite"} == {"true"}
    res = invoke(
        "tables",
        "--profile",
        "tiny",
        "--tracking-uri",
        f"sqlite:///{light}/mlflow.db",
        "--results-dir",
        light / "results",
    )
    assert res.exit_code == 2 and "no finished reproduction of this profile" in res.stderr, res.output
    assert "only partial reproductions of it (--only or --set: 1 suite run(s))" in " ".join(res.stderr.split())
    assert snapshot(light / "results" / "tiny") == before


def test_the_way_forward_without_data_leaves_out_every_absent_dataset(light):
    """Two datasets absent: the hint named the suites without the first, and the command it gave failed on the
    second."""
    _with_cifar_suite(light)
    exp = yaml.safe_load((light / "exp.yaml").read_text())
    exp["profiles"]["tiny"]["suites"]["mlp_full"] = {"base": {"dataset": "mnist"}}
    (light / "exp.yaml").write_text(yaml.safe_dump(exp))
    res = reproduce(light, "--data-dir", light / "nowhere", "--no-download")
    assert_one_line_error(
        res, "CIFAR-10", "(absent too: mnist)", "without cifar10 and mnist: --only mlp_lr_sweep --only svm_soft"
    )


def test_a_dry_run_without_the_data_counts_a_shared_run_once(workdir):
    """The paper profile without MNIST and CIFAR-10: 52 distinct runs (5 seeds x 6 rates, 5 full runs, 4 CNN
    variants x 3 seeds, 1 + 3 SVMs, theory), Adam 5e-5 serving three suites counted once, as with the data."""
    repo = Path(__file__).resolve().parents[1]
    (workdir / "empty").mkdir()
    res = invoke(
        "reproduce", "--profile", "paper", "--file", repo / "experiments.yaml", "--dry-run", "--data-dir", "empty"
    )
    assert res.exit_code == 0, res.output
    line = next(x for x in res.stdout.splitlines() if " runs: " in x)
    assert (
        line.startswith(f"{5 * 6 + 5 + 4 * 3 + 1 + 3 + 1} runs: ") and "(6 shared between suites, counted once)" in line
    )


def test_a_unit_that_never_started_ends_at_zero_seconds(capsys):
    """A worker that died took units it never started with it: their end lines read "(-0.0 s)"."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _Reporter
    from mlhw.executors import Event, UnitResult

    rep = _Reporter([[SimpleNamespace(config=SimpleNamespace(epochs=None), name="x")]], 1)
    for _ in range(200):  # (the old line read the clock twice: -0.0 most times, not every time)
        rep.finished = rep.failed = 0
        rep.on_event(Event("end", 0, "A", result=UnitResult(error="a worker process died")))
    lines = capsys.readouterr().err.splitlines()
    # (a failed run is not counted done: it read "1 of 1 done")
    assert set(lines) == {"[run 1 of 1] failed: a worker process died: A (0.0 s; 0 of 1 done, 1 failed)"}, lines[:3]


def test_a_unit_a_dead_lane_never_started_is_said_not_started_not_failed(capsys):
    """A worker SIGKILLed (or out of memory) breaks its lane: the units only that lane could run, and those its pool
    held, never began. Their lines said "failed: a worker process died ... (0.0 s)", and the count "N failed", of
    runs that had not run; now "not started", counted apart from the done and the failed."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _Reporter
    from mlhw.executors import Event, UnitResult

    rep = _Reporter([[SimpleNamespace(config=SimpleNamespace(epochs=None), name=n)] for n in "AB"], 2)
    rep.on_event(Event("end", 0, "A", result=UnitResult(error="a worker process died")))
    why = "once a worker of its lane died (killed or out of memory)"
    rep.on_event(Event("end", 1, "B", result=UnitResult(not_started=True, not_started_why=why)))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "[run 1 of 2] failed: a worker process died: A (0.0 s; 0 of 2 done, 1 failed)",
        f"[run 2 of 2] not started {why}: B (0.0 s; 0 of 2 done, 1 failed, 1 not started)",
    ], lines


def test_the_progress_count_does_not_count_a_failed_run_as_done(capsys):
    """After a failed run the end lines said "2 of 3 done" of one done and one failed: the summary line was right,
    the progress beside it not."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _Reporter
    from mlhw.executors import Event, UnitResult

    rep = _Reporter([[SimpleNamespace(config=SimpleNamespace(epochs=None), name=n)] for n in "ABC"], 3)
    rep.on_event(Event("end", 0, "A", result=UnitResult()))
    rep.on_event(Event("end", 1, "B", result=UnitResult(error="the store failed")))
    rep.on_event(Event("end", 2, "C", result=UnitResult()))
    ends = [line.rsplit("; ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert ends == ["1 of 3 done)", "1 of 3 done, 1 failed)", "2 of 3 done, 1 failed)"]


def test_progress_lines_number_each_unit_as_the_plan_does_whatever_order_they_run_in(capsys):
    """With --jobs 2 units start and end out of order: numbers from the count of finished runs overlapped and jumped
    ("[1-3/12] start mlp_lr_sweep", then "[1-2/12] start mlp_full"). Each unit keeps its place in the plan; an end
    line says how many are done when that is not where the unit ends."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _Reporter
    from mlhw.executors import Event, UnitResult

    job = SimpleNamespace(config=SimpleNamespace(epochs=None), name="x")
    work = [[job] * 3, [job] * 2, [job]]
    rep = _Reporter(work, 6)
    ok = UnitResult()
    for ev in [
        Event("start", 1, "B"),
        Event("start", 0, "A"),
        Event("end", 1, "B", result=ok),
        Event("start", 2, "C"),
        Event("note", 2, "warm-up failed ([bold]x[/]: y)", worker="h:7"),
        Event("end", 2, "C", result=ok),
        Event("end", 0, "A", result=ok),
    ]:
        rep.on_event(ev)
    lines = [re.sub(r"\(\d+\.\d s", "(0.0 s", x) for x in capsys.readouterr().err.splitlines()]
    assert lines == [
        "[runs 4-5 of 6] start B",
        "[runs 1-3 of 6] start A",
        "[runs 4-5 of 6] done: B (0.0 s; 2 of 6 done)",
        "[run 6 of 6] start C",
        "note: worker h:7: warm-up failed ([bold]x[/]: y)",  # a worker's note, its text as it is
        "[run 6 of 6] done: C (0.0 s; 3 of 6 done)",
        "[runs 1-3 of 6] done: A (0.0 s; 6 of 6 done)",
    ]


def test_a_run_s_time_is_counted_from_its_start_in_the_worker_not_from_when_the_parent_heard_of_it(capsys):
    """A worker's start reaches the parent through a queue, as late as its end for a short run: `svm_multiclass`
    printed "(0.0 s; ...)" where MLflow recorded 0.175 s. Each event carries the time it happened."""
    from types import SimpleNamespace

    from mlhw.cli.reproduce import _Reporter
    from mlhw.executors import Event, UnitResult

    job = SimpleNamespace(config=SimpleNamespace(epochs=None), name="x")
    rep = _Reporter([[job]], 1)
    start = Event("start", 0, "svm_multiclass", worker="h:1")
    start.at -= 0.35  # made in the worker 0.35 s before the parent handles it, with the end
    rep.on_event(start)
    rep.on_event(Event("end", 0, "svm_multiclass", result=UnitResult()))
    _, line = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\[run 1 of 1\] done: svm_multiclass \(0\.[34] s; 1 of 1 done\)", line), line


def test_a_stamp_written_before_sound_reports_is_compiled_once_again(light):
    """Before, a report whose theory claim failed was stamped like any other, and the new rule (such a report is
    never "up to date") could not see it: a stamp without `sound` is compiled again, once."""
    assert reproduce(light).exit_code == 0
    stamp = light / "results" / "tiny" / ".mlhw-plan"
    doc = json.loads(stamp.read_text())
    assert doc.pop("sound") is True
    stamp.write_text(json.dumps(doc))
    again = reproduce(light)
    assert again.exit_code == 0 and "up to date" not in again.stderr and "ran 0 of 0" in again.stderr, again.stderr
    assert reproduce(light).stderr.startswith("up to date")


def test_the_live_bars_say_what_they_count(monkeypatch):
    """On a terminal: the bar of a run counted its epochs as a bare '3/10' under the bar of runs' '2/6'. Now
    '3/10 epochs' and '2/6 runs'; a unit without epochs (an SVM, the theory checks) shows no count."""
    from types import SimpleNamespace

    from rich.console import Console

    from mlhw.cli import common
    from mlhw.cli import reproduce as cli
    from mlhw.executors import Event, UnitResult

    console = Console(file=io.StringIO(), force_terminal=True, width=150, color_system=None, record=True)
    monkeypatch.setattr(common, "err", console)
    monkeypatch.setattr(common, "is_terminal", lambda *a: True)
    monkeypatch.setattr(cli, "is_terminal", lambda *a: True)

    def bar_text(rep) -> str:
        rep.bar.refresh()
        return console.export_text(clear=True)

    cnn = SimpleNamespace(config=SimpleNamespace(epochs=10), name="cnn")
    svm = SimpleNamespace(config=SimpleNamespace(), name="svm")
    rep = cli._Reporter([[cnn], [cnn], [svm]], 3)
    with rep:
        rep.on_event(Event("start", 0, "Adam lr=5e-5, seed 0"))
        rep.on_event(Event("epoch", 0, "", epoch=3))
        shown = bar_text(rep)
        assert re.search(r"all\b.*0/3 runs", shown) and re.search(r"Adam lr=5e-5, seed 0.*3/10 epochs", shown), shown
        rep.on_event(Event("end", 0, "Adam lr=5e-5, seed 0", result=UnitResult()))
        rep.on_event(Event("start", 2, "svm_soft"))
        shown = bar_text(rep)
        assert re.search(r"all\b.*1/3 runs", shown), shown
        row = next(line for line in shown.splitlines() if "svm_soft" in line)
        assert "/" not in row.split("svm_soft")[1].split("0:00")[0], row  # no count of epochs it does not have


ONE_CNN = {
    "version": 1,
    "suites": {"cnn_optimizers": tiny_cnn_suite("cnn.a", "adam-5e-05")},
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}}},
}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_reproduce_trains_alexnet_in_the_precision_asked(workdir, precision):
    """reproduce had no --precision: AlexNet trained in bf16 wherever the CPU has native bf16 (AMX, AVX512-BF16),
    and the assignment's fp32 could be had from single commands only."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(ONE_CNN))
    res = reproduce(workdir, "--precision", precision)
    assert res.exit_code == 0, res.output
    (run,) = [r for r in runs(workdir)[1] if r.data.tags.get("mlhw.kind") != "suite"]
    assert run.data.params["precision"] == precision, run.data.params
    other = {"fp32": "bf16", "bf16": "fp32"}[precision]
    res = reproduce(workdir, "--precision", other)  # done: kept as trained, and said so (it was said nowhere)
    assert res.exit_code == 0, res.output
    assert f"note: --precision {other} is for the AlexNet runs trained now; the done ones (1 run) keep" in " ".join(
        res.stderr.split()
    ), res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("up to date: 1 run"), res.stderr


def test_reproduce_compile_trains_alexnet_through_torch_compile_and_says_so(workdir, monkeypatch):
    """reproduce had no --compile: the compiled step's +23% (an H200, 23,489 against 19,095 img/s) was the single
    commands' alone. With it the AlexNet runs train through torch.compile's network and are tagged; a done run stays
    done (compiling is no part of a run's identity), as a note says. (A stand-in for torch.compile: a CPU's Inductor
    compiles C++ for minutes.)"""
    import torch

    compiled = []

    def stand_in(model):
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(torch, "compile", stand_in)
    (workdir / "exp.yaml").write_text(yaml.safe_dump(ONE_CNN))
    res = reproduce(workdir, "--compile")
    assert res.exit_code == 0, res.output
    (run,) = [r for r in runs(workdir)[1] if r.data.tags.get("mlhw.kind") != "suite"]
    assert run.data.tags.get("mlhw.compiled") == "torch.compile" and compiled == ["AlexNet"], (run.data.tags, compiled)
    res = reproduce(workdir, "--compile")
    assert res.exit_code == 0 and compiled == ["AlexNet"], res.output  # nothing trained again
    said = " ".join(res.stderr.split())
    assert "note: --compile is for the AlexNet runs trained now; the done ones (1 run) stay as they were" in said, said


def test_reproduce_refuses_fp16_on_the_cpu_before_anything_exists(workdir):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(ONE_CNN))
    res = reproduce(workdir, "--precision", "fp16", "--device", "cpu")
    assert_one_line_error(res, "--precision fp16 needs a CUDA GPU")
    assert_nothing_created(workdir, f"sqlite:///{workdir}/mlflow.db")


def test_the_precision_choices_of_the_cli_are_the_devices():
    """The CLI's choices are written out (mlhw.device loads torch, which `--help` must not wait for)."""
    import typing

    from mlhw.cli.common import PrecisionMode
    from mlhw.device import PRECISIONS

    assert set(typing.get_args(PrecisionMode)) == set(PRECISIONS)


def test_the_way_on_from_a_set_partial_does_not_promise_its_runs_are_reused():
    """`mlhw tables` after only `reproduce --set epochs=2` said "`mlhw reproduce --profile p` makes a full one (the runs
    an --only one made are not run again)": a --set reproduction's runs are other runs; the full one trains its own."""
    from types import SimpleNamespace

    from mlhw.report import _way_on

    def parent(overrides):
        tags = {"mlhw.partial": "true", "mlhw.overrides": json.dumps(overrides)}
        return SimpleNamespace(info=SimpleNamespace(status="FINISHED"), data=SimpleNamespace(tags=tags))

    only = _way_on("p", [parent({"only": ["mlp_full"], "set": []})])
    assert "the runs an --only one made are not run again" in only, only
    with_set = _way_on("p", [parent({"only": [], "set": ["epochs=2"]})])
    assert "not run again" not in with_set and "runs made with --set are not the profile's" in with_set, with_set


def test_a_partial_report_that_could_not_be_written_names_the_reproduce_that_writes_it(light, monkeypatch):
    """`mlhw tables` compiles the newest full reproduction: for a partial one (--only, --set) the command it named
    said 'no finished reproduction' (or rebuilt results/<profile>/ from an older full one), never this report. The
    same reproduce, run again, writes it: its runs are done, nothing trains."""
    import errno

    from mlhw import report

    real = report.write_report

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_report", full)
    res = reproduce(light, "--only", "svm_soft")
    assert res.exit_code != 0 and "No space left on device" in res.stderr, res.stderr
    line = next(x for x in res.stderr.splitlines() if "No space left on device" in x)
    assert "mlhw tables" not in line, line
    assert "the same `mlhw reproduce` again writes the report" in line, line
    monkeypatch.setattr(report, "write_report", real)
    again = reproduce(light, "--only", "svm_soft")
    assert again.exit_code == 0 and "ran 0 of 0 runs" in again.stderr, again.stderr
    assert (light / "results" / "tiny-partial" / "REPORT.md").is_file(), again.stderr


def test_a_log_says_before_any_run_that_digits_are_not_the_assignments_data(light):
    """A CI log of the digits profile named digits only in run lines and table titles: nowhere did it say that the
    runs are not on MNIST or CIFAR-10 (REPORT.md says it). The plan says it, once, before anything runs."""
    res = reproduce(light)
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    said = [i for i, line in enumerate(lines) if line.startswith("data: digits")]
    assert len(said) == 1 and "(not MNIST or CIFAR-10)" in lines[said[0]], res.stderr
    first_run = next(i for i, line in enumerate(lines) if " start " in line)
    assert said[0] < first_run, res.stderr


def test_the_data_line_of_a_profile_mixing_datasets_says_what_digits_is():
    """The paper profile's plan (MNIST, CIFAR-10 and a digits suite) listed `digits (svm_soft)` beside them and said
    nowhere that its digits are not MNIST, as a digits-only plan does."""
    from types import SimpleNamespace as NS

    from mlhw.cli.reproduce import _data_line

    def entry(suite, dataset):
        return NS(spec=NS(suite=suite, config=NS(dataset=dataset)))

    mixed = NS(entries=[entry("mlp_full", "mnist"), entry("svm_soft", "digits"), entry("svm_soft", "digits")])
    assert _data_line(mixed) == (
        "data: mnist (mlp_full); digits (svm_soft); digits is scikit-learn's embedded 8x8 handwritten digits "
        "(not MNIST or CIFAR-10)"
    )
    assert _data_line(NS(entries=[entry("mlp_full", "mnist")])) == "data: mnist (mlp_full)"
    assert _data_line(NS(entries=[NS(spec=NS(suite="theory", config=NS()))])) is None


def test_a_log_at_a_narrow_width_keeps_each_run_on_one_line(light, monkeypatch):
    """COLUMNS=60 (or 80, where a digits run's end line is 113 characters) broke each run's start and end lines in
    two in a piped log: `[run 6 of 9] start SGD lr=0.005 (digits, width 0.125, 1` / `epoch) · cnn_optimizers`, and a
    grep for a run got half of it. Progress lines, as the verdict, are one line however long; the plan, a table too
    wide for the page, is a line per suite."""
    from mlhw.cli import common

    monkeypatch.setattr(common.err, "width", 30)
    res = reproduce(light)
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    starts = [x for x in lines if re.match(r"\[runs? \d+(-\d+)? of 5\] start ", x)]
    ends = [x for x in lines if re.fullmatch(r"\[runs? \d+(-\d+)? of 5\] done: .+ \(\d+\.\d s; \d of 5 done\)", x)]
    assert len(starts) == len(ends) == 3, res.stderr
    assert any(re.fullmatch(r"ran 5 of 5 runs in \d+\.\d s", x) for x in lines), res.stderr
    assert any(re.fullmatch(r"5 runs: 5 pending.*", x) for x in lines), res.stderr
    # the plan: rich cut the suites' names (`mlp_lr_s…`, what --only takes) to fit its table to the page
    assert "…" not in res.stderr, res.stderr
    assert any(x.startswith("  mlp_lr_sweep: 2 runs, ") for x in lines), res.stderr
    # a dry run's table (stdout) too: a line per run, the suite and the identity whole
    monkeypatch.setattr(common.out, "width", 30)
    dry = reproduce(light, "--dry-run")
    assert dry.exit_code == 0 and "…" not in dry.stdout, dry.stdout
    assert re.search(r"^  mlp_lr_sweep · lr=\S+: digits.*; done; [0-9a-f]{12,}$", dry.stdout, re.M), dry.stdout


def test_a_dry_run_on_a_narrow_page_keeps_its_counts_on_one_line(tiny, monkeypatch):
    """The dry run's counts line wrapped at the page (COLUMNS=60: '52 runs: 47 no data, 5 pending (6 shared between
    suites, ' / 'counted once)') where the plan's own, and each run's line above it, are one line however long."""
    from mlhw.cli import common

    monkeypatch.setattr(common.out, "width", 30)
    dry = reproduce(tiny, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert re.search(r"^\d+ runs: \d+ pending \(\d+ shared between suites, counted once\)$", dry.stdout, re.M), (
        dry.stdout
    )
