"""A reproduction stopped at its very end, once its report is in place and before its verdict is said: the folder
holds the new results, and the baseline they replaced was never compared with them. The stop said "the next `mlhw
reproduce` resumes", which then found the report up to date and exited 0: a drift that the uninterrupted command
fails with exit 1 was never said."""

import re

import pandas as pd
import yaml
from helpers import light_spec, reproduce_tiny

_reproduce = reproduce_tiny


def _drift_the_baseline(folder):
    csv = folder / "tables" / "mlp_full.csv"
    df = pd.read_csv(csv)
    df.loc[0, "test_acc_mean"] = df.loc[0, "test_acc_mean"] - 0.3  # far beyond its tolerance
    df.to_csv(csv, index=False)


def test_a_stop_after_the_report_replaced_the_baseline_says_it_was_not_checked(workdir, monkeypatch):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    first = _reproduce(workdir)
    assert first.exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    _drift_the_baseline(folder)
    # uninterrupted, the same reproduction fails the moved baseline (the control)
    control = _reproduce(workdir)
    assert control.exit_code == 1 and "check FAILED" in control.stderr, control.output
    control_said = " ".join(control.stderr.split())
    assert "not reproduced: results/tiny now holds these results" in control_said, control_said
    assert "not checked against a baseline" not in control_said, control_said  # one verdict, not two
    _drift_the_baseline(folder)

    import mlhw.report

    def stop(*a, **kw):  # Ctrl-C while the suite parents are given the report, after its folder's swap
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "report_in_run", stop)
    res = _reproduce(workdir)
    assert res.exit_code == 130, res.output
    said = " ".join(res.stderr.split())
    assert "check FAILED" not in said and "against the baseline" not in said  # the verdict was never said
    assert "the next `mlhw reproduce` resumes" not in said, said  # it does not: it compares with the new results
    assert "results/tiny/ was already written anew, whole, and was not checked against the results it replaced" in said
    assert "`git diff results/tiny/tables` shows what moved" in said
    assert pd.read_csv(folder / "tables" / "mlp_full.csv").loc[0, "test_acc_mean"] > 0.5  # the new results


def test_a_stop_before_the_report_still_says_the_next_reproduce_resumes(workdir, monkeypatch):
    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    import mlhw.report

    def stop(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "collect", stop)  # the report's first step: nothing written yet
    res = _reproduce(workdir)
    assert res.exit_code == 130, res.output
    said = " ".join(res.stderr.split())
    assert "the next `mlhw reproduce` resumes" in said and "written anew" not in said, said
    assert not (workdir / "results" / "tiny").exists()


def test_a_report_killed_half_built_leaves_no_folder_behind_once_a_report_is_written(workdir):
    """SIGKILL (the OOM killer) while the report was being built beside results/<profile>/ left the
    folder it was built in (`results/.tiny.4vtshyij/`, half its tables), one more at each such stop, for ever: hidden
    from `ls`, not from `git status`. The next report removes those whose process is gone."""
    import os
    import signal
    import subprocess
    import sys

    from helpers import wait_for

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    argv = ["reproduce", "--profile", "tiny", "--file", "exp.yaml", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"]
    env = {**os.environ, "MLHW_JOBS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhw", *argv], cwd=workdir, env=env, stderr=subprocess.PIPE, text=True
    )
    results = workdir / "results"

    def building():
        return [p for p in results.iterdir() if p.name.startswith(".tiny.") and (p / "tables").is_dir()]

    try:
        wait_for(building, proc, every=0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    left = [p.name for p in results.iterdir() if p.name.startswith(".tiny.")]
    assert left, "the report was not caught half-built"
    res = _reproduce(workdir)  # its runs are done: it compiles the report again
    assert res.exit_code == 0, res.output
    assert (results / "tiny" / "REPORT.md").is_file()
    assert [p.name for p in results.iterdir() if p.name.startswith(".tiny.")] == [], left


def test_a_report_being_built_by_a_live_process_is_left_alone(workdir):
    """Only the folders of a process known gone are removed: one still building (another reproduction of the same
    profile, on this machine) is its own."""
    import tempfile
    from pathlib import Path

    from mlhw.lifecycle import process_token
    from mlhw.report import BUILDING, remove_abandoned

    final = workdir / "results" / "tiny"
    final.parent.mkdir()
    live = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tiny.{BUILDING}-{process_token()}."))
    other_machine = final.parent / f".tiny.{BUILDING}-00000000-1-1.abcdefgh"
    other_machine.mkdir()
    assert remove_abandoned(final) == [] and live.is_dir() and other_machine.is_dir()


def test_the_git_diff_it_suggests_is_a_command_the_shell_runs_under_a_folder_with_spaces(workdir, monkeypatch):
    """`--results-dir 'my results'`: the verdict and the stop after the swap said `git diff my results/tiny/tables`,
    which git reads as two paths, neither of them the tables (the other commands mlhw suggests are quoted)."""
    import re
    import shlex

    import mlhw.report

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    first = _reproduce(workdir, "--results-dir", "my results")
    assert first.exit_code == 0, first.output
    folder = workdir / "my results" / "tiny"
    expected = ["git", "diff", "my results/tiny/tables"]
    _drift_the_baseline(folder)
    drifted = _reproduce(workdir, "--results-dir", "my results")
    assert drifted.exit_code == 1, drifted.output
    command = re.search(r"`(git diff [^`]*)` shows what moved", " ".join(drifted.stderr.split()))
    assert command and shlex.split(command[1]) == expected, drifted.stderr
    _drift_the_baseline(folder)

    def stop(*a, **kw):  # after the folder's swap, before the verdict
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "report_in_run", stop)
    stopped = _reproduce(workdir, "--results-dir", "my results")
    assert stopped.exit_code == 130, stopped.output
    command = re.search(r"`(git diff [^`]*)` shows what moved", " ".join(stopped.stderr.split()))
    assert command and shlex.split(command[1]) == expected, stopped.stderr


def test_a_report_folder_whose_pid_another_process_now_has_is_removed(workdir):
    """A build folder names its process by machine, pid and start time: once that process is gone its pid may be
    another's (here this test's own, which started at another time). The folder is still abandoned: a pid alone
    would have kept it for as long as the pid stayed in use."""
    import os

    from mlhw.lifecycle import process_token
    from mlhw.report import BUILDING, remove_abandoned

    final = workdir / "results" / "tiny"
    final.parent.mkdir()
    machine, pid, started = process_token().split("-")
    assert int(pid) == os.getpid()
    reused = final.parent / f".tiny.{BUILDING}-{machine}-{pid}-{int(started) + 1}.abcdefgh"  # not this process
    reused.mkdir()
    assert remove_abandoned(final) == [reused] and not reused.exists()


def test_a_stop_during_the_swap_of_a_first_report_says_it_is_written_and_that_there_was_nothing_to_check(
    workdir, monkeypatch
):
    """Ctrl-C while the report's folder is swapped in (held until the swap is done): the folder is the new report.
    With no results before it (a first reproduction) there was no baseline: the stop says the folder is written,
    not that the next reproduce resumes, nor that it was not checked against results it replaced (there were none)."""
    import mlhw.report

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    swap = mlhw.report._replace

    def swap_then_stop(*a, **kw):  # the signal came during the swap, and was held until it was done
        swap(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "_replace", swap_then_stop)
    res = _reproduce(workdir)
    assert res.exit_code == 130, res.output
    said = " ".join(res.stderr.split())
    assert "results/tiny/ was already written anew, whole" in said, said
    assert "the next `mlhw reproduce` resumes" not in said, said
    assert "not checked against" not in said and "git diff" not in said, said
    assert (workdir / "results" / "tiny" / "REPORT.md").is_file()


_KILL_BETWEEN_THE_RENAMES = """
import os, signal, sys
from pathlib import Path
import mlhw.report as R

renames = []
real = os.replace


def replace(src, dst):
    real(src, dst)
    renames.append(dst)
    if len(renames) == 1:  # the old report moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)


R.os.replace = replace
new, final = Path(sys.argv[1]), Path(sys.argv[2])
R._swap(new, final)
"""


def test_a_report_killed_between_the_swaps_two_renames_is_put_back_by_the_next_report(workdir):
    """SIGKILL after the swap moved the old report aside and before the new one took its place: results/<profile>/
    was gone and the report lay hidden in `.<profile>.old-<pid>/` for ever (the only copy). The next report puts it
    back before it builds its own; a report killed there by a live process, or with a report in place, is not."""
    import subprocess
    import sys

    from mlhw.report import OLD, remove_abandoned

    results = workdir / "results"
    final, new = results / "tiny", results / "new"
    (final / "tables").mkdir(parents=True)
    (final / "REPORT.md").write_text("the old report\n")
    (final / "tables" / "t.csv").write_text("a\n1\n")
    new.mkdir()
    (new / "REPORT.md").write_text("the new report\n")
    proc = subprocess.run([sys.executable, "-c", _KILL_BETWEEN_THE_RENAMES, str(new), str(final)], cwd=workdir)
    assert proc.returncode == -9
    aside = [p for p in results.iterdir() if p.name.startswith(f".tiny.{OLD}-")]
    assert not final.exists() and len(aside) == 1, sorted(results.iterdir())  # the kill landed where it should

    assert remove_abandoned(final) == []  # nothing removed: the report is put back
    assert (final / "REPORT.md").read_text() == "the old report\n" and (final / "tables" / "t.csv").is_file()
    assert not aside[0].exists()


def test_a_report_moved_aside_by_a_process_gone_is_removed_once_a_report_is_in_place(workdir):
    from mlhw.lifecycle import process_token
    from mlhw.report import OLD, remove_abandoned

    final = workdir / "results" / "tiny"
    final.mkdir(parents=True)
    (final / "REPORT.md").write_text("the new report\n")
    machine, pid, started = process_token().split("-")
    gone = final.parent / f".tiny.{OLD}-{machine}-{pid}-{int(started) + 1}"  # this pid, another process
    live = final.parent / f".tiny.{OLD}-{process_token()}"  # this process's own swap, under way
    for p in (gone, live):
        p.mkdir()
        (p / "REPORT.md").write_text("the old report\n")
    assert remove_abandoned(final) == [gone] and not gone.exists() and live.is_dir()
    assert (final / "REPORT.md").read_text() == "the new report\n"
    live_only = workdir / "results" / "other"  # a live swap's, the report not yet in place: left to its process
    (other := final.parent / f".other.{OLD}-{process_token()}").mkdir()
    assert remove_abandoned(live_only) == [] and other.is_dir() and not live_only.exists()


def _hide_as_killed_mid_swap(folder):
    """results/<profile>/ as a SIGKILL between the swap's two renames leaves it: moved aside by a process now gone."""
    from mlhw.lifecycle import process_token
    from mlhw.report import OLD

    machine, pid, started = process_token().split("-")
    aside = folder.with_name(f".{folder.name}.{OLD}-{machine}-{pid}-{int(started) + 1}")
    folder.rename(aside)
    return aside


def test_the_report_a_killed_swap_left_aside_is_put_back_before_it_is_the_baseline(workdir):
    """After such a kill the next reproduce found no results/<profile>/: it was checked against nothing and exited 0
    where the hidden baseline would have failed it. It is put back first, and the drift is said (exit 1)."""
    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    _drift_the_baseline(folder)
    (folder / "notes.md").write_text("a user's notes\n")
    aside = _hide_as_killed_mid_swap(folder)
    dry = _reproduce(workdir, "--dry-run")
    assert dry.exit_code == 0 and aside.is_dir() and not folder.exists(), dry.output  # a dry run writes nothing
    assert f"left it in {aside.name}/" in " ".join(dry.stderr.split()), dry.stderr
    res = _reproduce(workdir)
    said = " ".join(res.stderr.split())
    assert res.exit_code == 1 and "check FAILED" in said, res.output
    assert f"put back results/tiny/: a process killed while it replaced the report had left it in {aside.name}/" in said
    assert not aside.exists() and (folder / "notes.md").read_text() == "a user's notes\n"
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]


def test_check_puts_back_the_report_a_killed_swap_left_aside(workdir):
    from helpers import invoke

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    aside = _hide_as_killed_mid_swap(folder)
    res = invoke("check", "--profile", "tiny", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0 and "put back" in res.stderr, res.output
    assert folder.is_dir() and not aside.exists()


def test_a_stop_after_a_partial_report_is_in_place_names_the_baseline_it_was_not_checked_against(workdir, monkeypatch):
    """--only of a suite whose peers have no runs in this store: the report is results/tiny-partial/, checked against
    the profile's own results/tiny/ (its suite's table). A stop once the partial report is in place says so; it is
    not the profile's folder that was replaced, so no `git diff` of it is offered."""
    import mlhw.report

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    baseline = (workdir / "results" / "tiny" / "tables" / "mlp_full.csv").read_bytes()
    other = ("--tracking-uri", f"sqlite:///{workdir}/other.db", "--only", "mlp_full")

    def stop(*a, **kw):  # after the folder's swap, before the verdict
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "report_in_run", stop)
    res = _reproduce(workdir, *other)
    assert res.exit_code == 130, res.output
    said = " ".join(res.stderr.split())
    assert "results/tiny-partial/ was already written anew, whole, and was not checked against results/tiny/" in said
    assert "git diff" not in said and "the next `mlhw reproduce` resumes" not in said, said
    assert (workdir / "results" / "tiny-partial" / "tables" / "mlp_full.csv").is_file()
    assert (workdir / "results" / "tiny" / "tables" / "mlp_full.csv").read_bytes() == baseline


def test_a_symlinked_report_folders_killed_swap_is_put_back_before_it_is_the_baseline(workdir):
    """results/<profile> a link to another folder: the report is swapped where it points, and a SIGKILL between the
    renames leaves the link dangling and the old report beside its target. The baseline read went through the
    dangling link (put_back saw a link there and did nothing): no baseline, checked against nothing, exit 0, and
    the drifted report was then put back and overwritten unchecked; `mlhw check` said there was no baseline."""
    from helpers import invoke

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    target = workdir / "elsewhere" / "tiny"
    target.parent.mkdir()
    link = workdir / "results" / "tiny"
    link.parent.mkdir()
    link.symlink_to(target, target_is_directory=True)
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    assert (target / "REPORT.md").is_file()
    _drift_the_baseline(target)
    aside = _hide_as_killed_mid_swap(target)
    assert link.is_symlink() and not link.exists()
    res = invoke("check", "--profile", "tiny", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 1 and "put back" in res.stderr, res.output  # the drifted baseline, read
    assert target.is_dir() and not aside.exists() and link.is_symlink()
    aside = _hide_as_killed_mid_swap(target)
    res = _reproduce(workdir)
    said = " ".join(res.stderr.split())
    assert res.exit_code == 1 and "check FAILED" in said, res.output
    assert "put back results/tiny/" in said, said
    assert not aside.exists() and link.is_symlink() and (target / "REPORT.md").is_file()


def test_a_report_left_aside_that_cannot_be_moved_back_is_one_line_naming_both_folders(workdir, monkeypatch):
    """A results folder this user cannot write in (a read-only mount): the rename's OSError went up as a traceback
    from `mlhw check` and `mlhw reproduce`, naming neither the report nor why it was being moved."""
    import errno
    import os
    import shlex
    from pathlib import Path

    from helpers import assert_one_line_error, invoke

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    aside = _hide_as_killed_mid_swap(folder)

    def read_only(self, target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self), str(target))

    monkeypatch.setattr(Path, "replace", read_only)
    uri = f"sqlite:///{workdir}/mlflow.db"
    for res in (invoke("check", "--profile", "tiny", "--tracking-uri", uri), _reproduce(workdir)):
        shown = f"results/{aside.name}"  # (the command's results/, where it ran: workdir)
        line = assert_one_line_error(res, "error: results/tiny/ is missing: ", f"left it in {shown}/")
        assert "(Read-only file system)" in line, line
        mv = re.search(r"`(mv [^`]*)` puts it back", line)
        assert mv and shlex.split(mv[1]) == ["mv", shown, "results/tiny"], line
    assert aside.is_dir() and not folder.exists()


def test_tables_says_it_put_back_the_report_a_killed_swap_left_aside(workdir):
    """README: the next `mlhw reproduce`, `mlhw tables` or `mlhw check` puts it back first, and says so. `mlhw tables`
    put it back in silence (write_report's remove_abandoned), a user's notes in it carried into the new report."""
    from helpers import invoke

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    (folder / "notes.md").write_text("a user's notes\n")
    aside = _hide_as_killed_mid_swap(folder)
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    said = " ".join(res.stderr.split())
    assert res.exit_code == 0, res.output
    assert f"put back results/tiny/: a process killed while it replaced the report had left it in {aside.name}/" in said
    assert not aside.exists() and (folder / "notes.md").read_text() == "a user's notes\n"


def test_a_report_left_aside_is_removed_only_while_a_report_is_in_place(workdir, monkeypatch):
    """remove_abandoned removes a gone process's old report where a report is in place; it looked once, in put_back,
    and removed later under the lock without looking again: a swap killed in between (its report missing, the old
    one aside) lost its only copy. Here put_back found a report in place (a no-op), which was gone by the removal."""
    import mlhw.report
    from mlhw.report import remove_abandoned

    final = workdir / "results" / "tiny"
    final.parent.mkdir()
    aside = _hide_as_killed_mid_swap(_folder_with_report(final))
    monkeypatch.setattr(mlhw.report, "put_back", lambda final: None)
    assert remove_abandoned(final) == [] and (aside / "REPORT.md").read_text() == "the old report\n"
    monkeypatch.undo()
    assert remove_abandoned(final) == [] and (final / "REPORT.md").read_text() == "the old report\n"
    assert not aside.exists()


def _folder_with_report(final):
    final.mkdir()
    (final / "REPORT.md").write_text("the old report\n")
    return final


def test_a_report_folder_whose_name_leaves_no_room_for_the_token_is_still_swapped(workdir):
    """The old report is moved aside as `.<name>.mlhw-old-<process token>`, ~37 bytes longer than the name: a
    profile of 230 characters (the old `.<name>.old-<pid>` fitted in a file name's 255 bytes) failed its swap with
    ENAMETOOLONG."""
    from mlhw.report import _swap

    final = _folder_with_report(workdir / ("p" * 230))
    new = workdir / "new"
    new.mkdir()
    (new / "REPORT.md").write_text("the new report\n")
    _swap(new, final)
    assert (final / "REPORT.md").read_text() == "the new report\n"
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".p")) == []


def test_a_report_left_aside_by_another_machine_or_boot_is_named_not_put_back(workdir):
    """The aside's token names the boot and pid namespace: one from before a reboot (a power cut between the renames)
    or another machine's swap on a shared folder is not put back, and nothing said so: the reproduction went on as
    if there had never been a baseline, and its dry run had promised that `mlhw reproduce` would put it back."""
    import shlex

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert (first := _reproduce(workdir)).exit_code == 0, first.output
    folder = workdir / "results" / "tiny"
    from mlhw.layout import OLD
    from mlhw.lifecycle import process_token

    assert not process_token().startswith("00000000-")
    aside = folder.with_name(f".tiny.{OLD}-00000000-1-1")  # another machine's (or boot's) swap
    folder.rename(aside)
    for res in (_reproduce(workdir, "--dry-run"), _reproduce(workdir)):
        said = " ".join(res.stderr.split())
        assert "puts it back" in said and "`mlhw reproduce`" not in said, said
        assert f"{aside.name}/ beside it is the report a swap moved aside, by a process of another machine" in said
        mv = re.search(r"`(mv [^`]*)` puts it back", said)
        assert mv and shlex.split(mv[1]) == ["mv", f"results/{aside.name}", "results/tiny"], said
    assert aside.is_dir()


_SLOW_SWAP = """
import os, sys, time
from pathlib import Path
import mlhw.report as R

real = os.replace


def replace(src, dst):
    real(src, dst)
    if Path(dst).name.startswith(".tiny."):  # the old report moved aside, the new one not yet in place
        Path(sys.argv[3]).touch()
        time.sleep(1.5)


R.os.replace = replace
R._replace(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_live_swap_is_waited_for_not_read_as_a_missing_report(workdir):
    """Between a live swap's two renames results/<profile>/ is missing for a moment: put_back (reproduce's and check's
    restore_report) saw the folder missing and the aside a live process's, returned at once, and the baseline was
    read as absent: a reproduction beside another was checked against nothing. The swap holds the folder's lock
    between its renames: put_back takes it, and finds the new report in place."""
    import subprocess
    import sys
    import time

    from mlhw.layout import put_back

    (workdir / "results").mkdir()
    final = _folder_with_report(workdir / "results" / "tiny")
    new = workdir / "results" / "new"
    new.mkdir()
    (new / "REPORT.md").write_text("the new report\n")
    moved = workdir / "moved"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SWAP, str(new), str(final), str(moved)], cwd=workdir)
    try:
        deadline = time.monotonic() + 60
        while not moved.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the swap never moved the old report aside"
            time.sleep(0.02)
        assert not final.exists()  # (the window)
        assert put_back(final) is None
        assert (final / "REPORT.md").read_text() == "the new report\n"
    finally:
        assert proc.wait(timeout=60) == 0
