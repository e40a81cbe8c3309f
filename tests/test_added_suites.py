"""A suite added to experiments.yaml (an MLP or AlexNet grid of the user's) gets a table of its own: a row per
setting of its grid, its kind's final metrics as mean ± std over its seeds, equal to what MLflow holds; a figure of
its curves; a section of REPORT.md. Before, it was only settings and run ids in the report."""

import shutil
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import invoke, runs_of

from mlhw.lifecycle import metric_key

SPEC = {
    "version": 1,
    "suites": {
        "my_mlp": {
            "kind": "mlp",
            "part": "mlp.b",
            "description": "rates by batch sizes",
            "base": {"epochs": 1, "train_size": 200, "test_size": 50},
            "grid": {"lr": [0.1, 100], "batch_size": [10, 20]},
            "seeds": [8, 9],
        },
        "my_cnn_lrs": {
            "kind": "cnn",
            "part": "cnn.b",
            "description": "Adam rates",
            "base": {"optimizer": "adam", "epochs": 1, "width": 0.125, "image_size": 67},
            "grid": {"lr": [0.001, 0.0001]},
            "seeds": [0, 1],
        },
    },
    "profiles": {"p": {"defaults": {"dataset": "digits"}}},
}
METRICS = {"mlp": ["train_loss", "train_acc", "test_acc"], "cnn": ["train_loss", "val_acc", "test_acc"]}


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    root = tmp_path_factory.mktemp("added")
    (root / "exp.yaml").write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        res = invoke("reproduce", "--profile", "p", "--file", root / "exp.yaml", "--tracking-uri", uri, "--jobs", "1")
    assert res.exit_code == 0, res.output
    return root, uri, res


def _oracle(uri: str, suite: str, kind: str, fields: list[str]) -> dict[tuple, dict]:
    """(grid values) -> {metric: (mean, std), n, diverged}, computed here from the runs' own MLflow metrics."""
    _, found = runs_of(uri)
    groups = defaultdict(list)
    for r in found:
        if r.data.tags.get("mlhw.kind") == kind and suite in r.data.tags.get("mlhw.suites", "").split(","):
            groups[tuple(float(r.data.params[f]) for f in fields)].append(r)
    out = {}
    for key, rs in groups.items():
        row = {"n": len(rs), "diverged": sum("mlhw.diverged_epoch" in r.data.tags for r in rs)}
        for m in METRICS[kind]:
            values = np.array([next(v for k, v in r.data.metrics.items() if metric_key(k) == m) for r in rs])
            row[m] = (float(np.mean(values)), float(np.std(values, ddof=1)))
        out[key] = row
    return out


@pytest.mark.parametrize(
    "suite, kind, fields, grid",
    [
        ("my_mlp", "mlp", ["batch_size", "lr"], [(10, 0.1), (20, 0.1), (10, 100), (20, 100)]),
        ("my_cnn_lrs", "cnn", ["lr"], [(0.001,), (0.0001,)]),
    ],
)
def test_an_added_suites_table_is_its_grid_with_the_seeds_mean_and_std_of_its_mlflow_runs(
    added, suite, kind, fields, grid
):
    root, uri, _ = added
    table = pd.read_csv(root / "results" / "p" / "tables" / f"{suite}.csv")
    metrics = METRICS[kind] + ["diverged"]
    assert list(table.columns) == fields + ["n"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    assert sorted(tuple(map(float, row)) for row in table[fields].itertuples(index=False)) == sorted(
        tuple(map(float, g)) for g in grid
    )
    oracle = _oracle(uri, suite, kind, fields)
    assert sorted(oracle) == sorted(tuple(map(float, row)) for row in table[fields].itertuples(index=False))
    for _, row in table.iterrows():
        want = oracle[tuple(float(row[f]) for f in fields)]
        assert row["n"] == want["n"] == 2
        for m in METRICS[kind]:
            assert row[f"{m}_mean"] == pytest.approx(want[m][0], rel=1e-9, nan_ok=True), (m, row)
            assert row[f"{m}_std"] == pytest.approx(want[m][1], rel=1e-9, abs=1e-12, nan_ok=True), (m, row)
        assert row["diverged_mean"] * row["n"] == want["diverged"]
    md = (root / "results" / "p" / "tables" / f"{suite}.md").read_text().splitlines()
    header = [c.strip() for c in md[2].strip("|").split("|")]  # (md[0]: the title, md[1]: blank)
    assert header[: len(fields)] == fields and header[-1] == "n" and "diverged runs" in header
    assert ("val acc" in header) == (kind == "cnn") and ("train acc" in header) == (kind == "mlp")
    assert len(md) == 4 + len(grid)
    assert all(" ± " in line for line in md[4:])  # two seeds a row: mean ± std
    assert (root / "results" / "p" / "figures" / f"{suite}.png").stat().st_size > 0


def test_an_added_suite_has_a_report_section_titled_with_its_description_data_and_settings(added):
    root, _, res = added
    report = (root / "results" / "p" / "REPORT.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("## my_")]
    assert sorted(headings) == [
        "## my_cnn_lrs (Adam rates): AlexNet by lr, Adam, batch 64, 1 epoch on digits",
        "## my_mlp (rates by batch sizes): MLP [40] by batch_size, lr, 1 epoch on digits",
    ]
    assert "(CSV: `tables/my_mlp.csv`, LaTeX: `tables/my_mlp.tex`)" in report
    assert "![my_cnn_lrs on digits: training loss and validation accuracy per epoch](figures/my_cnn_lrs.png)" in report
    assert "No table shows" not in report
    assert "no table shows it" not in res.stderr
    assert "my_mlp (rates by batch sizes): MLP [40] by batch_size, lr" in " ".join(res.stdout.split())  # printed
    # the suite's parent run holds its table and figure, as the assignment's suites' parents hold theirs
    client, found = runs_of(f"sqlite:///{root}/mlflow.db")
    (parent,) = [
        r for r in found if r.data.tags.get("mlhw.kind") == "suite" and r.data.tags.get("mlhw.suite") == "my_mlp"
    ]
    paths = {a.path for folder in ("tables", "figures") for a in client.list_artifacts(parent.info.run_id, folder)}
    assert {"tables/my_mlp.csv", "tables/my_mlp.md", "tables/my_mlp.tex", "figures/my_mlp.png"} <= paths


def test_a_baseline_that_holds_an_added_suites_table_gates_it_where_check_yaml_lists_no_tables(added, tmp_path):
    """`mlhw check` compares every table of a baseline whose check.yaml does not list its tables: an added suite's
    table among them (rows keyed by its grid); a row moved beyond its tolerance fails."""
    root, uri, _ = added
    baseline = tmp_path / "p"
    shutil.copytree(root / "results" / "p", baseline)
    same = invoke("check", "--profile", "p", "--baseline", baseline, "--tracking-uri", uri)
    assert same.exit_code == 0, same.output
    path = baseline / "tables" / "my_cnn_lrs.csv"
    table = pd.read_csv(path)
    table.loc[0, "val_acc_mean"] += 2  # beyond any tolerance of an accuracy
    table.to_csv(path, index=False)
    moved = invoke("check", "--profile", "p", "--baseline", baseline, "--tracking-uri", uri, "--json")
    assert moved.exit_code == 1, moved.output
    assert "my_cnn_lrs" in moved.stdout and "val_acc" in moved.stdout


def test_an_added_theory_suite_of_one_run_gets_the_theory_table_of_its_checks(workdir):
    """A theory suite added under another name (its checks without the digits) ran and was logged, with no table:
    it gets the theory table of its run's checks (theory.csv), and the terminal its verdict."""
    doc = {
        "version": 1,
        "suites": {"theory_light": {"kind": "theory", "part": "theory", "base": {"digits": False}}},
        "profiles": {"p": {}},
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(doc))
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("reproduce", "--profile", "p", "--file", workdir / "exp.yaml", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    client, found = runs_of(uri)
    (run,) = [r for r in found if r.data.tags.get("mlhw.kind") == "theory"]
    logged = pd.read_csv(client.download_artifacts(run.info.run_id, "theory.csv", str(workdir)))
    table = pd.read_csv(workdir / "results" / "p" / "tables" / "theory_light.csv")
    assert len(table) == len(logged) > 0 and set(table["claim"]) == set(logged["claim"])
    assert "digits" not in set(table["data"])
    assert f"theory_light: {len(logged)} of {len(logged)} checks pass" in res.stdout
    report = (workdir / "results" / "p" / "REPORT.md").read_text()
    assert "## theory_light: Theory: Q1-Q4 checks\n" in report and "No table shows" not in report


def test_only_an_added_suite_gates_its_table_as_the_whole_profile_does(added, tmp_path):
    """`reproduce --only <added suite>`, another suite of the profile not done (a partial report), compiled its table
    but compared it with nothing: the partial gate mapped suites to tables through the built-in suites' names alone.
    A row moved in the baseline fails it now, as `mlhw check` and a whole reproduction do."""
    root, uri, _ = added
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    spec["suites"]["later"] = {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 1, "train_size": 100}}  # not run
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    args = ("reproduce", "--profile", "p", "--file", tmp_path / "exp.yaml", "--tracking-uri", uri, "--only")

    def partial(suite: str, move: bool):  # in a copy of the whole report: the baseline a partial one is gated on
        results = tmp_path / f"results-{suite}-{move}"
        shutil.copytree(root / "results" / "p", results / "p")
        if move:
            path = results / "p" / "tables" / "my_cnn_lrs.csv"
            table = pd.read_csv(path)
            table.loc[0, "val_acc_mean"] += 2  # beyond any tolerance of an accuracy
            table.to_csv(path, index=False)
        res = invoke(*args, suite, "--results-dir", results)
        assert (results / "p-partial" / "tables" / f"{suite}.csv").is_file(), res.output
        return res

    same = partial("my_cnn_lrs", move=False)
    assert same.exit_code == 0 and "check passed" in same.output, same.output
    moved = partial("my_cnn_lrs", move=True)
    assert moved.exit_code == 1 and "my_cnn_lrs lr=0.001 val_acc: drift" in moved.output, moved.output
    other = partial("my_mlp", move=True)  # the moved table is not this suite's: not gated here
    assert other.exit_code == 0, other.output


def test_mlhw_tables_rebuilds_the_added_suites_in_the_order_the_reproduction_wrote_them(added, tmp_path):
    """`mlhw tables` read the suites from their parent runs, newest first: the added suites' sections, settings
    lines and figures came in another order than `reproduce` wrote them (the built-in ones have a fixed place), so
    the same runs made two REPORT.md. Both follow the profile's suites, as experiments.yaml lists them."""
    root, uri, _ = added
    res = invoke("tables", "--profile", "p", "--tracking-uri", uri, "--results-dir", tmp_path)
    assert res.exit_code == 0, res.output

    def added_lines(report: str) -> list[str]:  # the headings, settings lines and figures of the added suites
        return [x for x in report.splitlines() if x.startswith(("## my_", "- **my_", "![my_"))]

    written = added_lines((root / "results" / "p" / "REPORT.md").read_text())
    in_file = list(yaml.safe_load((root / "exp.yaml").read_text())["suites"])
    assert [x.split()[1] for x in written if x.startswith("## ")] == in_file
    assert added_lines((tmp_path / "p" / "REPORT.md").read_text()) == written


@pytest.mark.parametrize(
    "suite, kind, fields, metric",
    [("my_mlp", "mlp", ["batch_size", "lr"], "test_acc"), ("my_cnn_lrs", "cnn", ["lr"], "val_acc")],
)
def test_an_added_suites_parent_run_shows_its_best_rows_number_as_the_assignments_parents_do(
    added, suite, kind, fields, metric
):
    """The assignment's suite parents log the best row's mean (test/acc for the MLP, val/acc for AlexNet) and a tag
    naming that row; an added suite's parent had neither (an empty chart of parents in the UI). The best row and its
    mean are found here from the child runs' own metrics."""
    root, uri, _ = added
    oracle = _oracle(uri, suite, kind, fields)
    best = max(oracle, key=lambda k: oracle[k][metric][0])
    _, found = runs_of(uri)
    # (the fixture's reproduction made one; another test's partial reproductions of the same runs may add theirs)
    parents = [r for r in found if r.data.tags.get("mlhw.kind") == "suite" and r.data.tags.get("mlhw.suite") == suite]
    assert parents
    for parent in parents:
        (logged,) = [v for k, v in parent.data.metrics.items() if metric_key(k) == metric]
        assert logged == pytest.approx(oracle[best][metric][0], rel=1e-9)
        tag = parent.data.tags["mlhw.best"]
        row = dict(part.split("=") for part in tag.split(" (")[0].split(", "))  # 'batch_size=20, lr=0.1 (the mean'
        assert {k: float(v) for k, v in row.items()} == dict(zip(fields, best)), tag
        assert "(the mean of its 2 runs'" in tag, tag
