"""`mlhw ui`: the MLflow UI on this project's tracking store."""

from __future__ import annotations

from typing import Annotated

import typer

from mlhw.cli.common import Experiment, TrackingUri, handles_errors, out


@handles_errors(stopped="the MLflow UI server is stopped", store_failed="the UI starts no run", no_run=None)
def ui(
    port: Annotated[
        int | None,
        typer.Option(
            help="Port on 127.0.0.1. A tracking store that is an MLflow server (http://HOST:PORT) is "
            "its own UI: its link is printed and nothing is started.",
            show_default="5000",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
):
    """Start the MLflow UI on this project's tracking store, bound to 127.0.0.1, its link on the experiment's runs;
    Ctrl-C stops it."""
    from mlhw.errors import MLHWError
    from mlhw.store import resolve_experiment
    from mlhw.ui import serve

    if port is not None and not 1 <= port <= 65535:
        raise MLHWError(f"--port {port}: must be 1..65535")
    resolve_experiment(experiment)  # MLFLOW_EXPERIMENT_ID refused before the server starts (its link: a note)
    serve(tracking_uri, port, lambda line: out.print(line, highlight=False, soft_wrap=True), experiment)
