"""`mlhw reproduce`: every run of a profile that is not done yet, then its report and the verdict."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated, Literal, Optional, get_args

import typer

from mlhw.cli import peers
from mlhw.cli.common import (
    DATA,
    RUNS_KILLED,
    STORE_FAILED,
    TRAIN,
    DataDir,
    Device,
    Experiment,
    PrecisionMode,
    Profile,
    ResultsDir,
    StdoutFailed,
    TrackingUri,
    err,
    examples,
    handles_errors,
    is_terminal,
    n_runs,
    out,
    progress,
    say_ended,
    subfolder_hint,
)
from mlhw.cli.tables import print_tables
from mlhw.cli.validate import as_given, check_parallel_options, validate
from mlhw.layout import FIGURES, REPORT, TABLE_FORMATS, TABLES, is_partial, profile_folder, table_file

Only = Annotated[
    Optional[list[str]],
    typer.Option(
        "--only",
        metavar="SUITE",
        help="Run only this suite (repeatable), e.g. --only "
        "cnn_optimizers. The report stays whole when the store holds the other suites' done runs (else it goes "
        "to results/<profile>-partial/); the verdict covers the chosen suites' tables.",
    ),
]
Set = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a field (value read as YAML), e.g. epochs=2, mlp_full.lr=0.05, "
        "cnn_adam_lr.seeds=\\[0,1]. The report goes to results/<profile>-partial/ (a --set of the value the runs "
        "already have changes nothing: it is said and dropped, and the report stays the profile's).",
    ),
]
File = Annotated[
    Optional[str],
    typer.Option(
        "--file",
        help="The experiments file (suites and profiles): a copy of the shipped one, edited, runs your own.",
        show_default="experiments.yaml here, else the copy installed with mlhw",
    ),
]
STATUS_STYLE = {
    "done": "green",
    "pending": "yellow",
    "failed": "red",
    "killed": "red",
    "stale": "red",
    "running": "magenta",
    "no data": "dim",
}
PARALLEL = "Parallel and distributed"


def _run(
    plan, store, source, dev, settings, jobs, executor, ray_address, results_dir, description, pool=None, written=None
):
    """Execute the pending work under the suites' parent runs, then compile the report. Returns the failed units,
    either (tables, report path, what fails its own check) or the one-line error of a report not written, and the
    units not started (a worker of their lane died: the next reproduce runs them).
    `written` (a list) gets the report's folder as soon as it is in place (_compile)."""
    t0 = time.perf_counter()
    from mlhw.lifecycle import check_terminated
    from mlhw.plan import adopt, drop_empty_parents, end_stale_runs, ended_parents

    check_terminated()  # before the suite parents exist: a SIGTERM swallowed during the checks ends it here
    say_ended(end_stale_runs(plan, store, settings.stale_after))
    with contextlib.ExitStack() as stack:
        parents = _suite_parents(stack, plan, store)
        ended = ended_parents(store)
        adopt(plan, store, {s: log.run_id for s, log in parents.items()}, ended)
        drop_empty_parents(plan.profile, store, ended)
        todo, failed, unrun, owned = plan, [], [], [i for i, p in plan.distinct().items() if p.status == "running"]
        beside = bool(owned)  # another reproduce of this profile was at work beside this one
        for round_ in range(1, peers.TAKE_OVER_ROUNDS + 1):
            work, results = _execute(todo, store, source, dev, settings, jobs, executor, ray_address, parents, pool)
            failing = [(u, r) for u, r in zip(work, results) if r.error]
            failed += failing
            ran = sum(len(r.done) for r in results)
            unrun_now = [(u, r) for u, r in zip(work, results) if r.not_started]
            unrun += unrun_now
            unstarted = sum(len(u) for u, _ in unrun_now)
            why = " / ".join(dict.fromkeys(r.not_started_why for _, r in unrun_now))
            # the runs another live process owns: those it claimed first at run time (every run of a unit, or some of
            # an MLP unit that trained the others), and those it was training when this one planned (not in `work`)
            claimed = [i for r in results for i in r.claimed_away]
            owned = list(dict.fromkeys([*claimed, *owned]))
            err.print(
                f"ran {ran} of {n_runs(sum(len(u) for u in work))} in {time.perf_counter() - t0:.1f} s"
                + (f", {sum(len(u) for u, _ in failing)} failed" if failing else "")
                + (f", {len(claimed)} left to another reproduce that owns them" if claimed else "")
                + (f", {unstarted} not started {why}" if unstarted else ""),
                highlight=False,
                soft_wrap=True,
            )
            check_terminated()
            beside = beside or bool(owned)
            if not owned or unstarted or any(r.store_down for _, r in failing):
                break
            # the report waits for them: without them it replaced results/<profile>/ with a half-done one
            peers.wait_for_owners(store, owned, settings)
            # and trains those whose owner stopped before finishing them (killed, crashed, its heartbeat stale): a
            # reproduce beside one that was SIGKILLed ended 0 with a report whose svm table lacked that run
            todo, owned = peers.orphaned(plan, store, owned, settings, take=round_ < peers.TAKE_OVER_ROUNDS), []
            if todo is None:
                break
            t0 = time.perf_counter()  # the round's own time: a run taken over said "ran 1 of 1 run in 23.3 s"
            if pool is not None:
                pool.close()  # the first round's workers have ended: run() starts them again
        if causes := [r.store_cause or r.error for _, r in failed if r.store_down]:
            # the store failed: no report. Asked again, a server gone failed it after its retries, one that hangs after
            # 93 s, and one back by then wrote results/<profile>/ from half the runs (those not started missing). The
            # suite parents are left RUNNING (STORE_DOWN), as the runs were: the next reproduce ends them and resumes
            from mlhw.lifecycle import STORE_DOWN
            from mlhw.store import StoreFailed

            down = StoreFailed(causes[0])
            setattr(down, STORE_DOWN, True)
            raise down
        if beside:
            peers.adopt_from_stopped_peers(plan, store, parents, settings)
        try:
            compiled = _compile(plan, store, results_dir, dev, parents, description, written)
        except OSError as exc:  # the runs are FINISHED in MLflow already: say so, and how to get the report
            # (`mlhw tables` compiles the newest full reproduction only: a partial one's report is reproduce's to write)
            how = (
                "the same `mlhw reproduce` again writes the report (its runs are done: none trains again)"
                if _scope(plan).partial
                else f"`{_tables_command(plan.profile, settings, results_dir)}` rebuilds the report"
            )
            compiled = (
                f"error: writing the report under {results_dir}/ failed ({exc.strerror or exc}); the runs are "
                f"FINISHED in MLflow: {how}"
            )
        check_terminated()  # a SIGTERM that a finalizer swallowed during the report: exit 143, not a verdict of 0
        return failed, compiled, unrun


def _tables_command(profile: str, settings, results_dir, verb: str = "tables", *more: str) -> str:
    """The `mlhw tables` that rebuilds this reproduction's report (or `verb`'s, with `more` words): its store and
    folder where they are not what the command would take by itself (run as given, `mlhw tables --profile ci` read
    another store), its experiment where it is not mlhw or a variable here names another (mlhw.store.experiment_words:
    $MLFLOW_EXPERIMENT_NAME's in full)."""
    import shlex

    from mlhw.store import experiment_words, resolve_uri

    words = ["mlhw", verb, "--profile", profile]
    if settings.uri != resolve_uri(None):
        words += ["--tracking-uri", settings.uri]
    words += experiment_words(settings.experiment)
    if results_dir is not None and str(results_dir) != "results":
        words += ["--results-dir", str(results_dir)]
    return shlex.join([*words, *more])


def _show_plan(plan) -> None:
    from rich.table import Table

    heads = ("suite", "runs", "done", "to run", "trained with", "part of the assignment")
    table = Table(title=f"plan: profile {plan.profile}")
    for col in heads:
        table.add_column(col, justify="right" if col in ("runs", "done", "to run") else "left")
    rows = []
    first = {p.identity: p.spec.suite for p in reversed(plan.entries)}  # a run is trained (and named) by its first
    for suite in plan.suites:
        mine = {p.identity: p for p in plan.entries if p.spec.suite == suite}
        todo = sum(p.todo for p in mine.values())
        # a suite whose runs an earlier suite trains has no progress lines of its own (digits' mlp_full: the
        # sweep's lr 0.1): say whose they are
        earlier = [first[i] for i in mine if first[i] != suite]
        shared = ", ".join(f"{s} ({earlier.count(s)})" for s in dict.fromkeys(earlier))
        rows.append((suite, len(mine), len(mine) - todo, todo, shared, plan.descriptions.get(suite, "")))
        table.add_row(
            suite,
            str(len(mine)),
            str(len(mine) - todo),
            f"[yellow]{todo}[/]" if todo else "0",
            shared,
            plan.descriptions.get(suite, ""),
        )
    if _table_fits(heads, rows, {len(heads) - 1}, err.width):  # (a description wraps)
        err.print(table)
    else:  # a page too narrow for it (COLUMNS=60): rich cut the suites' names (`mlp_lr_s…`, what --only takes) and
        # wrapped each description a word a line; a line per suite says the same, wrapped at its spaces
        err.print(f"plan: profile {plan.profile}", highlight=False, markup=False)
        for suite, runs, done, todo, shared, about in rows:
            with_ = f", trained with {shared}" if shared else ""
            about = f"; {about}" if about else ""
            err.print(
                f"  {suite}: {n_runs(runs)}, {done} done, {todo} to run{with_}{about}", highlight=False, markup=False
            )
    err.print(_counts_line(plan), soft_wrap=True)
    if data := _data_line(plan):
        err.print(data, highlight=False, soft_wrap=True)
    _show_overrides(plan)
    _show_untabled(plan)


def _table_fits(heads, rows, wrapped: set[int], page: int) -> bool:
    """Whether a rich table of these rows fits `page` columns with every column whole but those `wrapped` (given 20
    columns at the narrowest): where it does not, rich cut the whole ones too (`mlp_lr_s…`, what --only takes)."""
    from rich.cells import cell_len

    widths = [max(cell_len(str(c)) for c in [h, *(r[j] for r in rows)]) for j, h in enumerate(heads)]
    needed = sum(min(w, 20) if j in wrapped else w for j, w in enumerate(widths))
    return needed + 3 * len(widths) + 1 <= page  # padding and borders: 3 a column, 1 more


def _data_line(plan) -> str | None:
    """What the planned runs read, said before they run: a CI log of the digits profile named digits only in run
    lines and table titles, and nowhere that these are not the assignment's MNIST and CIFAR-10 numbers (REPORT.md
    says it; the log did not)."""
    suites: dict[str, list[str]] = {}
    for p in plan.entries:
        if dataset := getattr(p.spec.config, "dataset", None):
            suites.setdefault(dataset, [])
            if p.spec.suite not in suites[dataset]:
                suites[dataset].append(p.spec.suite)
    if not suites:
        return None
    what = "scikit-learn's embedded 8x8 handwritten digits (not MNIST or CIFAR-10)"
    if list(suites) == ["digits"]:
        return f"data: digits, {what}: the numbers are not the assignment's"
    # a profile mixing datasets (a paper profile with a digits suite) says it of its digits suites as well
    embedded = f"; digits is {what}" if "digits" in suites else ""
    return "data: " + "; ".join(f"{d} ({', '.join(s)})" for d, s in suites.items()) + embedded


def _show_overrides(plan, console=err) -> None:
    """Which suites each --set reached: a bare `lr=0.5` sets every suite whose runs read an lr (the MLP's; not
    Q1's exact method, nor a CNN suite whose variants set it)."""
    for item in plan.overrides:
        where = f"--set {item.split('=', 1)[0].strip()}"
        suites = sorted({p.spec.suite for p in plan.entries if where in p.spec.where.values()})
        console.print(f"{where}: sets {', '.join(suites) or 'no run'}", highlight=False)


def _show_untabled(plan, console=err) -> None:
    """A suite added to experiments.yaml that no table is built for (`tables.untabled_reason`) runs and is logged,
    but no table or figure shows it: say so before it runs, not after."""
    from mlhw.tables import untabled_reason

    for suite in dict.fromkeys(p.spec.suite for p in plan.entries):
        mine = [p for p in plan.entries if p.spec.suite == suite]
        if not (why := untabled_reason(suite, mine[0].spec.kind, len(mine))):
            continue
        console.print(
            f"suite {suite}: no table shows it ({why}); its runs are logged to MLflow (tags.mlhw.suite = "
            f"'{suite}') and REPORT.md lists its settings",
            highlight=False,
            soft_wrap=True,
        )


def _counts_line(plan) -> str:
    counts = plan.counts()
    shared = len(plan.entries) - len(plan.distinct())
    parts = ", ".join(f"[{STATUS_STYLE.get(s, 'white')}]{n} {s}[/]" for s, n in counts.items())
    return f"{n_runs(len(plan.distinct()))}: {parts}" + (
        f" ({shared} shared between suites, counted once)" if shared else ""
    )


def _show_dry_run(plan, data_dir, results_dir) -> None:
    """The plan on stdout (it is what a dry run is for: `--dry-run > plan.txt`)."""
    from rich.table import Table

    title = f"plan: profile {plan.profile} (dry run: nothing is run or written)"
    table = Table(title=title)
    from mlhw.labels import data_note

    heads = ("suite", "run", "data", "status", "identity")
    for col in heads:
        table.add_column(col)
    rows = []
    for p in plan.entries:
        ident = "-" if p.status == "no data" else p.identity  # its identity needs the files' fingerprint
        cfg = p.spec.config
        data = data_note(cfg) if getattr(cfg, "dataset", None) else "-"
        if getattr(cfg, "classes", None):  # a two-class SVM reads the part of the data in its classes
            data = data.replace(cfg.dataset, f"{cfg.dataset} {cfg.classes[0]} vs {cfg.classes[1]}", 1)
        rows.append((p.spec.suite, p.spec.label, data, p.status, ident))
        table.add_row(p.spec.suite, p.spec.label, data, f"[{STATUS_STYLE.get(p.status, 'white')}]{p.status}[/]", ident)
    # the suite, status and identity whole (what --only takes, what a diff of two dry runs compares), the run's
    # label and its data wrapped; on a page narrower still a line per run
    if _table_fits(heads, rows, {1, 2}, out.width):
        out.print(table)
    else:  # (COLUMNS=60: rich cut the suites' names to `mlp_lr_sw…`, as the plan's table did)
        out.print(title, highlight=False, markup=False, soft_wrap=True)
        for suite, label, data, status, ident in rows:  # a line per run however long: a grep gets it whole
            named = f"{suite} · {label}" if label else suite
            out.print(f"  {named}: {data}; {status}; {ident}", highlight=False, markup=False, soft_wrap=True)
    out.print(_counts_line(plan), soft_wrap=True)  # one line, as the runs' above it and the plan's own
    absent = sorted({p.spec.config.dataset for p in plan.entries if p.status == "no data"})
    if absent:
        out.print(
            f"no data: {', '.join(absent)} not in {data_dir}/ (a run would download it, or stop: --data-dir DIR)"
            + "".join(subfolder_hint(name, data_dir) for name in absent),
            highlight=False,
            soft_wrap=True,
        )
    _show_overrides(plan, out)
    _show_untabled(plan, out)
    folder = _scope(plan).folder(results_dir)
    why = " (partial: --set or --only; the profile's own stays as it is)" if is_partial(folder) else ""
    out.print(f"report: {folder}/{why}", highlight=False, soft_wrap=True)


def _suite_parents(stack, plan, store) -> dict[str, object]:
    """One parent run per suite, holding its plan, tables and figure; open until the report is compiled."""
    import json

    from mlhw.lifecycle import IDENTITY_TAG, RunLogger, standard_tags, tracked_run
    from mlhw.report import OVERRIDES_TAG, PARTIAL_TAG, PROFILE_DESCRIPTION_TAG, PROFILE_SUITES_TAG

    logs = {}
    partial = _partial(plan)
    newest = _finished_parents(plan, store)
    for suite in plan.suites:
        pending = any(p.todo for p in plan.entries if p.spec.suite == suite)
        last = newest.get(suite)
        if not pending and last is not None:
            # nothing new, and it is what `tables` will read; its number is not logged again by each recompile
            logs[suite] = RunLogger(store, last.info.run_id, known=last.data.metrics)
            continue
        part = next(p.spec.part for p in plan.entries if p.spec.suite == suite)
        tags = standard_tags(f"mlhw reproduce --profile {plan.profile}", _parent_note(plan, suite)) | {
            "mlhw.kind": "suite",
            "mlhw.profile": plan.profile,
            "mlhw.suite": suite,
            "mlhw.part": part,
            IDENTITY_TAG: plan.suite_identity(suite),
            PARTIAL_TAG: partial,
            PROFILE_SUITES_TAG: json.dumps(plan.all_suites),
            PROFILE_DESCRIPTION_TAG: plan.description,
        }
        # the datasets of its runs, as their own tag names them: a filter on tags.`mlhw.dataset` missed the parents
        datasets = {getattr(p.spec.config, "dataset", None) for p in plan.entries if p.spec.suite == suite} - {None}
        if datasets:  # (theory's checks name theirs in its table)
            tags["mlhw.dataset"] = ",".join(sorted(datasets))
        if plan.only or plan.overrides:  # what narrowed or changed this reproduction; none: no tag (UI noise)
            tags[OVERRIDES_TAG] = json.dumps({"only": plan.only, "set": plan.overrides})
        name = f"{plan.profile} · {suite}" + (" (partial)" if partial == "true" else "")
        log = stack.enter_context(tracked_run(store, name, {"profile": plan.profile, "suite": suite}, tags))
        log.log_text(_scope(plan).to_json(suite), "plan.json")
        logs[suite] = log
    return logs


def _partial(plan) -> str:
    """A suite parent's `mlhw.partial` tag: --set, or an --only whose report lacks other suites (`mlhw tables` must
    not take it as the profile's)."""
    return str(bool(plan.overrides or plan.report_only)).lower()


def _finished_parents(plan, store, newest_only: bool = True) -> dict[str, object]:
    """suite -> the newest FINISHED parent run of this profile's suite (as full, or as partial, as this
    reproduction) if its identity is the plan's: the parent a recompile keeps. `newest_only=False`: the newest of the
    plan's identity, behind another plan's too (two experiments files with one profile name, in one store)."""
    from mlhw.lifecycle import IDENTITY_TAG
    from mlhw.report import PARTIAL_TAG

    partial, found = _partial(plan), {}
    for r in store.search(
        f"tags.`mlhw.kind` = 'suite' and tags.`mlhw.profile` = '{plan.profile}' and attributes.status = 'FINISHED'"
    ):  # newest first
        suite = r.data.tags.get("mlhw.suite")
        if r.data.tags.get(PARTIAL_TAG, "false") != partial or suite not in plan.suites:
            continue
        if newest_only or r.data.tags.get(IDENTITY_TAG) == plan.suite_identity(suite):
            found.setdefault(suite, r)
    return {s: r for s, r in found.items() if r.data.tags.get(IDENTITY_TAG) == plan.suite_identity(s)}


def _parent_note(
    plan, suite: str, links: dict[str, str] | None = None, adrift: dict[str, tuple[str, str]] | None = None
) -> str:
    """A suite parent's description: the suite's, and where its shared runs are. A run has one parent in MLflow
    (its first suite's): a suite whose runs all serve an earlier one looked empty in the UI (digits' mlp_full,
    whose runs are mlp_lr_sweep's lr = 0.1). links (label -> the run's page, once the runs exist): the shared
    runs, each a link (plan.json names them by config hash alone, which no page of the UI shows)."""
    first: dict[str, str] = {}
    for p in plan.entries:
        first.setdefault(p.identity, p.spec.suite)
    mine = [p for p in plan.entries if p.spec.suite == suite]
    elsewhere = list(dict.fromkeys(first[p.identity] for p in mine if first[p.identity] != suite))
    note = plan.descriptions.get(suite, "")
    if elsewhere:
        where = ", ".join(f"{plan.profile} · {s}" for s in elsewhere)
        shared = [p for p in mine if first[p.identity] != suite]
        note += (
            f"\n\n{len(shared)} of its {len(mine)} runs "
            + (
                f"is a child of {where}, whose run it also is"
                if len(shared) == 1
                else f"are children of {where}, whose runs they also are"
            )
            + " (a run has one parent in MLflow)"
        )
        found = [(p, links[p.spec.label]) for p in shared if links and p.spec.label in links]
        note += (
            ":\n\n" + "\n".join(f"- [{p.spec.label}]({url}) (under {first[p.identity]})" for p, url in found)
            if found
            else "."
        )
    if adrift:  # label -> (its page, its parent's name): its own runs that another command made and holds
        n = len(adrift)
        note += (
            f"\n\n{n} of its runs {'is a child' if n == 1 else 'are children'} of the parent run that trained "
            f"{'it' if n == 1 else 'them'} (another reproduction: one beside this one, an earlier --only of another "
            "suite, another profile's; or a single command; a run has one parent in MLflow):\n\n"
            + "\n".join(f"- [{label or 'its run'}]({url}) (under {parent})" for label, (url, parent) in adrift.items())
        )
    return note


def _adrift(plan, store, suite: str, parent_id: str, records: list[dict]) -> dict[str, tuple[str, str]]:
    """The runs a suite parent reports that are neither its children nor another suite's shared runs: a reproduction
    started beside this one trained them under its own parent of this suite (or another profile's reproduction made them
    first, or an earlier --only of another suite that shares them). label -> (the run's page, its parent's name). Two
    reproductions of one profile at once left two FINISHED parents of each suite, one of them (ci · theory) with no
    child and nothing saying where its run was."""
    from mlflow.exceptions import MlflowException

    first: dict[str, str] = {}
    for p in plan.entries:
        first.setdefault(p.identity, p.spec.suite)
    own = {p.spec.label for p in plan.entries if p.spec.suite == suite and first[p.identity] == suite}
    names: dict[str, str] = {}  # a parent run's name, read once however many of its runs are here
    out = {}
    for r in records:  # (each record says the parent that holds it: read with the run, no search or get_run more)
        if r["label"] not in own or (parent := r.get("parent")) == parent_id:
            continue
        if parent not in names:
            try:
                names[parent] = store.client.get_run(parent).info.run_name if parent else "no parent run"
            except MlflowException:  # a parent `mlflow gc` removed: the link to the run is what matters
                names[parent] = f"run {parent}, no longer in the store"
        out[r["label"]] = (store.run_page(r["run_id"]), names[parent])
    return out


def _scope(plan, planned=None):
    """The report's scope: the plan's entries (or `planned`)."""
    from mlhw.report import Entry, Scope

    entries = [
        Entry(p.spec.suite, p.spec.label, p.identity, p.spec.config.model_dump(mode="json"), p.spec.variant)
        for p in (plan.entries if planned is None else planned)
    ]
    return Scope(plan.profile, entries, plan.descriptions, plan.overrides, plan.report_only)


class _Workers:
    """--jobs N's local workers, started by validate (on_work) as soon as it is known that runs will train (a new
    store: before the data are read; else once the plan is made), so that they start up while the parent still
    checks, creates the store and the suite parents; stopped on the way out if run() never took them (a check that
    failed after the start, Ctrl-C). `requested`: --jobs as given (a number, "auto", None: the profile's); `jobs` is
    the number of processes decided then (1 until then, and where nothing runs)."""

    def __init__(self, settings, requested, local: bool = True, option: str = "--jobs", ray_address=None):
        self.settings, self.requested, self.local = settings, requested, local
        self.ray_address = ray_address  # --executor ray: its cluster, joined here (start) before any run exists
        self.option = option  # where `requested` came from, as the line under the plan names it: --jobs or MLHW_JOBS
        self.jobs, self.why, self.pool, self.started = 1, "", None, False

    def decide(self, configs, profile_jobs) -> None:
        """Sets `jobs` and `why` for runs of these configs (`profile_jobs`: the profile's `jobs`)."""
        from mlhw.executors import auto_jobs

        requested = self.requested if self.requested is not None else profile_jobs
        if not self.local:  # --executor ray: the cluster decides
            self.jobs, self.why = 1, ""
        elif requested == "auto":
            self.jobs, self.why = auto_jobs(configs, self.settings.device)
            self.why = f"{as_given('--jobs' if self.requested is None else self.option, 'auto')}: {self.why}"
        else:  # never more workers than units: each pays its start-up (2 for the one run left after a Ctrl-C: 14.6 s
            # for a run of 6.1 s)
            from mlhw.plan import unit_count

            units = unit_count(configs)
            self.jobs = max(1, min(requested, units))
            given = f"the profile's jobs: {requested}" if self.requested is None else as_given(self.option, requested)
            self.why = "" if self.requested is not None else given
            if self.jobs < requested:
                self.why = f"{given}, but {units} unit{'s' if units != 1 else ''} of work"

    def start(self, configs, profile_jobs) -> None:
        """validate's on_work: the workers for runs of these configs, started once (a new store's at once, others
        once the plan is made)."""
        if self.started:
            return
        from mlhw.executors import PoolExecutor, connect_ray_early

        self.started = True
        self.decide(configs, profile_jobs)
        if not self.local:  # a cluster that refuses the connection is one line, before the suite parents exist
            connect_ray_early(self.ray_address)
            return
        if self.jobs < 2:
            return
        self.pool = PoolExecutor(None, self.settings, self.jobs)
        self.pool.start(configs)

    def said(self) -> str | None:
        """The line under the plan that names the worker processes and why: where the profile or auto chose them
        (an explicit --jobs 1 says nothing)."""
        if not self.why and self.jobs < 2:
            return None
        what = "one process" if self.jobs < 2 else f"{self.jobs} worker processes"
        return what + (f" ({self.why})" if self.why else "")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.close()
        if not self.local and self.started:
            from mlhw.executors import disconnect_ray

            disconnect_ray(self.ray_address)


def _execute(plan, store, source, dev, settings, jobs, executor, ray_address, parents, pool=None):
    """`pool`: --jobs N's executor, its workers started as soon as the plan had runs to train (_Workers)."""
    from mlhw.executors import LocalExecutor, PoolExecutor, RayExecutor
    from mlhw.plan import units

    work = units(plan, {s: log.run_id for s, log in parents.items()})
    total = sum(len(u) for u in work)
    if executor == "ray":
        runner = RayExecutor(store, settings, ray_address)
    elif jobs > 1:
        runner = pool or PoolExecutor(store, settings, jobs)
        runner.store = store
    else:
        runner = LocalExecutor(store, source, dev, settings)
    reporter = _Reporter(work, total)
    with reporter:
        results = runner.run(work, reporter.on_event)
    return work, results


class _Reporter:
    """Progress: a live display on a terminal; otherwise (CI, a pipe) one plain line per run start and end, and
    for a run longer than EPOCH_LINE_EVERY seconds a line at its epochs at most that often (a CPU run of the
    paper's AlexNet was silent for its hour)."""

    EPOCH_LINE_EVERY = 30.0

    def __init__(self, work, total):
        self.work, self.total, self.finished, self.failed, self.unstarted = work, total, 0, 0, 0
        self.started: dict[int, float] = {}
        self.said: dict[int, float] = {}  # a unit's last plain line
        # each unit's runs numbered in the plan's order ("[4-5/12]"): with --jobs N they start and end out of order,
        # and numbers taken from the count of finished runs overlapped ("[1-3/12] start ...", "[1-2/12] start ...")
        self.spans: dict[int, str] = {}
        self.labels: dict[int, str] = {}
        # "[run 39 of 39]", "[runs 1-18 of 39]": a place in the plan, worded as one: "[39/39] start theory", the first
        # line of a --jobs 2 log, read as a count of runs done (the end lines say that count: "19 of 39 done")
        first = 1
        for i, unit in enumerate(work):
            last = first + len(unit) - 1
            span = f"run {first}" if first == last else f"runs {first}-{last}"
            self.spans[i], first = f"{span} of {total}", last + 1
        self.live = is_terminal()
        self.bar = progress() if self.live else None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
            self.overall = self.bar.add_task("all", total=self.total, info="", unit="run")
            self.current = self.bar.add_task("", total=None, visible=False, **self._fields(None))
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    @staticmethod
    def _fields(epochs) -> dict:
        return {"info": "", "unit": "epoch", "count": bool(epochs)}

    def on_event(self, ev) -> None:
        from mlhw.lifecycle import check_terminated

        check_terminated()  # a SIGTERM whose exception a finalizer swallowed stops the reproduction here
        unit = self.work[ev.unit]
        if ev.kind == "start":
            self.started[ev.unit] = ev.at
            self.labels[ev.unit] = ev.label  # (an epoch event carries none)
            if self.live:  # a unit of epochs counts them; an SVM or the theory checks: no count to show
                epochs = getattr(unit[0].config, "epochs", None)
                self.bar.reset(  # (rich's reset replaces the task's fields: each is given)
                    self.current, total=epochs or 1, description=ev.label, visible=True, **self._fields(epochs)
                )
            else:
                # one line however long (COLUMNS=60 broke it in two): a log's grep for a run gets the whole line
                err.print(f"[{self.spans[ev.unit]}] start {ev.label}", highlight=False, markup=False, soft_wrap=True)
        elif ev.kind == "epoch" and self.live:
            self.bar.update(self.current, completed=ev.epoch)
        elif ev.kind == "epoch":
            now = ev.at
            if now - self.said.get(ev.unit, self.started.get(ev.unit, now)) >= self.EPOCH_LINE_EVERY:
                self.said[ev.unit] = now
                epochs = getattr(unit[0].config, "epochs", None)
                count = f"epoch {ev.epoch}" + (f"/{epochs}" if epochs else "")
                elapsed = now - self.started.get(ev.unit, now)
                name = f"[{self.spans[ev.unit]}] {self.labels.get(ev.unit, '')}"
                err.print(f"{name}: {count} ({elapsed:.0f} s)", highlight=False, markup=False, soft_wrap=True)
        elif ev.kind == "note":
            from rich.markup import escape

            err.print(f"[yellow]note[/]: worker {ev.worker}: {escape(ev.label)}")
        elif ev.kind == "end":
            self.finished += len(unit)
            self.failed += len(unit) if ev.result.error else 0
            self.unstarted += len(unit) if ev.result.not_started else 0
            # a unit that never started (its worker died): 0.0, not -0.0
            seconds = max(0.0, ev.at - self.started.get(ev.unit, ev.at))
            r = ev.result
            what = (
                f"failed: {r.error}"
                if r.error
                else f"not started {r.not_started_why}"
                if r.not_started
                else "owned by another process"
                if r.claimed
                else "done"
            )
            if self.live:
                self.bar.update(self.overall, completed=self.finished)  # (the run's name is on the row below)
                if r.error:
                    err.print(f"[red]failed[/]: {ev.label}: {r.error}")
                elif r.not_started:
                    err.print(f"[yellow]not started[/]: {ev.label} ({r.not_started_why})", highlight=False)
            else:
                # the count on every end line: with --jobs N units end out of order ([1-18/39] after [19/39]), and
                # a line that carried it only then read as if the others had lost it
                # a failed run is not done: "6 of 12 done" after a failure read as if it had been
                count = (
                    f"{self.finished - self.failed - self.unstarted} of {self.total} done"
                    + (f", {self.failed} failed" if self.failed else "")
                    + (f", {self.unstarted} not started" if self.unstarted else "")
                )
                err.print(
                    f"[{self.spans[ev.unit]}] {what}: {ev.label} ({seconds:.1f} s; {count})",
                    highlight=False,
                    markup=False,  # "[run 3 of 5]" is no style
                    soft_wrap=True,
                )


def _compile(plan, store, results_dir, dev, parents, description, written=None):
    """The report (results/<profile>/, or -partial) and each suite parent's tables and figure. `written` (a list)
    gets the report's folder once it is in place, before the suite parents are given their part of it."""
    import json

    from mlhw.report import COMPILED_TAG, PROFILE_SUITES_TAG, figure_specs, report_in_run, write_report

    scope = _scope(plan)
    scope.description, scope.expected = description, plan.all_suites
    from mlhw.plan import stamp_keys

    err.print("compiling the report: tables, figures and findings from the runs ...", highlight=False, soft_wrap=True)
    device = "-" if dev is None else str(dev)  # "-": the devices the runs recorded
    try:
        tables, path, done, found = write_report(scope, store, results_dir, device, stamp=stamp_keys(scope))
    except KeyboardInterrupt as stop:  # held through the folder's swap: it is the new report
        if written is not None and getattr(stop, "replaced", None) is not None:
            written.append(scope.folder(results_dir))  # (as the results dir names it: `replaced` is a link's target)
        raise
    if written is not None:
        written.append(path.parent)
    by_suite = {t.name: t for t in tables}
    from mlhw.lifecycle import metric_name, utc_stamp
    from mlhw.tables import headline, table_of

    specs = figure_specs(done)
    parent_links = {}
    if store.experiment_id is not None:
        parent_links = {s: store.run_page(log.run_id) for s, log in parents.items()}
    # every parent this report came from, new or reused, says so: `mlhw tables` takes the profile's suites from
    # the latest (a suite removed from the profile stays out, though its older parent is still FINISHED)
    compiled = {PROFILE_SUITES_TAG: json.dumps(plan.all_suites), COMPILED_TAG: utc_stamp()}
    for suite, log in parents.items():
        kind, runs = next((p.spec.kind for p in plan.entries if p.spec.suite == suite), None), done.get(suite, [])
        t, tags = by_suite.get(table_of(suite, kind, len(runs)) or ""), dict(compiled)
        if t is not None and (best := headline(t)):  # a parent with a number: the UI's charts of parents were empty
            metric, value, tags["mlhw.best"] = best
            if log.known.get(metric_name(metric)) != value:  # a reused parent has it already
                log.log_metrics({metric: value}, step=0)
        if store.experiment_id is not None:  # the shared runs exist now: the description links them
            links = {r["label"]: store.run_page(r["run_id"]) for r in done.get(suite, [])}
            adrift = _adrift(plan, store, suite, log.run_id, done.get(suite, []))
            tags["mlflow.note.content"] = _parent_note(plan, suite, links, adrift)
        log.set_tags(tags)  # (and sends the metric)
        # the parent ends when its suite's last run of this reproduction did, not when the whole report is compiled:
        # every suite parent showed the same duration in the UI (the whole reproduction's, 1.9 min on digits)
        ran = [r["end"] for r in done.get(suite, []) if log.start_time is not None and r["start"] >= log.start_time]
        if ran:
            log.end_time = max(ran)
        if path.is_file():  # the whole report, readable in the UI beside the suite's own tables and figure
            log.log_text(report_in_run(path.read_text(encoding="utf-8"), specs, suite, parent_links), REPORT)
        if t is not None:  # the files the report wrote, as they are on disk
            for ext in TABLE_FORMATS:
                if (f := table_file(path.parent, t.name, ext)).is_file():
                    log.log_artifact(f, TABLES)
        for s, name, _, draw in specs:
            if s != suite:
                continue
            png = path.parent / FIGURES / name  # the report drew it from the same records: log that file
            if png.is_file():
                log.log_artifact(png, FIGURES)
            else:
                log.log_figure(draw, f"{FIGURES}/{name}")
    from mlhw.check import self_check_failures

    return tables, path, self_check_failures(done), found


EXAMPLES = examples(
    ("The digits profile, every part: the default (< 5 min on a CPU)", "mlhw reproduce"),
    ("The plan alone: each run done or to run; nothing is run, downloaded or written", "mlhw reproduce --dry-run"),
    (
        "The assignment's settings: MNIST and CIFAR-10 from DIR (AlexNet wants a GPU)",
        "mlhw reproduce --profile paper --data-dir DIR",
    ),
    (
        "Part 1 and the theory on real MNIST: every suite but CIFAR-10's",
        "mlhw reproduce --profile paper --data-dir DIR --only mlp_lr_sweep \\\n"
        "  --only mlp_full --only svm_multiclass --only svm_soft --only theory",
    ),
    (
        "One suite, shorter: 3 epochs, 2 seeds (its report: results/digits-partial/)",
        "mlhw reproduce --only cnn_optimizers --set epochs=3 \\\n  --set cnn_optimizers.seeds=[0,1]",
    ),
    ("Four local worker processes", "mlhw reproduce --jobs 4"),
)


def _say_verdict(baseline, tables, folder: Path, committed: Path, overrides, profile: str, settings) -> bool:
    """The verdict of the report in `folder` against the results that were in `committed` (mlhw check's rule), on
    stderr; True when they drifted (exit 1). Without a baseline it says why, so that a log without a verdict line is
    not read as a pass."""
    if baseline is None:
        why = "--set changes the runs" if overrides else f"{committed}/ held no tables before this reproduction"
        err.print(f"not checked against a baseline: {why}", highlight=False, soft_wrap=True)
        return False
    from mlhw.check import to_rich, verdict
    from mlhw.experiments import BASELINES

    was, full = f"the baseline that was in {committed}", folder == committed  # (else a partial report's folder)
    shipped = baseline.folder.parent == BASELINES
    if shipped:  # no results/<profile>/ here: the one shipped with mlhw, named as such
        committed = baseline.folder
        was = f"the baseline shipped with mlhw ({committed})"
    result = verdict(baseline, {t.name: t.numeric for t in tables})
    drifted = not result.passed
    # the rows, their numbers and tolerances: the log of a failed CI job named the row alone, and `mlhw check` after
    # it compares with these new results (it passes): `git diff` was the only way
    if drifted:
        err.print(to_rich(result, all_option=False))  # (no --all here: the title named `check`'s)
    err.print(f"against {was}: {result.summary()}", highlight=False, soft_wrap=True)
    if drifted and folder == committed:  # it holds this reproduction now: version control has the old one
        err.print(
            f"[red]not reproduced[/]: {committed} now holds these results; `{_git_diff(committed)}` shows what "
            "moved, commit it if the change is intended (exit 1)",
            soft_wrap=True,
        )
    elif drifted and shipped:  # no version control holds the shipped results: the command that shows them again
        again = _tables_command(profile, settings, None, "check", "--baseline", str(committed))
        err.print(
            f"[red]not reproduced[/]: {folder} differs from {committed} (exit 1); `{again}` compares them again",
            soft_wrap=True,
        )
    elif drifted:
        err.print(f"[red]not reproduced[/]: {folder} differs from {committed} (exit 1)", soft_wrap=True)
    if shipped and full and baseline.policy_file is not None:  # the folder's next checks: gated as the shipped one
        from mlhw.report import carry_policy

        if carry_policy(baseline.policy_file, folder):
            err.print(
                f"{folder}/{baseline.policy_file.name}: the shipped baseline's tolerances, copied for the next checks",
                highlight=False,
                soft_wrap=True,
            )
    return drifted


def _git_diff(committed: Path) -> str:
    """The `git diff` that shows what a reproduction moved in `committed`'s tables, quoted for the shell as the
    other commands mlhw suggests are (`--results-dir 'my results'` gave `git diff my results/ci/tables`, which git
    read as two paths, neither of them the tables)."""
    import shlex

    return shlex.join(["git", "diff", f"{committed}/tables"])


def _stopped_after_report(folder, committed, baseline) -> str:
    """What a signal that came once the report was in place, before its verdict was said, left: the folder is the new
    report, and the results it replaced were never compared with it. It said "the next `mlhw reproduce` resumes",
    which then found the report up to date (or checked it against itself) and exited 0: a drift from the committed
    baseline, which this reproduction would have failed with exit 1, was never said. The baseline shipped with mlhw
    (a first reproduction of the installed file) replaced nothing: it is named, with no `git diff` of a folder that
    held no results."""
    from mlhw.experiments import BASELINES

    said = f"{RUNS_KILLED}; {folder}/ was already written anew, whole"
    if baseline is None:
        return said
    if baseline.folder.parent == BASELINES:
        return f"{said}, and was not checked against the baseline shipped with mlhw ({baseline.folder})"
    if folder == committed:
        return (
            f"{said}, and was not checked against the results it replaced (the next `mlhw reproduce` compares "
            f"with the new ones): `{_git_diff(committed)}` shows what moved"
        )
    return f"{said}, and was not checked against {committed}/"


@handles_errors(
    stopped=f"{RUNS_KILLED}; the next `mlhw reproduce` resumes",
    store_failed=f"{STORE_FAILED} (the next `mlhw reproduce` ends them and resumes)",
)
def reproduce(
    ctx: typer.Context,
    profile: Profile = "digits",
    only: Only = None,
    set_: Set = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and exit: nothing is run, downloaded or written.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Run every planned run again, even the done ones.")] = False,
    file: File = None,
    data_dir: DataDir = "data",
    download: Annotated[
        Optional[bool],
        typer.Option(
            "--download/--no-download", show_default="auto", help="Download missing datasets.", rich_help_panel=DATA
        ),
    ] = None,
    device: Device = "auto",
    precision: Annotated[
        PrecisionMode,
        typer.Option(
            help="AlexNet's: auto, bf16, fp16 or fp32 (auto: bf16 where the hardware has native bf16, fp16 + loss "
            "scaling on older GPUs, else fp32). Not part of a run's identity, like the device: runs done in another "
            "precision stay done (--force trains them again).",
            metavar=f"<{'|'.join(get_args(PrecisionMode))}>",
            rich_help_panel=TRAIN,
        ),
    ] = "auto",
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="AlexNet's full batches through torch.compile's network, captured in the CUDA graph on a GPU: "
            "+23% img/s on an H200, after 25-30 s of compilation (a GPU worker of --jobs N pays it in its warm-up, "
            "before its first run; --jobs 1 and a CPU worker in their first AlexNet run; each again for another "
            "network: without BatchNorm + Dropout): worth it for runs of millions of images, not for the "
            "paper profile's runs of seconds. Not part of a run's identity: done runs stay done. The runs say it in "
            "their tag mlhw.compiled.",
            rich_help_panel=TRAIN,
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    results_dir: ResultsDir = "results",
    jobs: Annotated[
        Optional[str],
        typer.Option(
            metavar="N|auto",
            envvar="MLHW_JOBS",
            show_default="the profile's jobs, else auto",
            help="Local worker processes, CPU threads split between them (1: everything in this process). With "
            "GPUs (--device auto): one worker per GPU, and the workers beyond the GPUs run on the CPU and take all "
            "but AlexNet (on one GPU, --jobs 2 trains Part 1 on the CPU beside AlexNet). auto: workers only for a "
            "plan of two long runs or more, AlexNet's or, without a GPU, Part 1's of 20,000 SGD steps or more (as on "
            "MNIST at its settings; the rest takes less than their start-up); then, where a GPU is, one per GPU and "
            "on the CPU one for the SVMs and theory and one per long Part 1 unit, three at most (three sharing the "
            "GPU with --device cuda), else two on a CPU of two or more cores. "
            "From --jobs, else MLHW_JOBS, else the profile's jobs in experiments.yaml, else auto. On a SQLite store "
            "the workers' MLflow calls go through one writer process, one at a time.",
            rich_help_panel=PARALLEL,
        ),
    ] = None,
    executor: Annotated[
        Literal["local", "ray"],
        typer.Option(
            help="local (this machine) or ray (a Ray cluster; pip install 'mlhw\\[ray]').", rich_help_panel=PARALLEL
        ),
    ] = "local",
    ray_address: Annotated[
        Optional[str],
        typer.Option(help="Ray cluster address, e.g. auto (default: a local Ray instance).", rich_help_panel=PARALLEL),
    ] = None,
    stale_after: Annotated[
        float,
        typer.Option(
            help="Seconds without a heartbeat after which a RUNNING run is taken as dead and run again (one whose "
            "process is gone from this machine is dead at once).",
            rich_help_panel=PARALLEL,
        ),
    ] = 60.0,  # claims.STALE_SECONDS (not imported: it loads mlhw.store, 30 ms a start; a test keeps them equal)
):
    """Run every experiment of a profile that is not done yet, then compile the tables and the report.

    Resumable and idempotent: each run is identified by a hash of its resolved config, its data and the code
    that computes it (edit the backprop, and Part 1 and the theory checks run again); FINISHED runs are skipped,
    FAILED or KILLED ones run again, and a second invocation does nothing.
    Ctrl-C, SIGTERM or a hangup (SIGHUP, unless ignored: nohup) marks the active runs KILLED (exit 130 / 143 /
    129); the next reproduce continues. So does a
    tracking store that fails (a server gone, a full disk): no unit starts after the one it failed.
    Writes results/<profile>/: tables (Markdown, CSV, LaTeX), figures and REPORT.md; each suite is also a
    parent run in MLflow holding its tables and figure. Ends with the verdict against the results it replaced
    (the committed baseline, mlhw check's rule): exit 1 when they drifted, when a run failed, or when a theory
    check fails.
    """
    from mlhw.executors import Settings
    from mlhw.experiments import FILE, default_file
    from mlhw.store import resolve_experiment, resolve_uri

    if file is None:
        file = default_file()
        if file != FILE:  # which file ran, and how to run another
            err.print(
                f"experiments file: {file}, the copy installed with mlhw (no {FILE} here; copy it and pass --file to "
                "change it)",
                highlight=False,
                soft_wrap=True,
            )
    uri = resolve_uri(tracking_uri)
    # the line under the plan and an error name MLHW_JOBS where the variable, not --jobs, gave the number
    option = "MLHW_JOBS" if getattr(ctx.get_parameter_source("jobs"), "name", "") == "ENVIRONMENT" else "--jobs"
    requested = check_parallel_options(executor, jobs, stale_after, uri, ray_address, option)
    # the workers (a Ray cluster's, whose machines may not have the variable) get the name $MLFLOW_EXPERIMENT_NAME
    # gave; validate's store resolves it again from `experiment`, and names the variable in its errors
    name = resolve_experiment(experiment)
    settings = Settings(
        uri, name, data_dir, download, device, precision, compile=compile, stale_after=stale_after, force=force
    )
    with _Workers(settings, requested, local=executor == "local", option=option, ray_address=ray_address) as workers:
        from mlhw import fingerprint_cache

        with fingerprint_cache.read_only() if dry_run else contextlib.nullcontext():  # a dry run writes nothing
            spec, source, store, plan, baseline = validate(
                file,
                profile,
                only,
                set_,
                device,
                data_dir,
                download,
                results_dir,
                uri,
                experiment,
                stale_after,
                dry_run,
                force,
                workers.start,
                data_dir_given=getattr(ctx.get_parameter_source("data_dir"), "name", "") == "COMMANDLINE",
                precision=precision,
            )
        if force:  # --only's runs (and each entry of a run they share with another suite): the others are reported
            chosen = {p.identity for p in plan.entries if not plan.only or p.spec.suite in plan.only}
            for p in plan.entries:
                if p.identity in chosen:
                    p.status = "pending"
        if dry_run:
            _show_dry_run(plan, data_dir, results_dir)
            workers.decide([p.spec.config for p in plan.pending()], plan.jobs)
            if plan.pending() and workers.said():
                out.print(f"to train in {workers.said()}", highlight=False, soft_wrap=True)
            return
        kept = [p for p in plan.distinct().values() if p.spec.config.kind == "cnn" and p.status == "done"]
        # runtime choices, not in the identity: asked for, yet the done runs stay as they were trained
        asked = {f"--precision {precision}": "keep the precision they were trained in"} if precision != "auto" else {}
        asked |= {"--compile": "stay as they were trained"} if compile else {}
        for option, kept_as in asked.items() if kept else ():
            err.print(
                f"note: {option} is for the AlexNet runs trained now; the done ones ({n_runs(len(kept))}) {kept_as} "
                "(--force trains them again)",
                highlight=False,
                soft_wrap=True,
            )
        folder = _scope(plan).folder(results_dir)
        from mlhw.report import changed_files

        changed = changed_files(folder, plan.suite_keys(), plan.all_suites) if not plan.pending() else None
        if changed == []:
            from mlhw.plan import end_stale_runs

            say_ended(end_stale_runs(plan, store, settings.stale_after))  # a killed reproduction's: RUNNING for ever
            # (another plan's newer parents, of a second file with this profile's name, are no reason to compile)
            unfinished = [s for s in plan.suites if s not in _finished_parents(plan, store, newest_only=False)]
            if not unfinished:
                err.print(
                    f"up to date: {n_runs(len(plan.distinct()))}, profile {profile} ({folder / REPORT})",
                    highlight=False,
                )
                return
            # stopped after its report was in place: 'up to date' for ever, while `mlhw tables` and `check` found
            # no finished reproduction and sent the user back here
            err.print(
                f"{folder}/ is whole, but the reproduction that wrote it stopped before its suite parent runs "
                f"finished ({', '.join(unfinished)}): compiled again from the store",
                highlight=False,
                soft_wrap=True,
            )
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            err.print(
                f"{folder}/: {shown} {'differs' if len(changed) == 1 else 'differ'} from what the last reproduction "
                "wrote (edited or deleted): compiled again "
                "from the store, and checked against the files as they are now",
                highlight=False,
                soft_wrap=True,
            )
        committed = profile_folder(results_dir, profile)  # the baseline: --only compares its suites' tables with it
        _show_plan(plan)
        jobs = workers.jobs
        if workers.said():
            err.print(workers.said(), highlight=False)
        if plan.only and plan.rest_missing and not plan.overrides:
            err.print(
                f"--only: the store lacks done runs of {', '.join(plan.rest_missing)}, so the report covers "
                f"{', '.join(plan.only)} alone and goes to {folder}/ ({committed}/ stays as it is; a full "
                "`mlhw reproduce` writes it)",
                highlight=False,
                soft_wrap=True,
            )
        # the device of this process's runs (--jobs 1); the workers resolve their own, and the report then names
        # the devices their runs recorded (lanes: a GPU and the CPU). Not resolved here, the parent never imports
        # torch on --jobs N (3.1 s of an H100 machine's start-up with --jobs 2, before the executor started).
        dev = None
        if jobs == 1 and executor != "ray":
            from mlhw.device import resolve_device

            dev = resolve_device(device)
        written: list[Path] = []  # the report's folder, once in place (it replaced the results it is checked against)
        try:
            failed, compiled, unrun = _run(
                plan,
                store,
                source,
                dev,
                settings,
                jobs,
                executor,
                ray_address,
                results_dir,
                spec.profiles[profile].description,
                workers.pool,
                written,
            )
            if isinstance(compiled, str):  # the report could not be written; the runs are safe
                err.print(compiled, highlight=False, soft_wrap=True)
                raise typer.Exit(1)
            tables, path, unsound, found = compiled
            lost = None
            try:
                print_tables(tables, profile, path, found, store)
            except StdoutFailed as e:  # a full disk under `> file`: the verdict (stderr) is still said, then this
                lost = e
            drifted = _say_verdict(baseline, tables, path.parent, committed, plan.overrides, profile, settings)
        except KeyboardInterrupt as stop:  # after the report was in place and before its verdict was said
            if written:
                stop.stopped = _stopped_after_report(written[0], committed, baseline)
            raise
        if failed:
            for unit, r in failed:
                err.print(f"[red]failed[/]: {unit[0].name}: {r.error}")
        if unrun:  # missing from the report as a failure's runs are, and as much a reason for exit 1
            n = sum(len(unit) for unit, _ in unrun)
            err.print(
                f"[yellow]not started[/]: {n_runs(n)} {unrun[0][1].not_started_why}; the next `mlhw reproduce` runs "
                f"{'it' if n == 1 else 'them'} (exit 1)",
                highlight=False,
                soft_wrap=True,
            )
        for why in unsound:  # a theory claim that does not hold, two SVM solvers that disagree: CI must see it
            err.print(f"[red]failed its own check[/]: {why} (exit 1)", highlight=False, soft_wrap=True)
        if lost is not None:  # the last line, exit 1: the work is done, what was printed is not whole
            lost.done = f"the runs are done and the report is written ({path}); its tables were not shown"
            raise lost
        if failed or unrun or drifted or unsound:
            raise typer.Exit(1)
