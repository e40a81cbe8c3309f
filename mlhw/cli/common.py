"""What every command shares: option types, error handling, progress and output."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mlhw.errors import MLHWError

out = Console()  # tables and reports
err = Console(stderr=True)  # progress, so that --json keeps stdout clean

DATA, TRAIN, TRACK, OUTPUT = "Data", "Training", "Tracking", "Output"

DataDir = Annotated[
    str,
    typer.Option(
        "--data-dir",
        envvar="MLHW_DATA_DIR",
        rich_help_panel=DATA,
        help="Folder holding MNIST (idx files or mnist.pkl.gz) or cifar-10-batches-py/.",
    ),
]
Download = Annotated[
    Optional[bool],
    typer.Option(
        "--download/--no-download",
        rich_help_panel=DATA,
        show_default="auto",
        help="Download the dataset (default: only when it is absent and the network works).",
    ),
]
Seed = Annotated[int, typer.Option(help="Seed of subsets, initialisation and data order.", rich_help_panel=TRAIN)]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda[:N].", rich_help_panel=TRAIN)]
TrackingUri = Annotated[
    Optional[str],
    typer.Option(
        "--tracking-uri",
        rich_help_panel=TRACK,
        show_default="$MLFLOW_TRACKING_URI or sqlite:///mlflow.db",
        help="MLflow tracking store: sqlite:///PATH.db or http://HOST:PORT.",
    ),
]
Experiment = Annotated[str, typer.Option(help="MLflow experiment name.", rich_help_panel=TRACK)]
ResultsDir = Annotated[str, typer.Option(help="Where figures and tables are written.", rich_help_panel=OUTPUT)]
Json = Annotated[
    bool,
    typer.Option("--json", rich_help_panel=OUTPUT, help="Print each run's final metrics as a JSON line on stdout."),
]


def handles_errors(fn: Callable) -> Callable:
    """Bad input becomes `error: <one line>` on stderr and exit code 2; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MLHWError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: the active run is marked KILLED", err=True)
            raise typer.Exit(130) from None

    return wrapper


def parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MLHWError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.01,0.1,1") from None
    if not values:
        raise MLHWError(f"{option} is empty: give at least one value")
    return values


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.{digits}g}")
    return str(v)


def emit_json(record: dict) -> None:
    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    typer.echo(json.dumps({k: clean(v) for k, v in record.items()}))
