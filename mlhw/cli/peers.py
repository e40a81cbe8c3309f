"""Other reproductions of the same profile at once, against one store: waiting for the runs they claimed first, so
that the report is compiled with them; taking over the runs one of them left unfinished when it stopped (killed,
crashed, its heartbeat stale); adopting the runs a stopped one finished under this reproduction's suite parents.
The claims themselves (who trains a run) are mlhw.claims'."""

from __future__ import annotations

import time

from mlhw.cli.common import err, n_runs, say_ended

TAKE_OVER_ROUNDS = 3  # a run taken over may be claimed again by a third reproduce, whose owner may stop in turn


def orphaned(plan, store, identities: list[str], settings, take: bool = True):
    """The part of `plan` that other reproduces owned (`identities`) and left unfinished, their owners stopped (a
    KILLED or FAILED run, a process gone, a heartbeat stale), for this one to train: None where every one is
    FINISHED (one alive elsewhere again, a third reproduce's, is waited for first). Says which it takes over.
    `take` False (the last round): says they are left to the next reproduce, and returns None."""
    import dataclasses

    from mlhw.claims import by_identity
    from mlhw.plan import STATUS, end_stale_runs

    while True:
        # a dead owner's RUNNING runs: FAILED, as the next reproduce would mark them
        say_ended(end_stale_runs(plan, store, settings.stale_after))
        settled = by_identity(store, settings.stale_after)
        # one a third reproduce took over since (it saw the owner stop first) is its to train: wait for it again. Left
        # out of `left` and not waited for, the report was compiled at once, that run 'missing' from it
        live = [i for i in identities if i in settled and settled[i].status == "RUNNING"]
        if not live:
            break
        wait_for_owners(store, live, settings)
    left = {i for i in identities if i not in settled or settled[i].status != "FINISHED"}
    if not left:
        return None
    entries = [
        dataclasses.replace(p, status=STATUS[settled[p.identity].status] if p.identity in settled else "pending")
        for p in plan.entries
        if p.identity in left
    ]
    names = [f"{p.spec.suite} {p.spec.label}".strip() for p in {p.identity: p for p in reversed(entries)}.values()]
    it = "it" if len(left) == 1 else "them"
    # (after the last round the loop ended there: it said "training it here", trained nothing and reported it missing)
    then = f"training {it} here" if take else f"not taken over again here (the next `mlhw reproduce` trains {it})"
    err.print(
        f"{n_runs(len(left))} that another reproduce owned ended there unfinished (its owner stopped): "
        f"{', '.join(names)}; {then}",
        highlight=False,
        soft_wrap=True,
    )
    return dataclasses.replace(plan, entries=entries) if take else None


def adopt_from_stopped_peers(plan, store, parents, settings) -> None:
    """Another reproduce beside this one that stopped (SIGTERM, SIGKILL, a crash) left its suite parents KILLED or
    FAILED, holding the runs it finished, which this report takes: they move under this reproduction's parents, and
    the stopped parents left holding nothing are deleted, as the next reproduce would do (plan.adopt). The UI showed
    8 FAILED parents holding the runs and this one's FINISHED parents empty."""
    import dataclasses

    from mlhw.claims import by_identity
    from mlhw.plan import adopt, drop_empty_parents, ended_parents

    settled = by_identity(store, settings.stale_after)
    entries = [
        dataclasses.replace(p, status="done", run_id=s.run_id, tags=dict(s.run.data.tags))
        for p in plan.entries
        if (s := settled.get(p.identity)) is not None and s.status == "FINISHED"
    ]
    ended = ended_parents(store)
    if entries and ended:
        adopt(dataclasses.replace(plan, entries=entries), store, {s: log.run_id for s, log in parents.items()}, ended)
        drop_empty_parents(plan.profile, store, ended)


def wait_for_owners(store, identities: list[str], settings, poll: float = 5.0) -> None:
    """Wait until every run another live reproduce claimed first has ended there (FINISHED, or its owner stopped:
    a FAILED or KILLED run, or a heartbeat gone stale), so that the report is compiled with them. Two reproduces
    of one profile started together each trained their share; the first to end wrote results/<profile>/ from half
    the runs (n=2 where the baseline has 4) and failed its check. Ctrl-C stops the wait; the runs go on there.
    One search a poll, of the store's RUNNING runs (MLflow's filter has no IN for tags): an identity is waited for
    while one of its runs is alive there (a --force rerun of a FINISHED one too: the report takes the new run)."""
    from mlhw.claims import alive
    from mlhw.lifecycle import IDENTITY_TAG, check_terminated

    pending, told = set(identities), None
    while True:
        running = store.search("attributes.status = 'RUNNING'")
        pending &= {r.data.tags.get(IDENTITY_TAG) for r in running if alive(r, settings.stale_after)}
        if not pending:
            return
        if len(pending) != told:
            err.print(
                f"waiting for {n_runs(len(pending))} that another reproduce claimed first and is training, to "
                "compile the report with them; Ctrl-C stops waiting (they go on there)",
                highlight=False,
            )
            told = len(pending)
        check_terminated()
        time.sleep(poll)
