"""The plan of `mlhw reproduce`: every run of a profile with its identity and where it stands.

A run is identified by `config.identity` (its resolved config, the fingerprint of its dataset and the digest of
the code that computes it), the `mlhw.config_hash` tag every tracked run carries. A FINISHED run with that
identity is done; FAILED, KILLED or stale RUNNING runs (no heartbeat) run again; a live RUNNING run belongs to
another process and is left to it. A run shared by several suites (Adam 5e-5 with BatchNorm serves 2a, 2b and
2c) has one identity and runs once. Counts are always of distinct runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from mlhw import claims
from mlhw.claims import by_identity
from mlhw.config import identity
from mlhw.experiments import RunSpec
from mlhw.labels import data_note
from mlhw.runs import DataSource, Job
from mlhw.store import Store

STATUS = {"FINISHED": "done", "FAILED": "failed", "KILLED": "killed", "STALE": "stale", "RUNNING": "running"}


@dataclass
class Planned:
    spec: RunSpec
    identity: str
    status: str = "pending"  # done | pending | failed | killed | stale | running (elsewhere)
    run_id: str | None = None  # the FINISHED run, or the unfinished one this replaces
    tags: dict[str, str] = field(default_factory=dict)  # that run's tags

    @property
    def todo(self) -> bool:
        return self.status not in ("done", "running", "no data")


@dataclass
class Plan:
    profile: str
    entries: list[Planned]
    descriptions: dict[str, str] = field(default_factory=dict)  # suite -> description
    overrides: list[str] = field(default_factory=list)  # --set items
    only: list[str] = field(default_factory=list)
    all_suites: list[str] = field(default_factory=list)  # every suite of the profile, chosen or not
    description: str = ""  # the profile's
    rest: list[Planned] = field(default_factory=list)  # --only: the profile's other suites (not run; for the report)
    reported: set[str] = field(default_factory=set)  # suites whose tables results/<profile>/ holds now
    jobs: int | str = "auto"  # the profile's worker processes where --jobs is not given (ProfileSpec.jobs)

    @property
    def rest_missing(self) -> list[str]:
        """--only: the profile's other suites whose runs are not all done in the store. While any is, the report
        cannot be whole. An absent dataset excuses its suites only where results/<profile>/ has no table of them
        either (the paper profile without CIFAR-10): a report made without the files would drop that table."""
        return list(
            dict.fromkeys(
                p.spec.suite
                for p in self.rest
                if p.status != "done" and not (p.status == "no data" and p.spec.suite not in self.reported)
            )
        )

    @property
    def report_only(self) -> list[str]:
        """The suites a partial report is limited to: --only's, unless the store's done runs make it whole
        ([]: the report is the profile's own, results/<profile>/)."""
        return list(self.only) if self.only and (self.overrides or self.rest_missing) else []

    @property
    def suites(self) -> list[str]:
        return list(dict.fromkeys(p.spec.suite for p in self.entries))

    def distinct(self) -> dict[str, Planned]:
        """identity -> its first entry: the runs, each once."""
        out: dict[str, Planned] = {}
        for p in self.entries:
            out.setdefault(p.identity, p)
        return out

    def pending(self) -> list[Planned]:
        return [p for p in self.distinct().values() if p.todo]

    def serves(self, identity: str) -> list[Planned]:
        return [p for p in self.entries if p.identity == identity]

    def suite_identity(self, suite: str) -> str:
        """A suite parent run is identified by its profile, suite, runs and overrides."""
        ids = [p.identity for p in self.entries if p.spec.suite == suite]
        return suite_key(self.profile, suite, ids, self.overrides)

    def suite_keys(self) -> dict[str, str]:
        return {s: self.suite_identity(s) for s in self.suites}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.distinct().values():
            out[p.status] = out.get(p.status, 0) + 1
        return out


def suite_key(profile: str, suite: str, identities, overrides) -> str:
    """A suite of a reproduction: its profile, name, runs and overrides (the identity of its parent run, and
    what a report's stamp records per suite)."""
    blob = json.dumps([profile, suite, sorted(identities), list(overrides)], sort_keys=True)
    return "suite-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def stamp_keys(scope) -> dict[str, str]:
    """suite -> its key, for the suites a report (mlhw.report.Scope) covers: the stamp that lets the next
    reproduce of the same plan find the report up to date."""
    return {
        s: suite_key(scope.profile, s, [e.identity for e in scope.entries if e.suite == s], scope.overrides)
        for s in scope.suites()
    }


def make_plan(
    specs: list[RunSpec],
    store: Store,
    source: DataSource,
    profile: str,
    stale_after: float,
    descriptions: dict[str, str] | None = None,
    overrides=(),
    only=(),
    no_data=(),
) -> Plan:
    """Every run with its identity and status (one store query for all of them). Runs on a dataset in
    `no_data` (a dry run without the files) have no identity yet: status "no data"."""
    settled = by_identity(store, stale_after) if store.experiment_id is not None else {}
    entries = []
    for spec in specs:
        if getattr(spec.config, "dataset", None) in no_data:
            # no identity without the files' fingerprint; one config is one run all the same (Adam 5e-5 serves
            # three CNN suites: counted once, as where the data is present)
            entries.append(Planned(spec, f"-no-data-{identity(spec.config, '')}", "no data"))
            continue
        ident = source.identity(spec.config)
        found = settled.get(ident)
        if found is None:
            entries.append(Planned(spec, ident))
        else:
            entries.append(Planned(spec, ident, STATUS[found.status], found.run_id, dict(found.run.data.tags)))
    return Plan(profile, entries, dict(descriptions or {}), list(overrides), list(only))


def end_stale_runs(plan: Plan, store: Store, stale_after: float) -> list[str]:
    """Runs still RUNNING whose process is gone or whose heartbeat stopped belong to dead processes: mark them
    FAILED before rerunning, the suite parent runs of a reproduction that was killed too (claims.end_stale_runs).
    Returns why each was ended."""
    return claims.end_stale_runs(store, stale_after)


def member_tags(plan: Plan, p: Planned, before: dict[str, str] | None = None) -> dict[str, str]:
    """The tags of a run of the plan: its profile, first suite and part, and every suite and part of the
    assignment it serves (joined to those of `before`, the tags of a run made earlier)."""
    before = before or {}

    def joined(key: str, names) -> str:
        return ",".join(dict.fromkeys([*filter(None, before.get(key, "").split(",")), *names]))

    served = plan.serves(p.identity)
    return {
        "mlhw.profile": before.get("mlhw.profile", plan.profile),
        "mlhw.suite": before.get("mlhw.suite", p.spec.suite),
        "mlhw.suites": joined("mlhw.suites", (q.spec.suite for q in served)),
        "mlhw.part": before.get("mlhw.part", p.spec.part),
        "mlhw.parts": joined("mlhw.parts", (q.spec.part for q in served)),
    }


def adopt(plan: Plan, store: Store, parents: dict[str, str], ended: list) -> int:
    """The done runs a reproduction uses without training them (from an interrupted reproduce, another profile or
    a single command such as `mlhw mlp train`) join it: their tags name every suite and part they serve, and a run
    with no parent, or under a suite parent that a Ctrl-C or a failure ended (KILLED, FAILED), becomes a child of
    its first suite's parent run: a suite's FINISHED parent holds every run it reports, whichever attempt made it.
    `ended`: ended_parents(store). Returns how many runs changed."""
    ended_ids = {r.info.run_id for r in ended}
    changed = 0
    for p in plan.distinct().values():
        if p.status != "done" or p.run_id is None:
            continue
        tags = {k: v for k, v in member_tags(plan, p, p.tags).items() if p.tags.get(k) != v}
        before = p.tags.get("mlflow.parentRunId")
        if (before is None or before in ended_ids) and parents.get(p.spec.suite) not in (None, before):
            tags["mlflow.parentRunId"] = parents[p.spec.suite]
        if tags:
            store.set_tags(p.run_id, tags)
            p.tags |= tags
            changed += 1
    return changed


def ended_parents(store: Store) -> list:
    """The suite parent runs that a stop or a failure ended (KILLED, FAILED): one search, for adopt and
    drop_empty_parents both (adopting a run changes none of them). Not one whose process is still running on this
    machine: marked FAILED for a heartbeat gone stale (a reproduce suspended by Ctrl-Z, a stall), it goes on once
    resumed, and its parents, emptied and deleted by a reproduce beside it, ended it in an MLflow traceback ('must be
    in the active state')."""
    from mlhw.lifecycle import PROCESS_TAG, process_alive, process_id

    def going_on(tag):  # (not this process's own: an earlier attempt of it, ended; two reproduces in one process)
        return process_alive(tag) and tag != process_id()

    found = store.search("tags.`mlhw.kind` = 'suite' and attributes.status != 'FINISHED'")
    return [r for r in found if r.info.status in ("KILLED", "FAILED") and not going_on(r.data.tags.get(PROCESS_TAG))]


def drop_empty_parents(profile: str, store: Store, ended: list) -> int:
    """Delete the suite parents of `profile` among `ended` (ended_parents) that hold no run once `adopt` has moved
    the done runs under this reproduction's parents: those of suites that had not begun, and those whose runs had
    all finished. They hold nothing but plan.json; a stopped reproduce left them (6 of 8 in a walk-through) beside
    the new ones in the UI. A parent that holds a run (the one a stop killed, a failed one) stays, with it, as the
    record of that attempt. MLflow's deletion: the UI's 'Deleted' view still shows them, `mlflow gc` removes them.
    Returns how many."""
    dropped = 0
    for r in ended:
        if r.data.tags.get("mlhw.profile") != profile:
            continue
        if not store.search(f"tags.`mlflow.parentRunId` = '{r.info.run_id}'"):
            store.client.delete_run(r.info.run_id)
            dropped += 1
    return dropped


def job_of(plan: Plan, p: Planned, parents: dict[str, str]) -> Job:
    """The job of a planned run: named for what it is (suite, variant, seed), a child of its first
    suite's parent run, and tagged with every suite and part of the assignment it serves."""
    tags = member_tags(plan, p)
    if p.spec.variant:
        tags["mlhw.variant"] = p.spec.variant
    # runs of several profiles sit side by side in the UI's run list: each says its data
    data = f" ({data_note(p.spec.config)}{_pair_note(p.spec)})" if p.spec.config.kind != "theory" else ""
    # what tells the runs of a suite apart first: under their parent the UI's narrow Run Name column showed
    # "mlp_lr_sweep · …" three times over
    name = f"{p.spec.label}{data} · {p.spec.suite}" if p.spec.label else f"{p.spec.suite}{data}"
    return Job(
        p.spec.config,
        p.identity,
        name,
        tags,
        _run_note(plan, p),
        f"mlhw reproduce --profile {plan.profile}",
        parents.get(p.spec.suite),
    )


def _pair_note(spec: RunSpec) -> str:
    """', 3 vs 8': the two classes a Q3 run's data is (the single command's 'svm.q3 · 3 vs 8, C=1 (digits)' says them),
    unless its label, from a grid of classes, does. A reproduction named the same runs 'C=1 (digits) · svm_soft', read
    as the whole of digits."""
    classes = getattr(spec.config, "classes", None)
    if not classes or "classes=" in spec.label:
        return ""
    return f", {classes[0]} vs {classes[1]}"


def _run_note(plan: Plan, p: Planned) -> str:
    """A run's description in the UI: what it is, then its suite's ('Part 2 (a): SGD lr 0.005 vs Adam lr 5e-5' on
    the SGD run alone read as the run's own)."""
    suite = plan.descriptions.get(p.spec.suite, "")
    what = f"{p.spec.label}: one run of {p.spec.suite}" if p.spec.label else f"The one run of {p.spec.suite}"
    note = what + (f" ({suite})" if suite else "")
    # a run shared by suites sits under its first suite's parent alone: the digits Adam 5e-5 run said "one run of
    # cnn_optimizers (Part 2 (a) ...)" only, though the cnn_adam_lr and cnn_batchnorm parents link to it as theirs
    also = [s for s in dict.fromkeys(q.spec.suite for q in plan.serves(p.identity)) if s != p.spec.suite]
    if also:
        named = [f"{s} ({plan.descriptions[s]})" if plan.descriptions.get(s) else s for s in also]
        listed = " and ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
        note += f"; also a run of {listed}, whose parent {'runs link' if len(also) > 1 else 'run links'} here"
    return note


def unit_count(configs) -> int:
    """How many units `units` makes of runs of these configs: each run alone, MLP runs differing only in seed and lr
    as one (a config twice is one run: a run shared between suites)."""
    return len({c.batch_key() if c.kind == "mlp" else c.model_dump_json() for c in configs})


def units(plan: Plan, parents: dict[str, str]) -> list[list[Job]]:
    """The units of work: each pending run once; MLP runs differing only in seed and lr train together."""
    out: list[list[Job]] = []
    batches: dict[str, list[Job]] = {}
    for p in plan.pending():
        job = job_of(plan, p, parents)
        if p.spec.kind == "mlp":
            key = p.spec.config.batch_key()
            if key not in batches:
                batches[key] = []
                out.append(batches[key])
            batches[key].append(job)
        else:
            out.append([job])
    return out
