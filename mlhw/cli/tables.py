"""`mlhw tables`: a profile's tables, figures and REPORT.md compiled again from the tracking store alone."""

from __future__ import annotations

import sys

from mlhw.cli.common import (
    Experiment,
    Profile,
    ResultsDir,
    StdoutFailed,
    TrackingUri,
    err,
    examples,
    handles_errors,
    is_terminal,
    out,
    tracking_hint,
)
from mlhw.layout import profile_folder, table_file

EXAMPLES = examples(
    ("results/digits/ compiled again from the store: runs nothing, reads no dataset", "mlhw tables"),
    ("The ci profile's report", "mlhw tables --profile ci"),
    (
        "From a tracking server, into another folder",
        "mlhw tables --tracking-uri http://HOST:5000 --results-dir DIR",
    ),
)


def scope_said(store, profile: str):
    """The profile's scope in the store (report.scope_from_store), its notes said on stderr: which reproduction it
    took, where the newest ran other code (`mlhw tables` and `mlhw check` alike)."""
    from mlhw.report import scope_from_store

    scope = scope_from_store(store, profile)
    for note in scope.notes:
        err.print(note, highlight=False, markup=False, soft_wrap=True)
    return scope


def print_tables(tables, profile, path, findings=None, store=None) -> None:
    """Each table on stdout (the theory checks as a count: the report holds their rows), the report's answers to
    the assignment's questions (`findings`: panels on a terminal, plain text in a pipe), then where the report is
    and, as each single command ends, where its runs are and the command that browses them (`store`)."""
    from mlhw.tables import to_rich

    for t in tables:
        if t.like == "theory":  # the report has its rows; the terminal gets the verdict
            passed = int((t.display["result"] == "PASS").sum())  # (the exit code: check.self_check_failures)
            out.print(
                f"{t.name}: {passed} of {len(t.display)} checks pass"
                + ("" if passed == len(t.display) else f" [red](see {table_file(path.parent, t.name, 'md')})[/]")
            )
        else:
            out.print(to_rich(t.display, t.title))
    if findings:
        from mlhw import findings as F

        if is_terminal(sys.stdout):  # as progress decides (rich's own check counts FORCE_COLOR as a terminal)
            out.print(F.to_rich(findings))
        else:  # a log: plain lines, no boxes
            out.print(F.to_text(findings), highlight=False, markup=False, soft_wrap=True, end="")
    out.print(f"report: {path}")
    if store is not None:  # (a reproduction's log named the report alone: which store, which experiment?)
        out.print(tracking_hint(store), highlight=False, soft_wrap=True)


# the folder as the options name it: "results/<profile>/" read as a placeholder, and was wrong under --results-dir.
# Stopped before the new folder is swapped in (one rename, which a Ctrl-C waits for), it is as it was
@handles_errors(
    stopped=lambda profile="digits", results_dir="results", **_: (
        f"it starts no run; {profile_folder(results_dir, profile)}/ is as it was"
    ),
    store_failed="it starts no run, and the report's folder is as it was (replaced only once all is read)",
    no_run=None,
)
def tables(
    profile: Profile = "digits",
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    results_dir: ResultsDir = "results",
):
    """Rebuild a profile's tables, figures and REPORT.md from the tracking store alone (runs nothing, reads
    no dataset): the newest full reproduction of the profile that ran this mlhw's code (else the newest, said), as
    its suite parent runs record it.

    Tables: mlp_lr_sweep, mlp_full, sgd_vs_adam, adam_lr, batchnorm_dropout, svm, theory, and one named after
    each suite added to experiments.yaml; each as Markdown, CSV and LaTeX under results/<profile>/tables/, with
    mean ± std and n over seeds.
    """
    from mlhw.cli.validate import restore_report
    from mlhw.layout import check_writable
    from mlhw.report import write_report
    from mlhw.store import Store

    check_writable(results_dir, profile)
    # the report a killed swap left aside, put back and said, as reproduce and check do (write_report would put it
    # back too, in silence)
    restore_report(profile_folder(results_dir, profile))
    store = Store(tracking_uri, experiment, read_only=True)
    scope = scope_said(store, profile)
    from mlhw.plan import stamp_keys

    # the stamp a reproduce of this profile leaves, so that the next one still finds the report up to date
    written = False
    try:
        tables_, path, _, found = write_report(scope, store, results_dir, stamp=stamp_keys(scope))
        written = True
        print_tables(tables_, profile, path, found, store)
    except KeyboardInterrupt as stop:
        if written or getattr(stop, "replaced", None):  # (it said "as it was, or replaced whole": which?)
            stop.stopped = f"it starts no run; {profile_folder(results_dir, profile)}/ is written anew, whole"
        raise
    except StdoutFailed as lost:  # (a full disk under `> file`): the report is whole all the same
        lost.done = f"the report is written ({path}); its tables were not shown"
        raise
