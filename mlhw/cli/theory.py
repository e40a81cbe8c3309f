"""`mlhw theory`: every claim of Q1-Q4 checked numerically, one table, one MLflow run."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlhw.cli.common import Experiment, Json, TrackingUri, emit_json, err, handles_errors, out


@handles_errors
def theory(
    digits: Annotated[
        bool,
        typer.Option(
            "--digits/--no-digits", help="Also check Q1 and Q3 on the embedded digits (Q1: all classes; Q3: 3 vs 8)."
        ),
    ] = True,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    as_json: Json = False,
):
    """Check Q1-Q4 numerically: PASS/FAIL per claim; exit 1 if any check fails.

    Q1 multiclass hinge (f* = 0 and zero training error on separable data, hinge >= 0-1),
    Q2 the ReLU network computing max(x1, x2), Q3 the soft SVM (Q3(a), strong duality, KKT, b = 0,
    liblinear), Q4 the softmax cross-entropy gradient (autograd and finite differences).
    """
    from mlhw.data import load_digits_data
    from mlhw.runs import run_theory
    from mlhw.tracking import Tracker

    tracker = Tracker(tracking_uri, experiment)
    checks, run_id = run_theory(tracker, load_digits_data() if digits else None)
    table = Table(title="Theory checks (Q1-Q4)")
    for col in ("Q", "claim", "check", "data", "max error", "tolerance", "result"):
        table.add_column(col, justify="right" if col in ("max error", "tolerance") else "left")
    for c in checks:
        table.add_row(
            c.question,
            c.claim,
            c.check,
            c.data,
            f"{c.max_error:.2e}",
            f"{c.tolerance:.0e}",
            "[green]PASS[/]" if c.passed else "[red bold]FAIL[/]",
        )
        if as_json:
            emit_json(c.row())
    failed = sum(not c.passed for c in checks)
    console = err if as_json else out
    console.print(table)
    console.print(f"{len(checks) - failed} passed, {failed} failed (MLflow run {run_id[:8]})")
    if failed:
        raise typer.Exit(1)
