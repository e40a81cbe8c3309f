"""The table builder against numpy, and its renderings."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlhw import tables as T


def test_summarise_is_mean_and_sample_std_per_group():
    recs = [{"lr": 0.1, "acc": 0.9}, {"lr": 0.1, "acc": 0.8}, {"lr": 1.0, "acc": 0.5}, {"lr": 0.1, "acc": 0.95}]
    num = T.summarise(recs, ["lr"], ["acc"])
    assert num["lr"].tolist() == [0.1, 1.0] and num["n"].tolist() == [3, 1]
    assert num.loc[0, "acc_mean"] == np.mean([0.9, 0.8, 0.95])
    assert num.loc[0, "acc_std"] == np.std([0.9, 0.8, 0.95], ddof=1)
    assert np.isnan(num.loc[1, "acc_std"])  # one seed: no spread


def test_a_diverged_seed_is_not_left_out_of_the_mean():
    """[nan, 0.5, 0.7] was shown as 0.6000 ± 0.1414 with n=3: the NaN seed dropped from the mean, kept in n."""
    recs = [
        {"kind": "mlp", "lr": 100.0, "seed": s, "train_loss": v, "diverged": float(np.isnan(v))}
        for s, v in ((1, float("nan")), (2, 0.5), (3, 0.7))
    ]
    table = T.mlp_sweep_table([r | {"train_acc": 0.1, "test_acc": 0.1} for r in recs])
    assert np.isnan(table.numeric.loc[0, "train_loss_mean"]) and table.numeric.loc[0, "n"] == 3
    assert table.display.loc[0, "final train loss"] == "nan" and table.display.loc[0, "diverged runs"] == "1/3"


def test_a_huge_loss_is_compact_in_the_tables():
    """A finite diverged loss (lr 1e30 in float64) filled its cell with 30 digits and 4 decimals."""
    recs = [
        {"kind": "mlp", "lr": lr, "seed": 1, "train_loss": v, "train_acc": 0.1, "test_acc": 0.1, "diverged": 0.0}
        for lr, v in ((1e30, 3.843541024362904e29), (0.1, 0.1234))
    ]
    table = T.mlp_sweep_table(recs)
    assert table.display["final train loss"].tolist() == ["3.84e+29", "0.1234"]
    two = T.mlp_sweep_table([recs[0], recs[0] | {"seed": 2, "train_loss": 1.2e30}])  # mean ± std: both compact
    assert two.display["final train loss"].tolist() == ["7.92e+29 ± 5.77e+29"]


def test_a_metric_never_logged_is_a_dash_not_nan():
    """NaN is for a seed that diverged; a metric no run logged (absent) reads '-', one run missing it is left out."""
    base = {"kind": "cnn", "variant": "adam-5e-05", "optimizer": "adam", "lr": 5e-5, "batchnorm": True}
    recs = [base | {"train_loss": 0.5, "test_acc": 0.8}, base | {"train_loss": 0.7, "test_acc": 0.6}]
    assert T.cnn_table("cnn_batchnorm", recs).display.loc[0, "val acc"] == "-"
    recs[0]["val_acc"] = 0.8
    assert T.cnn_table("cnn_batchnorm", recs).display.loc[0, "val acc"] == "80.00%"  # one value: no spread


def test_runs_that_differ_in_more_than_the_seed_are_not_averaged_together():
    """`--set mlp_full.grid.lr=[0.1,0.5]`: the full-run table (one row per dataset) averaged both rates as 6 seeds."""
    base = {"kind": "mlp", "dataset": "digits", "hidden": [40], "epochs": 30, "train_size": None, "train_loss": 0.1}
    recs = [
        base | {"lr": lr, "seed": s, "train_acc": acc, "test_acc": acc}
        for lr, acc in ((0.1, 0.9), (0.5, 0.6))
        for s in (8, 9, 10)
    ]
    table = T.mlp_full_table(recs)
    assert table.numeric["n"].tolist() == [3, 3] and table.numeric["test_acc_mean"].tolist() == [0.9, 0.6]
    assert list(table.display.columns[:2]) == ["dataset", "lr"] and table.display["lr"].tolist() == ["0.1", "0.5"]
    same = T.mlp_full_table([r for r in recs if r["lr"] == 0.1])  # seeds alone: no extra column
    assert "lr" not in same.display.columns and same.numeric["n"].tolist() == [3]


def test_display_shows_mean_pm_std_only_with_several_seeds():
    recs = [
        {
            "variant": "adam-5e-05",
            "optimizer": "adam",
            "lr": 5e-5,
            "batchnorm": True,
            "train_loss": loss,
            "val_acc": a,
            "test_acc": a,
        }
        for loss, a in ((0.6, 0.61), (0.62, 0.63))
    ]
    recs.append(
        {
            "variant": "sgd-0.005",
            "optimizer": "sgd",
            "lr": 0.005,
            "batchnorm": True,
            "train_loss": 1.1,
            "val_acc": 0.48,
            "test_acc": 0.5,
        }
    )
    t = T.cnn_table("cnn_optimizers", recs, reference=True)
    assert t.display["val acc"].tolist() == ["62.00% ± 1.41%", "48.00%"]
    assert t.display["reference (loss / val / test)"].tolist()[0] == "0.6086 / 61.89% / 62.49%"
    assert t.numeric.loc[0, "reference_test_acc"] == 0.6249
    assert t.display["precision"].tolist() == ["-", "-"]  # records without it (older runs)


def test_cnn_table_shows_the_precision_and_flags_a_mix_but_keeps_it_out_of_the_csv():
    base = {"optimizer": "adam", "lr": 5e-5, "batchnorm": True, "train_loss": 0.6, "val_acc": 0.6, "test_acc": 0.6}
    recs = [base | {"variant": "adam-5e-05", "seed": s, "precision": p} for s, p in enumerate(["bf16", "fp32", "bf16"])]
    recs += [base | {"variant": "sgd-0.005", "optimizer": "sgd", "lr": 0.005, "precision": "fp32"}]
    t = T.cnn_table("cnn_optimizers", recs)
    assert t.display["precision"].tolist() == ["bf16 x2, fp32 x1 (mixed)", "fp32"]
    assert list(t.display.columns)[-2:] == ["precision", "n"] and "precision" not in t.numeric.columns


def test_markdown_escapes_pipes_and_latex_renders():
    df = pd.DataFrame({"check": ["|x| <= 1e6"], "v": ["1.0"]})
    md = T.to_markdown(df)
    assert md.splitlines()[2] == "| \\|x\\| <= 1e6 | 1.0 |"
    assert "\\begin{tabular}" in T.to_latex(df)


def test_latex_sets_signs_in_math_and_escapes_specials_once():
    """pdflatex's default OT1 encoding set `>=`, `|x|` and `±` of the .tex tables as `¿=`, `—x—`, nothing: every text
    cell now reads in plain ASCII, its signs in math, TeX's specials escaped (once: pandas' escaping is not added)."""
    import re

    cells = {  # a cell -> its LaTeX (the theory table's own cases first)
        "hinge >= 0-1 loss pointwise": r"hinge $\geq$ 0-1 loss pointwise",
        "f = 0 => zero training error": r"f = 0 $\Rightarrow$ zero training error",
        "rel. error vs max, ties, |x|<=1e6": r"rel. error vs max, ties, $|$x$|\leq$1e6",
        "sum a_i y_i != 0: L has no minimum": r"sum a\_i y\_i $\neq$ 0: L has no minimum",
        "max |alpha_i(m_i - 1 + xi_i)|": r"max $|$alpha\_i(m\_i - 1 + xi\_i)$|$",
        "0.1630 ± 0.0721": r"0.1630 $\pm$ 0.0721",
        "−3.4e-16 ≥ x ≤ 5 → y ⇒ z": r"$-$3.4e-16 $\geq$ x $\leq$ 5 $\rightarrow$ y $\Rightarrow$ z",
        "a < b > c": "a $<$ b $>$ c",
        r"5% & #1 $x {y} ~z ^2 \ w": r"5\% \& \#1 \$x \{y\} \textasciitilde{}z \textasciicircum{}2 \textbackslash{} w",
        "[784, 40, 10], --set x=1": r"{[}784, 40, 10], -{}-set x=1",
    }
    display = pd.DataFrame({"check (a_i >= 0)": list(cells), "result": ["PASS"] * len(cells)})
    tex = T.table_files(T.ResultTable("t", "Theory: |x| <= 1", display, display))["tex"]

    assert tex.isascii(), [c for c in tex if not c.isascii()]
    assert tex.splitlines()[0] == r"% Theory: $|$x$|$ $\leq$ 1"
    body = tex.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    assert [row.split(" & ")[0] for row in body] == list(cells.values())
    assert tex.split("\\toprule\n")[1].startswith(r"check (a\_i $\geq$ 0) & result \\")
    escaped = re.compile(r"\\(?:[_%&#{}]|textbackslash\{\}|textasciitilde\{\}|textasciicircum\{\})|\{\[\}|-\{\}-")
    for cell in [row.removesuffix(r" \\").split(" & ")[0] for row in body]:
        pieces = cell.replace(r"\$", "").split("$")  # text, math, text, ...
        assert len(pieces) % 2 == 1 and "$$" not in cell.replace(r"\$", ""), cell
        for text in pieces[::2]:  # outside math: only escaped specials, no <, >, |
            bare = escaped.sub("", text)
            assert not set(bare) & set("<>|_%&#{}~^\\$"), (cell, text)
        for math in pieces[1::2]:  # in math: signs and commands only
            assert re.fullmatch(r"(?:\\(?:geq|leq|neq|pm|Rightarrow|rightarrow)|[-<>|])+", math), (cell, math)


# --- `mlhw tables`: the report rebuilt from the tracking store alone -------------------------------------------


def _no_datasets(monkeypatch):
    """Any attempt to read or fingerprint a dataset fails the test."""
    import mlhw.data

    def refuse(*a, **kw):
        raise AssertionError("mlhw tables read a dataset")

    for name in ("load", "dataset_fingerprint", "check_dataset", "load_digits"):
        if hasattr(mlhw.data, name):
            monkeypatch.setattr(mlhw.data, name, refuse)


def test_tables_rebuilds_the_report_from_the_store_alone(ci_copy, workdir, monkeypatch):
    from helpers import invoke

    _no_datasets(monkeypatch)
    assert not (workdir / "data").exists()
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "rebuilt")
    assert res.exit_code == 0, res.output
    old, new = workdir / "results" / "ci", workdir / "rebuilt" / "ci"
    names = sorted(p.name for p in (old / "tables").iterdir())
    from mlhw.tables import SUITE_TABLES

    # every table of the ci profile's suites (all of them), in its three renderings
    expected = sorted(f"{t}.{ext}" for t in set(SUITE_TABLES.values()) for ext in ("md", "csv", "tex"))
    assert names == sorted(p.name for p in (new / "tables").iterdir()) == expected
    for name in names:  # the same numbers, the same renderings
        assert (new / "tables" / name).read_bytes() == (old / "tables" / name).read_bytes(), name
    assert sorted(p.name for p in (new / "figures").iterdir()) == sorted(p.name for p in (old / "figures").iterdir())
    sections = [line for line in (old / "REPORT.md").read_text().splitlines() if line.startswith("## ")]
    assert [line for line in (new / "REPORT.md").read_text().splitlines() if line.startswith("## ")] == sections
    assert {p.stat().st_mode & 0o777 for p in new.rglob("*") if p.is_file()} == {0o644}
    import re

    passed = re.search(r"theory: (\d+) of (\d+) checks pass", res.stdout)
    checks = pd.read_csv(new / "tables" / "theory.csv")
    assert passed and int(passed[1]) == int(passed[2]) == len(checks) > 30, res.stdout


def test_the_report_folder_follows_the_umask_as_its_figures_do(ci_copy, workdir):
    """Under umask 077 REPORT.md, the tables and results/<profile>/ itself were made readable by everyone (0644,
    0755), the figures and the tables/ and figures/ folders not (0600, 0700): every part now follows the umask."""
    import os

    from helpers import invoke

    old = os.umask(0o077)
    try:
        res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "private")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    folder = workdir / "private" / "ci"
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}
    assert {m for name, m in modes.items() if (folder / name).is_file()} == {0o600}, modes
    assert {m for name, m in modes.items() if (folder / name).is_dir()} == {0o700}, modes


def test_tables_in_place_and_from_a_moved_folder(ci_copy, workdir, monkeypatch):
    """The project folder moved (no data/, a new working directory): tables still rebuilds results/ci."""
    import shutil

    from helpers import invoke

    _no_datasets(monkeypatch)
    before = {p.name: p.read_bytes() for p in (workdir / "results" / "ci" / "tables").iterdir()}
    moved = workdir / "elsewhere"
    moved.mkdir()
    shutil.move(workdir / "mlflow.db", moved / "mlflow.db")
    shutil.rmtree(workdir / "results")
    monkeypatch.chdir(moved)
    res = invoke("tables", "--profile", "ci", "--tracking-uri", f"sqlite:///{moved}/mlflow.db")
    assert res.exit_code == 0, res.output
    after = {p.name: p.read_bytes() for p in (moved / "results" / "ci" / "tables").iterdir()}
    assert after == before
    assert sorted(p.name for p in moved.iterdir()) == ["mlflow.db", "results"]


def test_a_stopped_tables_names_the_folder_it_writes(ci_copy, workdir, monkeypatch):
    """Ctrl-C during `mlhw tables --results-dir out`: the message named 'results/<profile>/', a placeholder, and not
    the folder the options chose."""
    from helpers import invoke

    import mlhw.report

    def stop(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.report, "write_report", stop)
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "out")
    assert res.exit_code == 130, res.output
    assert res.stderr.strip().splitlines() == [
        f"interrupted (Ctrl-C): it starts no run; {workdir / 'out' / 'ci'}/ is as it was"
    ], res.stderr


def test_ctrl_c_at_the_swap_waits_for_it(ci_copy, workdir, monkeypatch):
    """A Ctrl-C between the two renames that swap the new folder in left no results/<profile>/ at all (the old one
    hidden as .ci.old-PID), and the message said "as it was, or replaced whole". The swap now finishes first."""
    import signal

    from helpers import invoke

    import mlhw.report

    first = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "out")
    assert first.exit_code == 0, first.output
    folder = workdir / "out" / "ci"
    (folder / "REPORT.md").write_text("old\n")  # to tell the new folder from the old
    real, calls = os.replace, []

    def replace(src, dst):  # Ctrl-C arrives as the old folder is moved aside
        if Path(dst).parent == workdir / "out":  # (figures are saved by a rename too)
            calls.append(Path(dst).name)
            if len(calls) == 1:
                signal.raise_signal(signal.SIGINT)
        real(src, dst)

    monkeypatch.setattr(mlhw.report.os, "replace", replace)
    handler = signal.getsignal(signal.SIGINT)
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "out")
    # (it failed twice in full runs, exit 0, and not on demand: what the next failure should tell)
    assert res.exit_code == 130, (calls, handler, signal.pthread_sigmask(signal.SIG_BLOCK, []), res.output[-300:])
    from mlhw.lifecycle import process_token
    from mlhw.report import OLD

    assert calls == [f".ci.{OLD}-{process_token()}", "ci"]
    assert res.stderr.strip().splitlines() == [
        f"interrupted (Ctrl-C): it starts no run; {folder}/ is written anew, whole"
    ], res.stderr
    assert (folder / "REPORT.md").read_text().startswith("# ") and sorted(os.listdir(workdir / "out")) == ["ci"]


def test_ctrl_c_while_printing_says_the_folder_is_written(ci_copy, workdir, monkeypatch):
    from helpers import invoke

    import mlhw.cli.tables

    def stop(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlhw.cli.tables, "print_tables", stop)
    res = invoke("tables", "--profile", "ci", "--tracking-uri", ci_copy, "--results-dir", workdir / "out")
    assert res.exit_code == 130, res.output
    assert res.stderr.strip().endswith(f"{workdir / 'out' / 'ci'}/ is written anew, whole"), res.stderr
    assert (workdir / "out" / "ci" / "REPORT.md").is_file()


def test_tables_takes_only_the_report_options():
    from helpers import invoke

    res = invoke("tables", "--help")
    assert res.exit_code == 0
    for option in ("--profile", "--tracking-uri", "--experiment", "--results-dir"):
        assert option in res.output
    for option in ("--data-dir", "--download", "--device", "--file"):
        assert option not in res.output


def test_tables_without_a_reproduction_is_one_line(ci_copy, workdir):
    from helpers import assert_one_line_error, invoke

    res = invoke("tables", "--profile", "digits", "--tracking-uri", ci_copy)
    assert_one_line_error(res, "--profile digits", "no finished reproduction", "mlhw reproduce --profile digits")
    assert not (workdir / "results" / "digits").exists()
    # an experiment the store lacks is the culprit, not the profile (it said "--profile ci: no finished reproduction
    # ... (experiment 'nope'; profiles there: none)"); `check` reads the store the same way
    for command in ("tables", "check"):
        res = invoke(command, "--profile", "ci", "--tracking-uri", ci_copy, "--experiment", "nope")
        line = assert_one_line_error(
            res, f"error: --experiment nope: no such experiment in {ci_copy} (experiments there: Default, mlhw)"
        )
        # in this store (without --tracking-uri it made the experiment in ./mlflow.db)
        assert line.endswith(f"`mlhw reproduce --profile ci --tracking-uri {ci_copy} --experiment nope` makes it"), line
        assert "--profile ci:" not in line and "no finished reproduction" not in line, line
    empty = workdir / "empty"
    empty.mkdir()
    # no database there at all (a CI step run from another folder: `cd /tmp && uv run --project DIR mlhw check`): it
    # said "no finished reproduction ...; run `mlhw reproduce --profile ci` first", though one was, in DIR's store
    for command in ("tables", "check"):
        res = invoke(command, "--profile", "ci", "--tracking-uri", f"sqlite:///{empty}/mlflow.db")
        line = assert_one_line_error(res, f"sqlite:///{empty}/mlflow.db: no database at {empty}/mlflow.db")
        assert "run from the project folder" in line and "no finished reproduction" not in line, line
        assert not (empty / "mlflow.db").exists()
    assert not (workdir / "results" / "ci-partial").exists()
    # a profile that experiments.yaml lacks too is not one to reproduce: the hint names the file's profiles
    res = invoke("tables", "--profile", "nope", "--tracking-uri", ci_copy)
    assert_one_line_error(
        res, "--profile nope", "experiments.yaml here has no profile 'nope' either", "digits, paper, ci"
    )
    assert "mlhw reproduce" not in res.output
    (workdir / "experiments.yaml").unlink()  # no file here: the hint cannot tell, and says so
    res = invoke("tables", "--profile", "digits", "--tracking-uri", ci_copy)
    assert_one_line_error(res, "mlhw reproduce --profile digits` first if your experiments file has it")


def test_a_run_without_the_group_key_is_kept_not_dropped():
    recs = [{"lr": 0.1, "acc": 0.9}, {"lr": None, "acc": 0.5}, {"lr": 0.1, "acc": 0.7}]
    num = T.summarise(recs, ["lr"], ["acc"])
    assert sorted(num["n"].tolist()) == [1, 2]


def test_settings_name_every_dataset_and_size_a_suite_ran_on():
    """A grid over train_size (or dataset) ran on several subsets: the Settings line names each, not the first
    run's alone; Q1's exact method does not list the subgradient's steps and rate."""
    from mlhw.report import Entry, Scope, settings_lines

    def entry(suite, i, **cfg):
        return Entry(suite, f"run {i}", f"id{suite}{i}", cfg)

    mlp = {"kind": "mlp", "dataset": "digits", "epochs": 3, "lr": 0.1, "seed": 8}
    q1 = {"kind": "svm_multiclass", "dataset": "digits", "method": "exact", "steps": 2000, "lr": 1.0, "bias": True}
    entries = [entry("mlp_full", i, **mlp, train_size=n) for i, n in enumerate((200, 1000))]
    entries.append(entry("svm_multiclass", 0, **q1))
    done = {
        "mlp_full": [
            e.config | {"run_id": e.identity, "sizes": {"train": e.config["train_size"], "test": 500}}
            for e in entries[:2]
        ],
        "svm_multiclass": [entries[2].config | {"run_id": "q1", "steps": 0, "sizes": {"train": 1297, "test": 500}}],
    }
    text = "\n".join(settings_lines(Scope("mine", entries), done))
    assert "digits, 200 train / 500 test or digits, 1,000 train / 500 test;" in text
    assert "train_size: 200, 1000" not in text  # the sizes are said once, in the data part
    q1_line = next(line for line in text.splitlines() if "svm_multiclass" in line)
    from mlhw.report import _setting

    assert _setting("hidden", []) == "none" and _setting("hidden", [100, 40]) == "100x40"  # not a blank
    assert "method exact" in q1_line and "bias yes" in q1_line and "steps" not in q1_line and " lr " not in q1_line


def test_settings_tell_a_field_from_the_runs_that_read_it():
    """`--set momentum=0.9` set the SGD run alone; the Settings read 'momentum: 0.9, 0' (Adam's 0, which it never
    reads, as a second value). And the soft SVM's bias 'free' read as 'no bias'."""
    from mlhw.report import Entry, Scope, settings_lines

    cnn = {"kind": "cnn", "dataset": "digits", "epochs": 1, "width": 0.5, "image_size": 67, "seed": 0}
    cnn |= {"batchnorm": True, "dropout": True, "batch_size": 64, "train_fraction": 1.0}
    sgd, adam = cnn | {"optimizer": "sgd", "lr": 0.005, "momentum": 0.9}, cnn | {"optimizer": "adam", "lr": 5e-5}
    soft = {"kind": "svm_soft", "dataset": "digits", "classes": [3, 8], "C": 1.0, "bias": "free", "seed": 8}
    entries = [
        Entry("cnn_optimizers", "sgd", "i1", sgd),
        Entry("cnn_optimizers", "adam", "i2", adam | {"momentum": 0.0}),
    ]
    entries.append(Entry("svm_soft", "C=1", "i3", soft))
    done = {
        "cnn_optimizers": [e.config | {"run_id": e.identity} for e in entries[:2]],
        "svm_soft": [soft | {"run_id": "i3", "classes": "3vs8", "n_train": 264, "n_test": 93}],
    }
    text = "\n".join(settings_lines(Scope("mine", entries), done))
    line = next(x for x in text.splitlines() if "cnn_optimizers" in x)
    assert "SGD momentum 0.9" in line and "momentum: " not in line, line
    soft_line = next(x for x in text.splitlines() if "svm_soft" in x)
    assert "digits 3 vs 8, 264 train / 93 test;" in soft_line and "bias free (not penalised)" in soft_line, soft_line


def test_theory_table_reads_passed_as_stored_and_orders_the_questions():
    """Rebuilt from the store, `passed` comes back as the string "False": a truthy string must not read PASS. Rows
    come out Q1 to Q4 whatever order the checks ran in, each question's rows in the order they were given."""
    given = [  # (question, data, passed)
        ("Q4", "a", "False"),
        ("Q2", "b", False),
        ("Q1", "c", np.False_),
        ("Q3(b,c)", "d", "True"),
        ("Q4", "e", True),
        ("Q1", "0", True),
        ("Q3(a)", "g", "False"),
    ]
    rows = [
        {"question": q, "claim": "c", "check": "k", "data": d, "max_error": 0.0, "tolerance": 0.0, "passed": p}
        for q, d, p in given
    ]
    table = T.theory_table(rows)
    assert table.display["question"].tolist() == ["Q1", "Q1", "Q2", "Q3(b,c)", "Q3(a)", "Q4", "Q4"]
    assert table.display["data"].tolist() == ["c", "0", "b", "d", "g", "a", "e"]
    # by hand, in that order: numpy False, True, False, "True", "False", "False", True
    assert table.display["result"].tolist() == ["FAIL", "PASS", "FAIL", "PASS", "FAIL", "FAIL", "PASS"]


def test_the_full_run_tables_reference_is_in_its_csv():
    """With a reference accuracy, the numeric table (and so the CSV `mlhw check` reads) carries it."""
    import io

    recs = [{"dataset": "mnist", "seed": 1, "train_loss": 0.1, "train_acc": 0.9, "test_acc": 0.9}]
    table = T.mlp_full_table(recs, reference=0.9512)
    assert table.numeric["reference_test_acc"].tolist() == [0.9512]
    csv = pd.read_csv(io.StringIO(T.table_files(table)["csv"]))
    assert csv["reference_test_acc"].tolist() == [0.9512] and csv["test_acc_mean"].tolist() == [0.9]
    assert "reference_test_acc" not in T.mlp_full_table(recs).numeric  # no reference, no column


def test_the_headline_is_the_best_rows_mean_and_names_that_row():
    """A sweep's parent run shows one number: the headline metric of the best row (highest mean), the row named
    with its run count. By hand: lr 0.1 has test accuracies 0.9 and 0.8 (mean 0.85), lr 1 has 0.95 alone, lr 10
    has 0.1 and 0.1; the best is lr 1's single run. The worst row (idxmin) passed every test."""
    recs = [
        {"kind": "mlp", "lr": lr, "seed": s, "train_loss": 0.1, "train_acc": acc, "test_acc": acc, "diverged": 0.0}
        for lr, s, acc in ((0.1, 1, 0.9), (0.1, 2, 0.8), (1.0, 1, 0.95), (10.0, 1, 0.1), (10.0, 2, 0.1))
    ]
    metric, value, which = T.headline(T.mlp_sweep_table(recs))
    assert (metric, which) == ("test_acc", "lr=1 (its one run's test/acc)") and value == 0.95
    recs = [r for r in recs if r["lr"] != 1.0]
    metric, value, which = T.headline(T.mlp_sweep_table(recs))
    assert (metric, which) == ("test_acc", "lr=0.1 (the mean of its 2 runs' test/acc)") and value == np.mean([0.9, 0.8])
    # a table of one row (Part 1 (c)'s mlp_full) has nothing to be best among: its parent said "dataset=digits"
    metric, value, which = T.headline(T.mlp_sweep_table([r for r in recs if r["lr"] == 0.1]))
    assert (metric, which) == ("test_acc", "its one configuration (the mean of its 2 runs' test/acc)")


def test_the_headline_names_its_row_and_metric_as_the_ui_shows_them():
    """The mlhw.best tag sits in the UI beside runs named 'Adam lr=5e-5, seed 0 ...' and a metric named val/acc: it
    said 'variant=adam-5e-05 (the mean of its 2 runs' val_acc)', an id and a name the UI shows nowhere. A rate is
    written as the runs' names write it (lr=5e-5, not 5e-05)."""
    base = {"optimizer": "adam", "lr": 5e-5, "batchnorm": True, "train_loss": 0.6, "test_acc": 0.6}
    recs = [base | {"variant": "adam-5e-05", "seed": s, "val_acc": 0.9} for s in (0, 1)]
    recs += [base | {"variant": "adam-5e-05-plain", "batchnorm": False, "seed": 0, "val_acc": 0.5}]
    metric, value, which = T.headline(T.cnn_table("cnn_batchnorm", recs))
    assert (metric, value, which) == ("val_acc", 0.9, "Adam lr=5e-5 (the mean of its 2 runs' val/acc)")
    recs[-1]["val_acc"] = 0.95
    assert T.headline(T.cnn_table("cnn_batchnorm", recs))[2] == "Adam lr=5e-5, no BN/Dropout (its one run's val/acc)"
    sweep = [
        {"kind": "mlp", "lr": lr, "seed": 1, "train_loss": 0.1, "train_acc": a, "test_acc": a, "diverged": 0.0}
        for lr, a in ((5e-5, 0.9), (0.1, 0.5))
    ]
    assert T.headline(T.mlp_sweep_table(sweep))[2] == "lr=5e-5 (its one run's test/acc)"


def test_a_theory_row_without_a_stored_verdict_is_not_a_pass():
    """A check row whose `passed` was never stored (None, or NaN through a table of runs) reads FAIL: only True
    (or the store's "True") is a pass. A rule that read every value but False as PASS passed every test."""
    row = {"question": "Q2", "claim": "c", "check": "k", "data": "d", "max_error": 0.0, "tolerance": 0.0}
    rows = [row | {"passed": None}, row | {"passed": float("nan")}, row | {"passed": "nan"}, row | {"passed": True}]
    assert T.theory_table(rows).display["result"].tolist() == ["FAIL", "FAIL", "FAIL", "PASS"]


def test_settings_say_where_the_runs_compute_otherwise_than_the_assignment():
    """The Settings showed 'hidden 40' and 'dtype float32', the tables 'precision bf16', without saying that the
    assignment's network reads 784 pixels (digits: 64), that its skeleton computes in NumPy float64, or that bf16
    is an autocast the assignment never asked for."""
    from mlhw.report import Entry, Scope, settings_lines

    mlp = {"kind": "mlp", "dataset": "digits", "epochs": 30, "lr": 0.1, "seed": 8, "dtype": "float32"}
    cnn = {"kind": "cnn", "dataset": "digits", "epochs": 10, "width": 0.5, "image_size": 67, "seed": 0}
    cnn |= {"optimizer": "adam", "lr": 5e-5, "batchnorm": True, "dropout": True, "train_fraction": 1.0}
    entries = [Entry("mlp_full", "seed 8", "m", mlp), Entry("cnn_optimizers", "adam", "c", cnn)]
    done = {
        "mlp_full": [mlp | {"run_id": "m"}],
        "cnn_optimizers": [cnn | {"run_id": "c", "precision": "bf16"}],
    }
    text = " ".join("\n".join(settings_lines(Scope("mine", entries), done)).split())
    assert "On digits the MLP's input layer has 64 units (8x8 images) where the assignment's [784, 40, 10]" in text
    assert "The MLP trains in float32 where the skeleton computes in NumPy float64 (`--set dtype=float64`" in text
    assert "AlexNet trained with bf16 autocast" in text
    # the profile's runs in fp32 are reproduce's option (ad290b0), not a single run's `mlhw cnn train --precision`
    assert "(`mlhw reproduce --precision fp32 --force` trains these runs in it)." in text
    assert "skeleton's overflows" not in text  # lr 0.1 alone: nothing overflows in the skeleton either
    done["mlp_full"] = [mlp | {"run_id": "m", "lr": lr} for lr in (0.1, 10.0, 100.0)]
    text = " ".join("\n".join(settings_lines(Scope("mine", entries), done)).split())
    assert "the skeleton's overflows at large rates (the assignment expects it): lr 10 and 100 give finite" in text
    # on MNIST in float64 and AlexNet in fp32 there is nothing to say
    done = {
        "mlp_full": [mlp | {"run_id": "m", "dataset": "mnist", "dtype": "float64"}],
        "cnn_optimizers": [cnn | {"run_id": "c", "precision": "fp32"}],
    }
    text = "\n".join(settings_lines(Scope("mine", entries), done))
    assert "64 units" not in text and "NumPy float64" not in text and "autocast" not in text


def test_the_theory_tables_note_says_what_each_of_its_data_is(monkeypatch):
    """The theory table's data column read 'blobs', 'overlapping', 'random', 'digits 3v8' with nothing in REPORT.md
    to say what they are, nor what 'max error' and 'tolerance' mean together. TABLE_NOTES['theory'] says it, and
    what it says of each dataset is held here to what mlhw.theory.run_checks hands its checks."""
    from scipy.optimize import linprog

    from mlhw import theory
    from mlhw.data import load_digits_data

    seen: dict[str, tuple] = {}
    data: dict[str, tuple] = {}

    def record(X, y, name, *_, **__):
        seen[name], data[name] = (X.shape, len(np.unique(y))), (X, y)
        return []

    for check in ("check_q1", "check_q3"):
        monkeypatch.setattr(theory, check, record)
    for check in ("check_q2", "check_q4", "check_backprop"):  # their data is "random": drawn by each check itself
        monkeypatch.setattr(theory, check, lambda *a, **k: [])
    theory.run_checks(load_digits_data())
    assert seen == {
        "blobs": ((300, 6), 4),  # 5 dimensions and the bias feature
        "overlapping": ((120, 6), 2),
        "digits": ((1297, 65), 10),
        "digits 3v8": ((264, 64), 2),
    }
    X, y = data["overlapping"]  # "not linearly separable": no (w, b) with y_i (<w, x_i> + b) >= 1 for all i
    A = np.hstack([X, np.ones((len(X), 1))])
    assert linprog(np.zeros(7), A_ub=-y[:, None] * A, b_ub=-np.ones(len(y)), bounds=(None, None)).status == 2
    note = T.TABLE_NOTES["theory"]
    for said in (
        "*blobs*, 300 points of 4 well-separated Gaussian blobs in 5 dimensions, with a bias feature",
        "*overlapping*, 120 Gaussian points in 6 dimensions",
        "*random*, inputs each check draws itself",
        "the embedded digits' 1,297 training images (Q1: all 10 classes, with a bias feature; Q3: the 264 3s and 8s)",
        "a row passes when it is at most the *tolerance*",
    ):
        assert said in note, said


@pytest.mark.parametrize(
    "grid, fixed, title",
    [
        ({"lr": [0.001, 0.0001]}, {}, "s: AlexNet by lr, Adam, batch 64, 1 epoch"),
        (
            {"batchnorm": [True, False]},
            {"dropout": False},
            "s: AlexNet by batchnorm, Adam lr=5e-5, no Dropout, batch 64",
        ),
        ({"optimizer": ["sgd", "adam"]}, {}, "s: AlexNet by optimizer, lr=5e-5, batch 64, 1 epoch"),
        ({"seed": [0, 1]}, {"batchnorm": False, "dropout": False}, "s: AlexNet, Adam lr=5e-5, no BN/Dropout, batch 64"),
    ],
    ids=["lr", "batchnorm", "optimizer", "seeds"],
)
def test_an_added_alexnet_suites_title_says_every_training_setting_its_grid_does_not_vary(grid, fixed, title):
    """The heading of an added suite's table names the settings its runs share: a grid of batchnorm or of the
    optimizer left out the lr they all trained at (and BN/Dropout left off), as if the table held every rate."""
    from mlhw.config import CNNConfig

    field, values = next(iter(grid.items()))
    base = {"dataset": "digits", "optimizer": "adam", "lr": 5e-5, "epochs": 1} | fixed
    records = [
        CNNConfig(**(base | {field: v})).model_dump()
        | {"variant": None, "train_loss": 2.0, "val_acc": 0.5, "test_acc": 0.5, "diverged": 0.0, "precision": "fp32"}
        for v in values
    ]
    assert T.added_suite_table("s", records).title.startswith(title)


def test_the_shared_runs_note_says_which_tables_count_them():
    """Two suites that share runs were said to be "counted in both tables" where one of them has none: an added
    theory suite of two runs (T.untabled_reason), one of them the built-in theory suite's."""
    from mlhw.report import Entry, Scope, settings_lines

    full, light = ({"kind": "theory", "digits": d} for d in (True, False))
    entries = [Entry("theory", "t", "a", full), Entry("th2", "t", "a", full), Entry("th2", "l", "b", light)]
    done = {"theory": [full | {"run_id": "a"}], "th2": [full | {"run_id": "a"}, light | {"run_id": "b"}]}
    text = " ".join("\n".join(settings_lines(Scope("mine", entries), done)).split())
    assert "th2 and theory share 1 run (the same settings: one MLflow run each, counted in the table of theory)" in text
    assert "No table shows this suite (the theory table holds one run's checks, and it has 2)" in text
    mlp = {"kind": "mlp", "dataset": "digits", "lr": 0.1, "seed": 8}
    entries = [Entry("mlp_full", "s", "m", mlp), Entry("my_mlp", "s", "m", mlp)]
    done = {"mlp_full": [mlp | {"run_id": "m"}], "my_mlp": [mlp | {"run_id": "m"}]}  # an added suite's own table
    text = " ".join("\n".join(settings_lines(Scope("mine", entries), done)).split())
    assert "my_mlp and mlp_full share 1 run (the same settings: one MLflow run each, counted in both tables)" in text


def test_settings_say_the_figures_band_is_the_range_not_the_tables_standard_deviation():
    """The tables' ± is the standard deviation, the figures' band the min-max over seeds: a grader checking lr 1's
    '73.12% ± 20.16%' against its figure found a band from 59.68% to 96.30%, and the report said what ± is, not what
    the band is (only the figure's legend did). Said where there are figures; the SVMs alone draw none."""
    from mlhw.report import Entry, Scope, settings_lines

    mlp = {"kind": "mlp", "dataset": "digits", "epochs": 3, "lr": 0.1}
    sizes = {"train": 1297, "test": 500}
    entries = [Entry("mlp_lr_sweep", f"seed {s}", f"id{s}", mlp | {"seed": s}) for s in (8, 9, 10)]
    done = {"mlp_lr_sweep": [e.config | {"run_id": e.identity, "sizes": sizes} for e in entries]}
    text = " ".join("\n".join(settings_lines(Scope("mine", entries), done)).split())
    assert "± is the sample standard deviation (n - 1) over the seeds" in text
    assert "in the figures, a line is the mean over the seeds and its shaded band their range (min to max)" in text
    # no band to explain: mlp_full, which draws no figure; one seed a line (the ci profile's sweep)
    full = [dataclasses.replace(e, suite="mlp_full") for e in entries]
    done = {"mlp_full": [e.config | {"run_id": e.identity, "sizes": sizes} for e in full]}
    text = " ".join("\n".join(settings_lines(Scope("mine", full), done)).split())
    assert "± is the sample standard deviation" in text and "in the figures" not in text
    done = {"mlp_lr_sweep": [entries[0].config | {"run_id": "id8", "sizes": sizes}]}
    text = " ".join("\n".join(settings_lines(Scope("mine", entries[:1]), done)).split())
    assert "± is the sample standard deviation" in text and "in the figures" not in text
    soft = {"kind": "svm_soft", "dataset": "digits", "classes": [3, 8], "C": 1.0, "bias": "free", "seed": 8}
    svm = [Entry("svm_soft", "C=1", "i3", soft)]
    done = {"svm_soft": [soft | {"run_id": "i3", "classes": "3vs8", "n_train": 264, "n_test": 93}]}
    text = " ".join("\n".join(settings_lines(Scope("mine", svm), done)).split())
    assert "± is the sample standard deviation" in text and "in the figures" not in text
