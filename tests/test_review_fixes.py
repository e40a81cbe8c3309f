"""Edges an independent review found in the layer: each test failed before its fix.

- a claim that fails (not `Claimed`) left its run RUNNING;
- a stale RUNNING run hidden by a FINISHED run of the same identity was never ended;
- `up to date` trusted any REPORT.md, also one made for other overrides;
- a reused suite parent could make `mlhw tables` read an older configuration.
"""

import os
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from helpers import invoke, runs_of, sweep_suite

from mlhw.lifecycle import HEARTBEAT_TAG, IDENTITY_TAG, tracked_run
from mlhw.store import Store

DOC = {
    "version": 1,
    "suites": {
        "svm_soft": {"kind": "svm_soft", "part": "svm.q3", "base": {"train_size": 300, "test_size": 100}},
    },
    "profiles": {"p": {"defaults": {"dataset": "digits"}}},
}


def reproduce(workdir, *args):
    return invoke(
        "reproduce",
        "--profile",
        "p",
        "--file",
        workdir / "exp.yaml",
        "--tracking-uri",
        f"sqlite:///{workdir}/mlflow.db",
        *args,
    )


@pytest.fixture
def project(workdir):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(DOC))
    return workdir


def test_a_claim_that_fails_ends_its_run_instead_of_leaving_it_running(workdir):
    store = Store(f"sqlite:///{workdir}/mlflow.db")

    def broken_claim(store, run):
        raise ConnectionError("the server went away")

    with pytest.raises(ConnectionError), tracked_run(store, "r", {"a": 1}, {IDENTITY_TAG: "x"}, claim=broken_claim):
        pass
    (run,) = store.search()
    assert run.info.status == "FAILED"


def test_a_stale_run_hidden_by_a_finished_twin_is_ended(project):
    assert reproduce(project).exit_code == 0
    client, runs = runs_of(f"sqlite:///{project}/mlflow.db")
    done = next(r for r in runs if r.data.tags.get("mlhw.kind") == "svm_soft")
    ghost = client.create_run(
        done.info.experiment_id,
        run_name="ghost",
        tags={
            IDENTITY_TAG: done.data.tags[IDENTITY_TAG],
            "mlhw.kind": "svm_soft",
            HEARTBEAT_TAG: str(int(time.time()) - 3600),
        },
    )
    # a run someone else is logging to the same experiment (a notebook's mlflow.start_run): not mlhw's to end
    theirs = client.create_run(done.info.experiment_id, run_name="a notebook's run", tags={"team": "ta"})
    res = reproduce(project, "--force")
    assert res.exit_code == 0, res.output
    after = client.get_run(ghost.info.run_id)
    assert after.info.status == "FAILED" and after.data.tags["mlhw.dead"] == "stale heartbeat"
    still = client.get_run(theirs.info.run_id)
    assert still.info.status == "RUNNING" and "mlhw.dead" not in still.data.tags


def test_up_to_date_only_for_a_report_of_the_same_plan(project):
    for c in (2, 3):
        assert reproduce(project, "--set", f"svm_soft.C={c}").exit_code == 0
    res = reproduce(project, "--set", "svm_soft.C=2")  # its runs are done, but the report on disk is C=3's
    assert res.exit_code == 0 and "up to date" not in res.stderr
    report = (project / "results" / "p-partial" / "REPORT.md").read_text()
    assert "svm_soft.C=2" in report and "svm_soft.C=3" not in report
    again = reproduce(project, "--set", "svm_soft.C=2")
    assert again.stderr.startswith("up to date: 1 run,")


def test_tables_reads_the_newest_reproduction_even_when_a_parent_is_reused(project):
    def with_c(c):
        doc = yaml.safe_load(yaml.safe_dump(DOC))
        doc["suites"]["svm_soft"]["base"]["C"] = c
        (project / "exp.yaml").write_text(yaml.safe_dump(doc))
        (project / "results" / "p" / "REPORT.md").unlink(missing_ok=True)
        assert reproduce(project).exit_code == 0

    for c in (1, 2, 1):  # the third: runs done, a parent for C=1 exists, but C=2's is newer
        with_c(c)
    res = invoke("tables", "--profile", "p", "--tracking-uri", f"sqlite:///{project}/mlflow.db")
    assert res.exit_code == 0, res.output
    svm = (project / "results" / "p" / "tables" / "svm.md").read_text()
    assert "C=1" in svm and "C=2" not in svm


def test_a_partial_reports_heading_gives_the_profiles_description_as_the_profiles(project):
    """A partial report opened with its profile's description as its own ("every suite, tiny and fast" above a
    report of one suite)."""
    doc = yaml.safe_load(yaml.safe_dump(DOC))
    doc["profiles"]["p"]["description"] = "Every suite, tiny and fast!"
    (project / "exp.yaml").write_text(yaml.safe_dump(doc))
    assert reproduce(project, "--set", "svm_soft.C=2").exit_code == 0
    partial = (project / "results" / "p-partial" / "REPORT.md").read_text().split("\n\n")
    assert partial[1] == "The profile `p`: Every suite, tiny and fast! This report holds part of it."
    assert reproduce(project).exit_code == 0
    full = (project / "results" / "p" / "REPORT.md").read_text().split("\n\n")
    assert full[1] == "Every suite, tiny and fast!"


def test_a_report_whose_run_lost_an_artifact_names_the_run_and_the_file(project):
    """A store whose suite parent lost plan.json (its artifact folder deleted by hand) made `mlhw tables` end in
    MLflow's traceback, exit code 1."""
    assert reproduce(project).exit_code == 0
    (plan,) = [p for p in project.rglob("plan.json") if "results" not in p.parts]
    plan.unlink()
    res = invoke("tables", "--profile", "p", "--tracking-uri", f"sqlite:///{project}/mlflow.db")
    assert res.exit_code == 2, res.output
    (line,) = res.stderr.strip().splitlines()
    assert plan.parent.parent.name in line and "no artifact plan.json" in line, line
    assert "Traceback" not in res.output


def test_a_suite_no_table_is_built_for_is_told_before_it_runs_and_in_the_report(workdir):
    """A suite added to experiments.yaml (kind mlp, part mlp.c) ran and was logged, but REPORT.md had no table,
    no figure and no word about it; the exit code was 0. An added suite gets a table named after it now, but one
    named as the assignment's table of other suites (`svm`: tables/svm.* is svm_soft's) cannot: it is told why."""
    doc = DOC | {"suites": DOC["suites"] | {"svm": DOC["suites"]["svm_soft"]}}
    (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
    said = "suite svm: no table shows it (its name is that of the table of svm_multiclass, svm_soft: rename the"
    plan = reproduce(workdir, "--dry-run")
    assert plan.exit_code == 0 and said in " ".join(plan.stdout.split()), plan.output
    res = reproduce(workdir)
    assert res.exit_code == 0 and said in " ".join(res.stderr.split()), res.output
    assert " svm_soft: no table" not in " ".join(res.stderr.split())  # the assignment's suites have theirs
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    (line,) = [x for x in report.splitlines() if x.startswith("- **svm**")]
    assert line.endswith(
        "No table shows this suite (its name is that of the table of svm_multiclass, svm_soft: "
        "rename the suite for a table of its own)."
    )
    svm = pd.read_csv(workdir / "results" / "p" / "tables" / "svm.csv")  # svm_soft's alone, its one run
    assert list(svm["question"]) == ["Q3 soft SVM"]


def test_an_added_svm_suite_gets_the_svm_tables_rows_of_its_own_runs(workdir):
    """An added SVM suite (kind svm_soft, a grid of C) was only settings and run ids in REPORT.md: it gets the SVM
    table's rows of its runs, as tables/<suite>.*, and the SVM table's note; the plan no longer says it has none."""
    extra = DOC["suites"]["svm_soft"] | {"grid": {"C": [0.5, 2]}, "description": "Q3 at other C"}
    (workdir / "exp.yaml").write_text(yaml.safe_dump(DOC | {"suites": DOC["suites"] | {"svm_extra": extra}}))
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    assert "no table shows it" not in res.stderr
    folder = workdir / "results" / "p"
    table = pd.read_csv(folder / "tables" / "svm_extra.csv")
    client, found = runs_of(f"sqlite:///{workdir}/mlflow.db")
    mine = {
        r.data.params["C"]: r.data.metrics
        for r in found
        if r.data.tags.get("mlhw.kind") == "svm_soft" and "svm_extra" in r.data.tags.get("mlhw.suites", "")
    }
    assert sorted(mine) == ["0.5", "2.0"]
    assert list(table["setting"]) == ["digits 300/100 3vs8, C=0.5", "digits 300/100 3vs8, C=2"]
    for C, (_, row) in zip(["0.5", "2.0"], table.iterrows()):
        assert row["test error"] == pytest.approx(mine[C]["test/error"], rel=1e-12)
    report = (folder / "REPORT.md").read_text()
    assert "## svm_extra (Q3 at other C): Q3 soft SVM\n" in report
    assert report.count("*liblinear rel. diff*:") == 2  # under the assignment's SVM table and under this one
    assert "No table shows" not in report


def test_the_report_waits_for_runs_another_live_reproduce_claimed(monkeypatch):
    """Two reproduces of one profile started together: the first to end compiled results/<profile>/ from its own
    half of the runs (n=2 of 4, a failed check, exit 1). It now waits until the other's runs have ended: FINISHED,
    or their owner stopped (a heartbeat gone stale), and not a moment before."""
    from types import SimpleNamespace

    from mlhw.cli import peers
    from mlhw.lifecycle import utc_stamp

    def run(status, beat_age):
        tags = {HEARTBEAT_TAG: utc_stamp(time.time() - beat_age)}
        return SimpleNamespace(info=SimpleNamespace(status=status), data=SimpleNamespace(tags=tags))

    timeline = [  # what the store holds of each identity at each poll
        {"a": [run("RUNNING", 1)], "b": [run("RUNNING", 1)], "other": [run("RUNNING", 1)]},
        {"a": [run("FINISHED", 0)], "b": [run("RUNNING", 1)]},
        {"a": [run("FINISHED", 0)], "b": [run("RUNNING", 1)], "c": [run("RUNNING", 1)]},
        {"a": [run("FINISHED", 0)], "b": [run("RUNNING", 3600)]},  # its owner died: waiting longer gains nothing
    ]
    polls, searches = [], []

    class Store:  # MLflow's filter as the store answers it: only the query the product sends is understood
        def search(self, query):
            searches.append(len(polls))
            assert query == "attributes.status = 'RUNNING'", query
            held = timeline[len(polls)].items()
            return [
                SimpleNamespace(info=r.info, data=SimpleNamespace(tags={**r.data.tags, IDENTITY_TAG: ident}))
                for ident, runs in held
                for r in runs
                if r.info.status == "RUNNING"
            ]

    monkeypatch.setattr(peers.time, "sleep", lambda s: polls.append(s))
    peers.wait_for_owners(Store(), ["a", "b"], SimpleNamespace(stale_after=60.0), poll=5.0)
    assert polls == [5.0, 5.0, 5.0]  # three waits, and it returned at the fourth look, not earlier
    assert searches == [0, 1, 2, 3]  # one search a look, however many runs it waits for
    polls.clear()
    timeline[0] = {"a": [run("FINISHED", 0)], "b": [run("KILLED", 1), run("FINISHED", 0)], "c": [run("RUNNING", 1)]}
    peers.wait_for_owners(Store(), ["a", "b"], SimpleNamespace(stale_after=60.0))
    assert polls == []  # nothing claimed is still training: no wait at all


SWEEP = {  # two MLP runs, one unit: they differ only in lr and train as one batched computation
    "version": 1,
    "suites": {
        "mlp_lr_sweep": sweep_suite(),
    },
    "profiles": {"p": {"defaults": {"dataset": "digits"}}},
}


@pytest.fixture
def sweep(workdir, monkeypatch):
    """A reproduction of SWEEP done, then both runs deleted (to run again); returns the store's client, the deleted
    runs (lr 0.1, lr 1) and `ghost(run)`: a live RUNNING run of that run's identity, as another reproduce that is
    training it holds. `waits` records each wait for owners; its first look at the store ends the ghosts (their owner
    finished: the deleted runs come back) so that the report is whole."""
    from mlhw.cli import peers
    from mlhw.lifecycle import utc_stamp

    (workdir / "exp.yaml").write_text(yaml.safe_dump(SWEEP))
    assert reproduce(workdir).exit_code == 0
    client, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    mine = sorted((r for r in runs if r.data.tags.get("mlhw.kind") == "mlp"), key=lambda r: float(r.data.params["lr"]))
    assert len(mine) == 2
    for r in mine:
        client.delete_run(r.info.run_id)
    ghosts, waits = [], []

    def ghost(run):
        tags = {IDENTITY_TAG: run.data.tags[IDENTITY_TAG], "mlhw.kind": "mlp", HEARTBEAT_TAG: utc_stamp()}
        ghosts.append(client.create_run(run.info.experiment_id, run_name="another reproduce's", tags=tags))

    wait = peers.wait_for_owners

    def waiting(store, identities, settings, poll=5.0):
        waits.append(sorted(identities))

        class Looking:
            def search(self, query):
                found = store.search(query)
                for g in ghosts:  # after this look the owner has finished
                    client.set_terminated(g.info.run_id, "KILLED")
                for r in mine:
                    client.restore_run(r.info.run_id)
                return found

        wait(Looking(), identities, settings, poll=0.0)

    monkeypatch.setattr(peers, "wait_for_owners", waiting)
    return SimpleNamespace(client=client, runs=mine, ghost=ghost, waits=waits, ghosts=ghosts)


def test_the_report_waits_for_runs_another_reproduce_was_training_when_this_one_planned(sweep, workdir):
    """The second of two concurrent reproduces planned the other's live runs as 'running' and left them to it, but
    compiled at once: its REPORT.md said they were missing (the other overwrote it later). It waits for them as it
    waits for runs claimed away from it."""
    slow, quick = sweep.runs
    sweep.ghost(slow)  # another reproduce is training lr 0.1 when this one plans
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    assert "1 running" in res.stderr  # the plan's
    assert sweep.waits == [[slow.data.tags[IDENTITY_TAG]]]
    assert "waiting for 1 run that another reproduce claimed first" in " ".join(res.stderr.split())
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "missing" not in report, report


def test_the_report_waits_for_the_runs_claimed_away_from_an_mlp_unit_that_trained_the_others(
    sweep, workdir, monkeypatch
):
    """An MLP unit whose runs another process claimed in part trains the rest and came back as not claimed: the runs
    it lost were not waited for. Here the other reproduce starts lr 1 between this one's plan and its claim."""
    from mlhw import plan as P

    slow, quick = sweep.runs
    planned = P.end_stale_runs  # what _run calls first, after the plan

    def then_another_starts(*args):
        planned(*args)
        sweep.ghost(quick)

    monkeypatch.setattr(P, "end_stale_runs", then_another_starts)
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "ran 1 of 2 runs" in said and "1 left to another reproduce that owns them" in said, res.stderr
    assert sweep.waits == [[quick.data.tags[IDENTITY_TAG]]]
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "missing" not in report, report


def test_a_run_whose_owner_stopped_before_finishing_it_is_trained_here(sweep, workdir):
    """Two reproduces of one profile on one server, the other SIGKILLed while it trained a run this one had left to
    it: this one waited for it no longer (its owner was dead), exited 0 and wrote results/<profile>/ with that run
    'not finished and missing from the tables'; nothing on the terminal said so. It trains it itself."""
    slow, quick = sweep.runs
    slow_id = slow.data.tags[IDENTITY_TAG]
    sweep.runs.clear()  # the other's run of lr 0.1 ends KILLED and none of its own comes back FINISHED
    sweep.ghost(slow)
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert sweep.waits == [[slow_id]], said
    assert "1 run that another reproduce owned ended there unfinished (its owner stopped)" in said, said
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "missing" not in report, report
    _, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    done = Counter(
        r.data.tags[IDENTITY_TAG] for r in runs if r.info.status == "FINISHED" and r.data.tags.get("mlhw.kind") == "mlp"
    )
    assert done[slow_id] == 1 and sum(done.values()) == 2, done


def test_a_run_left_unfinished_after_the_last_round_of_take_overs_is_not_said_to_train(sweep, workdir, monkeypatch):
    """After the last round of taking over runs the loop ended: it said 'training it here', trained nothing and
    reported the run missing. It says the next reproduce trains it."""
    from mlhw.cli import peers

    monkeypatch.setattr(peers, "TAKE_OVER_ROUNDS", 1)
    slow, quick = sweep.runs
    sweep.runs.clear()  # the other's run ends KILLED
    sweep.ghost(slow)
    res = reproduce(workdir)
    said = " ".join(res.stderr.split())
    assert "training it here" not in said, said
    assert "not taken over again here (the next `mlhw reproduce` trains it)" in said, said


def test_a_run_a_third_reproduce_took_over_from_the_stopped_owner_is_waited_for(sweep, workdir, monkeypatch):
    """Three reproduces, the owner of a run SIGKILLed: the third saw it first and trained that run again, and this
    one, finding it RUNNING there, neither trained it nor waited for it: its report had the run 'missing'. It waits
    for the third as for the first owner."""
    from mlhw import plan as P

    slow, quick = sweep.runs
    slow_id = slow.data.tags[IDENTITY_TAG]
    sweep.runs.clear()  # the first owner's run ends KILLED
    sweep.ghost(slow)
    ended, calls = P.end_stale_runs, []

    def then_a_third_takes_it(*args):  # _run's first call, then peers.orphaned's, once the first owner stopped
        ended(*args)
        calls.append(1)
        if len(calls) == 2:
            sweep.ghost(slow)  # the third reproduce's live run of it
            sweep.runs.append(slow)  # which finishes: the wait's look brings the run back FINISHED

    monkeypatch.setattr(P, "end_stale_runs", then_a_third_takes_it)
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    assert sweep.waits == [[slow_id], [slow_id]], res.stderr
    assert "training it here" not in " ".join(res.stderr.split()), res.stderr
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "missing" not in report, report


def test_the_runs_a_stopped_peer_finished_move_under_this_reproductions_parent(sweep, workdir):
    """Two reproduces at once, one SIGKILLed: the survivor's report took the runs the dead one had finished, but they
    stayed under its parents, ended FAILED (8 of them in the UI beside the survivor's FINISHED, empty ones), until a
    later reproduce adopted them. The survivor adopts them before its report, and deletes the emptied parent."""
    from mlhw.lifecycle import utc_stamp

    slow, quick = sweep.runs
    exp = slow.info.experiment_id
    tags = {"mlhw.kind": "suite", "mlhw.profile": "p", "mlhw.suite": "mlp_lr_sweep", HEARTBEAT_TAG: utc_stamp()}
    peer = sweep.client.create_run(exp, run_name="p · mlp_lr_sweep", tags=tags)  # the other's parent, live
    sweep.client.restore_run(slow.info.run_id)
    sweep.client.set_tag(slow.info.run_id, "mlflow.parentRunId", peer.info.run_id)  # the run it trains there
    sweep.client.delete_run(slow.info.run_id)
    sweep.ghost(slow)
    sweep.ghosts.append(peer)  # the wait's first look: the other stops (its parent KILLED), its run FINISHED
    res = reproduce(workdir)
    assert res.exit_code == 0, res.output
    client, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    parents = [r for r in runs if r.info.run_name == "p · mlp_lr_sweep" and r.info.status == "FINISHED"]
    mine = max(parents, key=lambda r: r.info.start_time)  # (the fixture's first reproduction left the other)
    assert mine.info.run_id != peer.info.run_id and mine.info.start_time > peer.info.start_time
    assert client.get_run(slow.info.run_id).data.tags["mlflow.parentRunId"] == mine.info.run_id
    assert client.get_run(peer.info.run_id).info.lifecycle_stage == "deleted"  # it held nothing any more


def test_a_suspended_peers_parents_are_neither_emptied_nor_deleted(sweep, workdir):
    """A reproduce beside one suspended (Ctrl-Z) waited until its heartbeat went stale, took over its run, then moved
    the runs the other had finished under its own parents and deleted the other's emptied parents: resumed, the other
    ended in an MLflow traceback (its parent 'must be in the active state'). A parent whose process still runs here
    stays, with its runs."""
    import subprocess

    from mlhw.lifecycle import PROCESS_TAG, process_id, utc_stamp

    slow, quick = sweep.runs
    suspended = subprocess.Popen(["sleep", "60"])
    try:
        tags = {
            "mlhw.kind": "suite",
            "mlhw.profile": "p",
            "mlhw.suite": "mlp_lr_sweep",
            HEARTBEAT_TAG: utc_stamp(),
            PROCESS_TAG: process_id(suspended.pid),
        }
        peer = sweep.client.create_run(slow.info.experiment_id, run_name="p · mlp_lr_sweep", tags=tags)
        sweep.client.restore_run(slow.info.run_id)
        sweep.client.set_tag(slow.info.run_id, "mlflow.parentRunId", peer.info.run_id)  # the run it trains there
        sweep.client.delete_run(slow.info.run_id)
        sweep.ghost(slow)
        sweep.ghosts.append(peer)  # the wait's first look: its heartbeat stale, its parent FAILED, its run FINISHED
        res = reproduce(workdir)
        assert res.exit_code == 0, res.output
        assert sweep.client.get_run(peer.info.run_id).info.lifecycle_stage == "active"
        assert sweep.client.get_run(slow.info.run_id).data.tags["mlflow.parentRunId"] == peer.info.run_id
    finally:
        suspended.kill()
        suspended.wait()


def test_a_suite_parent_says_where_its_runs_are_when_another_parent_holds_them(workdir):
    """Two reproductions of one profile at once each left a FINISHED parent of every suite, the runs split between
    them: 'ci · theory' held no run and said nothing of where its one run was. So it is with runs another profile's
    reproduction made first (they stay its children): the parent's description links each, naming its parent."""
    spec = dict(SWEEP, profiles={"p": {"defaults": {"dataset": "digits"}}, "q": {"defaults": {"dataset": "digits"}}})
    (workdir / "exp.yaml").write_text(yaml.safe_dump(spec))
    assert reproduce(workdir).exit_code == 0
    res = reproduce(workdir, "--profile", "q")
    assert res.exit_code == 0, res.output
    client, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    (q,) = [r for r in runs if r.info.run_name == "q · mlp_lr_sweep"]
    (p,) = [r for r in runs if r.info.run_name == "p · mlp_lr_sweep"]
    mine = [r for r in runs if r.data.tags.get("mlhw.kind") == "mlp"]
    assert len(mine) == 2 and {r.data.tags["mlflow.parentRunId"] for r in mine} == {p.info.run_id}
    note = q.data.tags["mlflow.note.content"]
    assert "2 of its runs are children of the parent run that trained them" in note, note
    for r in mine:
        assert f"](#/experiments/{r.info.experiment_id}/runs/{r.info.run_id}" in note, note
    assert note.count("(under p · mlp_lr_sweep)") == 2, note
    assert "trained them" not in p.data.tags["mlflow.note.content"]  # its own children: nothing to say


def test_a_partial_reproduction_says_its_run_another_suites_reproduction_holds_is_not_a_peers(workdir):
    """`--only mlp_lr_sweep`, then `--only mlp_full`, whose one run is the sweep's lr 0.1: mlp_full's parent said that
    run was under the parent that trained it, 'a reproduction beside this one, another profile's, or a single
    command', none of which it was (an earlier partial reproduction of this profile made it)."""
    full = {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2, "train_size": 200, "test_size": 50, "lr": 0.1}}
    spec = dict(SWEEP, suites={"mlp_lr_sweep": sweep_suite(), "mlp_full": full})
    (workdir / "exp.yaml").write_text(yaml.safe_dump(spec))
    assert reproduce(workdir, "--only", "mlp_lr_sweep").exit_code == 0
    res = reproduce(workdir, "--only", "mlp_full")
    assert res.exit_code == 0, res.output
    _, runs = runs_of(f"sqlite:///{workdir}/mlflow.db")
    (parent,) = [
        r for r in runs if r.data.tags.get("mlhw.suite") == "mlp_full" and r.data.tags.get("mlhw.kind") == "suite"
    ]
    note = " ".join(parent.data.tags["mlflow.note.content"].split())
    assert "is a child of the parent run that trained it" in note, note
    assert "an earlier --only of another suite" in note, note


def test_a_set_that_changes_nothing_leaves_the_report_the_profiles_own(project):
    """`--set mlp_full.seeds=[8, 9]` with the profile's own seeds made the report partial (results/ci-partial/) and
    kept it from being checked; such a --set is said and dropped. One given twice is dropped once: the other stays."""
    same = reproduce(project, "--dry-run", "--set", "svm_soft.train_size=300")  # the suite's own value
    assert same.exit_code == 0, same.output
    assert "--set svm_soft.train_size: changes nothing" in same.stderr
    assert f"report: {Path('results') / 'p'}/" in same.stdout.replace("\n", "")
    twice = reproduce(project, "--dry-run", "--set", "svm_soft.C=2", "--set", "svm_soft.C=2")
    assert twice.exit_code == 0, twice.output
    assert twice.stderr.count("given again by") == 1 and "--set svm_soft.C: sets svm_soft" in twice.stdout
    assert "p-partial" in twice.stdout


def test_a_set_replaced_by_a_later_one_is_said_so_not_that_the_runs_have_its_value(project):
    """`--set svm_soft.C=2 --set svm_soft.C=3` said "--set svm_soft.C: changes nothing (the runs it reaches have that
    value already)" and then "--set svm_soft.C: sets svm_soft": the runs have C=3, not 2. The first is replaced by the
    later one, and the line says which value each is."""
    res = reproduce(project, "--dry-run", "--set", "svm_soft.C=2", "--set", "svm_soft.C=3")
    assert res.exit_code == 0, res.output
    assert "changes nothing" not in res.stderr, res.stderr
    said = " ".join(res.stderr.split())
    assert "--set svm_soft.C=2: replaced by svm_soft.C=3 (the last --set of a key counts)" in said, res.stderr
    assert "p-partial" in res.stdout


def test_a_set_given_twice_is_said_given_again_not_that_the_runs_have_its_value(project):
    """`--set svm_soft.C=2 --set svm_soft.C=2` said of the first "changes nothing (the runs it reaches have that value
    already)": the runs have C=1; the second --set gives them 2."""
    res = reproduce(project, "--dry-run", "--set", "svm_soft.C=2", "--set", "svm_soft.C=2")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "have that value already" not in said, res.stderr
    assert "--set svm_soft.C=2: given again by svm_soft.C=2 (the last --set of a key counts)" in said, res.stderr
    assert "p-partial" in res.stdout


def test_the_set_help_says_which_set_leaves_the_report_the_profiles_own(project):
    """`reproduce --help` said of --set "The report goes to results/<profile>-partial/", while a --set of the runs'
    own value is dropped and the report stays the profile's (the test above): the help says both."""
    import re

    same = reproduce(project, "--dry-run", "--set", "svm_soft.train_size=300")
    assert same.exit_code == 0, same.output
    assert f"report: {Path('results') / 'p'}/" in same.stdout.replace("\n", "")
    from typer.testing import CliRunner

    from mlhw.cli import app

    res = CliRunner().invoke(app, ["reproduce", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
    assert "changes nothing: it is said and dropped, and the report stays the profile's" in text


def test_two_reports_swapped_into_one_folder_at_once_both_succeed(tmp_path):
    """Two writers of results/<profile>/ (two reproductions, or `tables` beside one) raced between _replace's renames:
    one found the folder gone or the other's in its way (a reviewer's 300 swaps each: 28 FileNotFoundErrors). Now
    one swap at a time; every swap succeeds and the folder ends as one writer's whole report."""
    import subprocess
    import sys

    code = (
        "import sys, pathlib, tempfile\n"
        "from mlhw.report import _replace\n"
        "root, me = pathlib.Path(sys.argv[1]), sys.argv[2]\n"
        "for i in range(150):\n"
        "    new = pathlib.Path(tempfile.mkdtemp(dir=root, prefix='.new-'))\n"
        "    (new / 'REPORT.md').write_text(f'{me} {i}')\n"
        "    _replace(new, root / 'tiny')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), who], stderr=subprocess.PIPE, text=True)
        for who in ("a", "b")
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert (tmp_path / "tiny" / "REPORT.md").read_text() in ("a 149", "b 149")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no old folder left behind, no lock file


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_hangup_while_a_new_store_is_made_waits_for_the_store():
    """A command ends its runs on a hangup as on SIGTERM: one that landed while MLflow created a new database's tables
    left a store every later command failed on; it is held until the block ends, as Ctrl-C and SIGTERM are."""
    from mlhw import lifecycle
    from mlhw.store import signals_deferred

    before = signal.signal(signal.SIGHUP, lifecycle.terminate)
    finished = False
    try:
        with pytest.raises(lifecycle.Terminated) as stop:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.2)  # (the handler runs at the next bytecode: it would have raised here)
                finished = True
        assert finished and stop.value.signum == signal.SIGHUP
    finally:
        signal.signal(signal.SIGHUP, before)
        lifecycle.expect_sigterm()
