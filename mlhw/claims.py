"""The claim protocol: nothing runs twice, however many processes or machines share one store.

A worker creates its run, then looks at every run of the same identity: a FINISHED one, or else the
earliest live RUNNING one, owns it; a loser ends its own run KILLED, deletes it and moves on. A RUNNING
run whose heartbeat is older than `stale_after` seconds belongs to a dead process: the planner marks
it FAILED (`mlhw.dead`) and runs it again; a parent that sees its worker die marks that worker's runs KILLED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlhw.lifecycle import (
    HEARTBEAT_TAG,
    IDENTITY_TAG,
    PROCESS_TAG,
    WORKER_TAG,
    process_alive,
    process_gone,
    stamp_seconds,
)
from mlhw.store import Store

STALE_SECONDS = 60.0
# A single command's: it ends dead runs as housekeeping, trains nothing in their place, and cannot know a
# reproduction's --stale-after on another machine (600 s there left that one's live runs stale here after 60 s), nor
# another machine's clock (the README asks for NTP where machines share a store). Runs of a process known gone on this
# machine are ended at once whatever this is (lifecycle.process_gone).
SINGLE_COMMAND_STALE_SECONDS = 900.0


class Claimed(Exception):
    """Another process owns (runs or has finished) this identity: this one must not run it."""

    def __init__(self, identity: str, owner: str):
        super().__init__(f"run {identity} is owned by MLflow run {owner}")
        self.identity, self.owner = identity, owner


def alive(run, stale_after: float = STALE_SECONDS) -> bool:
    """A RUNNING run whose heartbeat is recent and whose process is not known to be gone (lifecycle.PROCESS_TAG: on
    this machine it is known at once); a FINISHED run counts as settled, not alive."""
    beat = stamp_seconds(run.data.tags.get(HEARTBEAT_TAG))
    return (
        run.info.status == "RUNNING"
        and beat is not None
        and time.time() - beat < stale_after
        and not process_gone(run.data.tags.get(PROCESS_TAG))
    )


def _wait(seconds: float) -> None:
    time.sleep(seconds)


def claimer(stale_after: float = STALE_SECONDS, rerun_finished: bool = False):
    """The `claim` callback of lifecycle.tracked_run: raises Claimed unless this new run owns its identity.
    `rerun_finished` (reproduce --force): a FINISHED run does not own its identity, only a live one does."""

    def owner(store: Store, mine, identity: str) -> str:
        runs = store.search(f"tags.`{IDENTITY_TAG}` = '{identity}'")
        finished = [] if rerun_finished else [r for r in runs if r.info.status == "FINISHED"]
        if finished:
            return finished[0].info.run_id
        live = [r for r in runs if r.info.run_id == mine.info.run_id or alive(r, stale_after)]
        return min(live, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id

    def claim(store: Store, mine) -> None:
        identity = mine.data.tags.get(IDENTITY_TAG)
        if not identity:
            return
        found = owner(store, mine, identity)
        if found == mine.info.run_id:
            # A run's start time is its client's clock when it sent the request: a competitor that stamped an
            # earlier one may still be in flight and commit after this search (two reproduce processes on one busy
            # server both trained a config). Look once more when such a request has landed: after as long again
            # as this run took from its start to now (its own latency, which grows with the load)
            elapsed = time.time() - mine.info.start_time / 1000
            _wait(min(max(elapsed, 0.02), 2.0))
            found = owner(store, mine, identity)
        if found != mine.info.run_id:
            store.withdraw(mine.info.run_id)
            raise Claimed(identity, found)

    return claim


@dataclass
class Settled:
    """Where an identity stands in the store."""

    run_id: str
    status: str  # FINISHED | FAILED | KILLED | RUNNING (alive) | STALE (RUNNING without a heartbeat)
    run: object


def by_identity(store: Store, stale_after: float = STALE_SECONDS, kind: str | None = None) -> dict[str, Settled]:
    """identity -> the run that settles it: the newest FINISHED run a reproduction made or adopted (tagged with its
    suites), else the newest FINISHED run, else the newest run. A reproduction's run, because a later single
    command with the same config (same identity; its precision, say, is not part of it) must not replace it in
    `mlhw tables` and `mlhw check`; the newest, because `reproduce --force` trains again and reports the new runs."""
    query = f"tags.`mlhw.kind` = '{kind}'" if kind else ""
    best: dict[str, Settled] = {}
    for run in store.search(query):  # newest first
        h = run.data.tags.get(IDENTITY_TAG)
        if not h:
            continue
        status = run.info.status
        if status == "RUNNING" and not alive(run, stale_after):
            status = "STALE"
        here = best.get(h)
        if (
            here is None
            or (status == "FINISHED" and here.status != "FINISHED")
            or (status == "FINISHED" and _reproduced(run) and not _reproduced(here.run))
        ):
            best[h] = Settled(run.info.run_id, status, run)
    return best


def _reproduced(run) -> bool:
    """Made or adopted by a reproduction: it names the suites it serves (a single command's run does not, until a
    reproduction adopts it)."""
    return bool(run.data.tags.get("mlhw.suites"))


def mark_dead(store: Store, workers: set[str], reason: str) -> int:
    """End as KILLED every RUNNING run of the given (dead) worker processes; returns how many."""
    n = 0
    for run in store.search("attributes.status = 'RUNNING'"):
        if run.data.tags.get(WORKER_TAG) in workers:
            n += store.end_dead(run.info.run_id, "KILLED", reason)
    return n


def end_stale_runs(store: Store, stale_after: float = STALE_SECONDS, spare_running_here: bool = False) -> list[str]:
    """Runs still RUNNING whose process is gone or whose heartbeat stopped belong to dead processes: mark them
    FAILED (end_stale). Only mlhw's runs (every one has mlhw tags from its creation): a run another program logs to
    the experiment has no heartbeat to read. Every command that makes runs does this first: a single command's run
    that a lost server (or a SIGKILL) left RUNNING stayed so for ever, where no `reproduce` used its experiment.
    `spare_running_here` (a single command, which trains nothing in their place): not a run whose process this
    machine knows to be still running (suspended by Ctrl-Z, stalled: its heartbeat stale, not dead); a reproduce ends
    it to train its config again. Returns why each run it ended was ended ('process gone', 'stale heartbeat'): the
    commands say it (nine runs of a killed older reproduction were marked FAILED under `up to date: 12 runs` alone)."""
    ended = []
    for run in store.search("attributes.status = 'RUNNING'"):  # also those a FINISHED run of theirs hides
        if any(key.startswith("mlhw.") for key in run.data.tags) and not alive(run, stale_after):
            if spare_running_here and process_alive(run.data.tags.get(PROCESS_TAG)):
                continue
            if reason := end_stale(store, run):
                ended.append(reason)
    return ended


def end_stale(store: Store, run) -> str | None:
    """A RUNNING run whose process is gone (known so on its machine, or its heartbeat stale). Mark it so the UI
    says so, and why; the reason, or None where it could not be marked."""
    reason = "process gone" if process_gone(run.data.tags.get(PROCESS_TAG)) else "stale heartbeat"
    return reason if store.end_dead(run.info.run_id, "FAILED", reason) else None
