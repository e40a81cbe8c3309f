"""One tracking store across mlhw versions: a reproduction of other code (an older checkout run again after an
upgrade, a classmate's clone on a shared server) is not taken for this code's by `mlhw tables` and `mlhw check`."""

import re

import yaml
from helpers import invoke, light_spec, reproduce_tiny


def _report_runs(folder) -> set[str]:
    """The MLflow run ids REPORT.md's Runs section names (8 hex digits each)."""
    return set(re.findall(r"\| `([0-9a-f]{8})` \|", (folder / "REPORT.md").read_text()))


def test_tables_and_check_take_this_codes_reproduction_not_a_newer_one_of_other_code(workdir, monkeypatch):
    """A TA upgraded mlhw and reproduced, then ran the older checkout once more on the same store: its suite parents
    are the newest, of the old code's runs (their identities include the code). `mlhw tables` rebuilt
    results/<profile>/ from them in silence (a ci report of 91682ec's runs: lr 0.1 at 63% test accuracy where this
    code's read 74%), and `mlhw check` called that a drift, while `mlhw reproduce` found this code's runs up to date.
    Both take the newest reproduction that ran this code, and say that a newer one ran other code."""
    from mlhw import config

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    assert reproduce_tiny(workdir).exit_code == 0
    folder = workdir / "results" / "tiny"
    mine = _report_runs(folder)
    real = config._module_digest
    with monkeypatch.context() as m:  # the older mlhw: other MLP code
        m.setattr(config, "_module_digest", lambda mod: "an older mlp.py" if mod == "mlp" else real(mod))
        res = reproduce_tiny(workdir)
        assert res.exit_code == 0 and "ran 4 of 4 runs" in res.stderr, res.output
        older = _report_runs(folder)
    assert len(mine) == len(older) == 5 and len(mine & older) == 1  # the soft SVM's run is shared
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert _report_runs(folder) == mine
    # (the suites in the file's order: safe_dump sorts them; then the commit of this checkout, which made both)
    note = re.compile(
        r"^mlp_full, mlp_lr_sweep \(made by git commit \w+\): the store's newest reproduction of these ran other code "
        r"than this mlhw's; the newest that ran this code is taken, as `mlhw reproduce` reports it$",
        re.M,
    )
    assert note.search(res.stderr), res.stderr
    assert reproduce_tiny(workdir).stderr.startswith("up to date: 5 runs")  # the report is this code's, as it was
    res = invoke("check", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0 and note.search(res.stderr), res.output


def test_with_only_other_codes_reproductions_the_newest_is_taken_and_said(workdir, monkeypatch):
    """No reproduction of this code in the store (the old mlhw's alone, before any of this one): the report is of
    the newest, as before, and says that it ran other code and what runs this code's."""
    from mlhw import config

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    real = config._module_digest
    with monkeypatch.context() as m:
        m.setattr(config, "_module_digest", lambda mod: "an older mlp.py" if mod == "mlp" else real(mod))
        assert reproduce_tiny(workdir).exit_code == 0
    folder = workdir / "results" / "tiny"
    older = _report_runs(folder)
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0 and _report_runs(folder) == older, res.output
    assert re.search(
        r"^mlp_full, mlp_lr_sweep \(made by git commit \w+\): no reproduction in the store ran this mlhw's code; the "
        r"newest is taken, of other code \(`mlhw reproduce --profile tiny` runs this code's\)$",
        res.stderr,
        re.M,
    ), res.stderr


def test_the_reports_environment_names_the_commits_that_made_its_runs(workdir, monkeypatch):
    """Runs reused from an older checkout's reproduction on the same store: REPORT.md's Environment named the commit
    that compiled it alone, as if that commit had made every run."""
    from mlhw import lifecycle

    (workdir / "exp.yaml").write_text(yaml.safe_dump(light_spec()))
    real = lifecycle.git_commit()
    with monkeypatch.context() as m:  # an older checkout of the same core code: its runs are this code's, reused
        m.setattr(lifecycle, "git_commit", lambda: "0" * 40)
        assert reproduce_tiny(workdir).exit_code == 0
    folder = workdir / "results" / "tiny"
    (folder / "REPORT.md").unlink()  # (compiled again by this commit)
    res = reproduce_tiny(workdir)
    assert res.exit_code == 0 and "ran 0 of 0 runs" in res.stderr, res.output  # (reused, none trained)
    line = next(x for x in (folder / "REPORT.md").read_text().splitlines() if x.startswith("- mlhw "))
    assert line.endswith(f"git commit `{real or 'unknown'}` (compiling the report); the runs were made by git commit "
                         f"`{'0' * 40}` (5 runs)"), line  # fmt: skip
    # the runs of the compiling commit: nothing added
    res = reproduce_tiny(workdir, "--force")
    line = next(x for x in (folder / "REPORT.md").read_text().splitlines() if x.startswith("- mlhw "))
    assert res.exit_code == 0 and line.endswith(f"git commit `{real or 'unknown'}`"), line


def test_a_suite_this_codes_profile_added_is_not_dropped_for_an_older_codes_newer_report(workdir, monkeypatch):
    """The older checkout's profile lacked a suite this code's has (svm_soft here): run again after this code's
    reproduction, its report was the latest, and `mlhw tables` took the suites from it: this code's svm_soft was left
    out of the rebuilt results/<profile>/, and `mlhw check` failed its table as missing, while `mlhw reproduce` found
    all three suites up to date."""
    from mlhw import config

    spec = light_spec()
    (workdir / "exp.yaml").write_text(yaml.safe_dump(spec))
    assert reproduce_tiny(workdir).exit_code == 0
    folder = workdir / "results" / "tiny"
    mine = _report_runs(folder)
    del spec["suites"]["svm_soft"]  # the older mlhw's experiments file
    old = workdir / "old.yaml"
    old.write_text(yaml.safe_dump(spec))
    real = config._module_digest
    with monkeypatch.context() as m:
        m.setattr(config, "_module_digest", lambda mod: "an older mlp.py" if mod == "mlp" else real(mod))
        res = invoke(
            "reproduce", "--profile", "tiny", "--file", old, "--tracking-uri", f"sqlite:///{workdir}/mlflow.db"
        )
        assert res.exit_code == 0, res.output
    assert not (folder / "tables" / "svm.csv").exists()  # (the older code's report: its suites alone)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("tables", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert _report_runs(folder) == mine and (folder / "tables" / "svm.csv").is_file(), res.stderr
    assert "mlp_full, mlp_lr_sweep (made by git commit" in res.stderr, res.stderr
    assert reproduce_tiny(workdir).stderr.startswith("up to date: 5 runs")
    res = invoke("check", "--profile", "tiny", "--tracking-uri", uri)
    assert res.exit_code == 0 and "missing" not in res.stdout, res.output
