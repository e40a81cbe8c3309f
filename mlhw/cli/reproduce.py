"""`mlhw reproduce`, `mlhw tables` and `mlhw ui`: the main job, its tables and the MLflow UI."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Annotated, Optional

import typer
from rich.table import Table

from mlhw.cli.common import DataDir, Device, Experiment, ResultsDir, TrackingUri, err, handles_errors, out, progress

Profile = Annotated[
    str,
    typer.Option(
        help="Profile of experiments.yaml: digits (embedded data, every part, "
        "< 5 min on a CPU), paper (MNIST + CIFAR-10, a GPU) or ci."
    ),
]
Only = Annotated[
    Optional[list[str]], typer.Option("--only", help="Run only this suite (repeatable), e.g. --only cnn_optimizers.")
]
Set = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="Override a field: KEY=VALUE (value read as "
        "YAML), e.g. epochs=2, mlp_full.lr=0.05, cnn_adam_lr.seeds=[0,1].",
    ),
]
File = Annotated[str, typer.Option("--file", help="The experiments file.")]

STATUS_STYLE = {
    "done": "green",
    "pending": "yellow",
    "failed": "red",
    "killed": "red",
    "stale": "red",
    "running": "magenta",
    "claimed": "magenta",
}
PARALLEL = "Parallel and distributed"


def _plan(
    file, profile, only, sets, device, data_dir, download, results_dir, tracking_uri, experiment, stale_after=60.0
):
    """Validate the file, open the store, load the data and compute every run's hash and status."""
    from mlhw.device import resolve_device
    from mlhw.experiments import expand, load_file
    from mlhw.reproduce import DataCache, plan
    from mlhw.runs import Runtime
    from mlhw.tracking import Tracker

    spec = load_file(file)
    specs = expand(spec, profile, only, sets or [], file)
    runtime = Runtime(device, data_dir, download, results_dir)
    dev = resolve_device(device)
    tracker = Tracker(tracking_uri, experiment, claim_runs=True, stale_after=stale_after)
    return spec, runtime, dev, tracker, plan(specs, tracker, DataCache(runtime))


def _show_plan(planned) -> None:
    table = Table(title="plan")
    for col in ("suite", "run", "status", "config hash"):
        table.add_column(col)
    for p in planned:
        table.add_row(p.spec.suite, p.spec.label, f"[{STATUS_STYLE[p.status]}]{p.status}[/]", p.hash)
    err.print(table)
    counts = {s: sum(p.status == s for p in planned) for s in STATUS_STYLE}
    unique = len({p.hash for p in planned if p.status not in ("done", "running")})
    err.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" ({unique} distinct runs to execute)")


def _compile(profile, planned, tracker, runtime, dev, description):
    from mlhw.report import write_report
    from mlhw.tables import to_rich

    tables, report = write_report(profile, planned, tracker, runtime.results_dir, str(dev), description)
    for t in tables:
        if t.name == "theory":  # 27 rows: the report has them; the terminal gets the verdict
            passed = int((t.display["result"] == "PASS").sum())
            out.print(
                f"theory: {passed} of {len(t.display)} checks pass"
                + ("" if passed == len(t.display) else " [red](see results/" + profile + "/tables/theory.md)[/]")
            )
        else:
            out.print(to_rich(t.display, t.title))
    out.print(f"report: {report}")
    return tables


@handles_errors
def reproduce(
    profile: Profile = "digits",
    only: Only = None,
    set_: Set = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan and exit.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run every planned run again, even the done ones.")] = False,
    file: File = "experiments.yaml",
    device: Device = "auto",
    data_dir: DataDir = "data",
    download: Annotated[
        Optional[bool], typer.Option("--download/--no-download", show_default="auto", help="Download missing datasets.")
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Local worker processes (CPU threads split between them; one "
            "GPU each where there are GPUs). Needs a tracking server.",
            rich_help_panel=PARALLEL,
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            help="local (this machine) or ray (a Ray cluster; pip install 'mlhw[ray]').", rich_help_panel=PARALLEL
        ),
    ] = "local",
    ray_address: Annotated[
        Optional[str],
        typer.Option(help="Ray cluster address, e.g. auto (default: a local Ray instance).", rich_help_panel=PARALLEL),
    ] = None,
    stale_after: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat after which a RUNNING run is taken as dead and run again.",
            rich_help_panel=PARALLEL,
        ),
    ] = 60.0,
):
    """Run every experiment of a profile that is not done yet, then compile the tables and the report.

    Resumable and idempotent: each run is identified by a hash of its resolved config and its data;
    FINISHED runs are skipped, FAILED or KILLED ones run again, and a second invocation does nothing.
    Ctrl-C marks the active run KILLED (exit 130); the next reproduce continues from there.
    Writes results/<profile>/: tables (Markdown, CSV, LaTeX), figures and REPORT.md.
    """
    from mlhw.errors import MLHWError
    from mlhw.reproduce import execute, execute_parallel, execute_ray
    from mlhw.tracking import resolve_uri, sqlite_path

    if executor not in ("local", "ray"):
        raise MLHWError(f"--executor {executor!r}: use local or ray")
    if (jobs > 1 or executor == "ray") and sqlite_path(resolve_uri(tracking_uri)) is not None:
        what = f"--jobs {jobs}" if executor == "local" else "--executor ray"
        raise MLHWError(
            f"{what} needs a tracking server: SQLite takes one writer at a time. Start one with "
            f"`mlflow server --backend-store-uri sqlite:///mlflow.db --workers 1 --host 127.0.0.1 "
            f"--port 5000` and pass --tracking-uri http://127.0.0.1:5000"
        )
    spec, runtime, dev, tracker, planned = _plan(
        file, profile, only, set_, device, data_dir, download, results_dir, tracking_uri, experiment, stale_after
    )
    if force:
        for p in planned:
            p.status = "pending"
    _show_plan(planned)
    if dry_run:
        return
    from mlhw.reproduce import groups_of

    todo = len(groups_of(planned))
    t0 = time.perf_counter()
    with progress() as bar:
        overall = bar.add_task("runs", total=max(todo, 1), info="")
        current = bar.add_task("", total=None, info="", visible=False)

        def on_start(p, n):
            epochs = getattr(p.spec.config, "epochs", None) or 1  # solvers and checks: one step
            label = p.spec.label if n == 1 else f"{n} learning rates"
            bar.reset(current, total=epochs, description=f"{p.spec.suite} {label}", visible=True)

        def on_epoch(epoch, _row):
            bar.update(current, completed=epoch)

        def on_done(p):
            bar.update(current, completed=bar.tasks[current].total)
            bar.advance(overall)
            bar.update(overall, info=p.spec.suite)

        if executor == "ray":
            outcome = execute_ray(planned, tracker, runtime, device, ray_address, stale_after, on_done)
        elif jobs > 1:
            outcome = execute_parallel(
                planned,
                tracker,
                runtime,
                device,
                jobs,
                stale_after,
                on_done,
                lambda label, epoch: bar.update(overall, info=f"{label}: epoch {epoch}"),
            )
        else:
            outcome = execute(planned, tracker, runtime, dev, on_start, on_epoch, on_done)
        bar.update(overall, completed=max(todo, 1))
    err.print(
        f"ran {outcome.ran} runs in {time.perf_counter() - t0:.1f} s"
        + (f", {len(outcome.failed)} failed" if outcome.failed else "")
        + (f", {outcome.claimed} left to another reproduce that owns them" if outcome.claimed else "")
    )
    for label, error in outcome.failed:
        err.print(f"[red]failed[/]: {label}: {error}")
    _compile(profile, planned, tracker, runtime, dev, spec.profiles[profile].description)
    if outcome.failed:
        raise typer.Exit(1)


@handles_errors
def tables(
    profile: Profile = "digits",
    only: Only = None,
    set_: Set = None,
    file: File = "experiments.yaml",
    data_dir: DataDir = "data",
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
):
    """Compile the result tables and REPORT.md of a profile from the runs already in MLflow (runs nothing).

    Tables: mlp_lr_sweep, mlp_full, sgd_vs_adam, adam_lr, batchnorm_dropout, svm, theory; each as
    Markdown, CSV and LaTeX under results/<profile>/tables/, with mean ± std and n over seeds.
    """
    spec, runtime, dev, tracker, planned = _plan(
        file, profile, only, set_, "cpu", data_dir, False, results_dir, tracking_uri, experiment
    )
    missing = sum(p.status != "done" for p in planned)
    if missing:
        err.print(f"[yellow]{missing} planned runs are not done yet[/]: `mlhw reproduce --profile {profile}` runs them")
    _compile(profile, planned, tracker, runtime, dev, spec.profiles[profile].description)


@handles_errors
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    tracking_uri: TrackingUri = None,
):
    """Start the MLflow UI on this project's tracking store, bound to 127.0.0.1; Ctrl-C stops it."""
    from mlhw.tracking import check_uri, resolve_uri

    uri = resolve_uri(tracking_uri)
    check_uri(uri)
    out.print(f"MLflow UI for {uri}: http://127.0.0.1:{port}  (Ctrl-C to stop)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
    )
    try:
        raise typer.Exit(proc.wait())
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
