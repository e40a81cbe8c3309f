"""`mlhw check`: the reproduction gate. The store's current results of a profile against a committed baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlhw.cli.common import PROFILES, Experiment, TrackingUri, err, examples, handles_errors, out

# the gate as CI runs it: `check --help` had no example, where it is the command a pipeline's step is written from
EXAMPLES = examples(
    ("The newest digits reproduction against results/digits/: exit 1 on drift", "mlhw check"),
    ("A CI gate, after `mlhw reproduce --profile ci`: its verdict and exit code", "mlhw check --profile ci"),
    ("Every metric compared, not only what moved", "mlhw check --profile ci --all"),
    ("For a machine: the verdict and every row as JSON on stdout", "mlhw check --profile digits --json"),
    ("Against another baseline folder (its tables/ and check.yaml)", "mlhw check --profile ci --baseline DIR"),
)


def current_tables(store, profile: str) -> tuple[dict, list[str]]:
    """The profile's tables as the store holds them now (the newest full reproduction): name -> numeric table;
    and what in it fails its own check (a theory claim, an SVM's solvers)."""
    from mlhw.check import self_check_failures
    from mlhw.cli.tables import scope_said
    from mlhw.report import build_tables, collect

    scope = scope_said(store, profile)
    done, _ = collect(scope, store)
    return {t.name: t.numeric for t in build_tables(done, store)}, self_check_failures(done)


@handles_errors(
    stopped="it reads the store and the baseline and writes nothing",
    store_failed="it reads the store and writes nothing (no run of it is left RUNNING)",
    no_run=None,
)
def check(
    profile: Annotated[
        str,
        typer.Option(
            metavar="<name>",
            help=f"The profile whose newest full reproduction is checked, of experiments.yaml: {PROFILES}.",
        ),
    ] = "digits",
    baseline: Annotated[
        Optional[str],
        typer.Option(
            help="The baseline folder: its tables/*.csv (mean, std, n; the SVM table one result per row) and "
            "check.yaml (tolerances, chaotic rows, the SVM table's key columns).",
            show_default="results/<profile>",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Show every compared metric, not only what moved.")] = False,
):
    """Compare the tracking store's results of a profile with a committed baseline; exit 1 on drift or a missing
    row, or when a theory claim fails or Q3's primal and dual solvers disagree.

    A metric drifts when |current - baseline| > k * sqrt(std_b^2/n_b + std_c^2/n_c) + floor (k = 3; floor
    0.02 for accuracies, max(0.02, 10%) for losses; set in the baseline's check.yaml). Rows marked chaotic
    there (e.g. lr=1, Adam lr 0.005) are reported but never fail. The SVM table (one result per row) is
    compared too: its objective to 1e-6 (relative), its errors to 0.025. A table, row or metric of the
    baseline that the store's results lack fails as missing, and so does a row of fewer runs than the baseline's.
    """
    from mlhw.check import load_baseline, to_rich, verdict
    from mlhw.errors import path_errors, refuse_empty
    from mlhw.layout import profile_folder
    from mlhw.store import Store

    if baseline is not None:  # ('' read as no --baseline: results/<profile> was checked, a folder not named)
        refuse_empty("--baseline", baseline, str(profile_folder("results", profile)))
    folder = profile_folder("results", profile)
    culprit = f"--baseline {baseline}" if baseline else f"--profile {profile} (its baseline {folder})"
    with path_errors(culprit, baseline or folder):  # (a folder on the way not searchable, a name too long)
        if baseline is None:
            from mlhw.cli.validate import restore_report

            restore_report(folder)
        missing = baseline is None and not folder.exists()
    if missing:  # a misspelt profile said "no baseline here" alone
        from mlhw.errors import MLHWError
        from mlhw.experiments import FILE, default_file, file_words
        from mlhw.report import profiles_of

        path = default_file()
        known = profiles_of(path)
        if known is not None and profile not in known:
            raise MLHWError(
                f"--profile {profile}: {file_words(path)} has no such profile (its profiles: {', '.join(known)}), "
                f"and {folder} holds no baseline"
            )
        if known is None and not Path(FILE).exists():  # (`cd /tmp && uv run --project DIR mlhw check`)
            raise MLHWError(
                f"--profile {profile}: no baseline here ({folder.absolute()} does not exist): run from the project "
                "folder, or pass --baseline DIR"
            )
    with path_errors(culprit, baseline or folder):
        b = load_baseline(baseline or folder)
    if refused := b.other_reproduction(profile):  # before the store is read: no row of it would mean anything
        from mlhw.errors import MLHWError

        raise MLHWError(refused)
    store = Store(tracking_uri, experiment, read_only=True)
    tables, unsound = current_tables(store, profile)
    result = verdict(b, tables, unsound)
    if as_json:
        typer.echo(result.to_json())
    else:
        out.print(to_rich(result, show_all))
    # the verdict, once (the table's title does not repeat it), on one line in a log, however long: a grep gets it
    err.print(result.summary(), highlight=False, markup=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)
