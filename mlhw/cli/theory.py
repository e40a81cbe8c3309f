"""`mlhw theory`: every claim of Q1-Q4 checked numerically, one table, one MLflow run."""

from __future__ import annotations

from typing import Annotated

import typer

from mlhw.cli.common import (
    Experiment,
    Json,
    TrackingUri,
    emit_json,
    err,
    handles_errors,
    is_terminal,
    out,
    prepare,
    progress,
    tracking_hint,
)


@handles_errors
def theory(
    digits: Annotated[
        bool,
        typer.Option(
            "--digits/--no-digits",
            help="Also check Q1 and Q3 on the embedded digits (Q1: all classes; Q3: 3 vs 8).",
        ),
    ] = True,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Check Q1-Q4 numerically: PASS/FAIL per claim; exit 1 if any check fails.

    Q1 multiclass hinge (f* = 0 and zero training error on separable data, hinge >= 0-1),
    Q2 the ReLU network computing max(x1, x2), Q3 the soft SVM (Q3(a), the dual function, strong duality, KKT,
    beta = 0, liblinear), Q4 the softmax cross-entropy gradient (autograd and finite differences).
    """
    from mlhw.config import TheoryConfig
    from mlhw.runs import run_theory
    from mlhw.tables import theory_table, to_rich

    cfg = TheoryConfig(digits=digits)
    source, store, job = prepare(cfg, "theory · Q1-Q4", "theory", "mlhw theory", None, None, tracking_uri, experiment)
    if not is_terminal():  # a log said nothing for the 10-15 s the checks take (the bar below draws nothing there)
        err.print(
            f"theory: checking Q1-Q4 numerically{' (Q1 and Q3 on digits too)' if digits else ''}...", highlight=False
        )
    with progress() as bar:  # on a terminal, a pulsing bar and the time taken: the checks report nothing as they go
        task = bar.add_task("theory Q1-Q4", total=None, info="checking", count=False)
        done = run_theory(job, store, source)
        bar.update(task, total=1, completed=1, info=f"{len(done.result)} checks")
    checks = done.result
    table = theory_table([c.row() for c in checks])
    if as_json:
        for c in checks:  # each line names its run, as the other commands' --json lines do
            emit_json(c.row() | {"run_id": done.run_id})
    failed = sum(not c.passed for c in checks)
    console = err if as_json else out
    console.print(to_rich(table.display, table.title))
    console.print(f"{len(checks) - failed} passed, {failed} failed (MLflow run {done.run_id[:8]})", highlight=False)
    console.print(tracking_hint(store), highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)
