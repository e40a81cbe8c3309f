"""Compile the tracked runs of a plan into results/<profile>/: tables (Markdown, CSV, LaTeX), figures
drawn from the MLflow metric histories, and REPORT.md. Everything here is read back from MLflow, so
the report describes what was logged, whichever process or machine ran it."""

from __future__ import annotations

import datetime as dt
import io
import platform
from pathlib import Path

import pandas as pd

import mlhw
from mlhw import tables as T
from mlhw.plots import cnn_curves_figure, lr_sweep_figure
from mlhw.reference import MLP_FULL_TEST_ACC
from mlhw.reproduce import PlannedRun
from mlhw.runs import write_atomically
from mlhw.tracking import Tracker, git_commit


def record(p: PlannedRun, run) -> dict:
    """One finished run as a flat dict: its config, its final metrics, its identity."""
    c = p.spec.config.model_dump(mode="json")
    metrics = dict(run.data.metrics)
    out = (
        c
        | metrics
        | {
            "suite": p.spec.suite,
            "label": p.spec.label,
            "variant": p.spec.variant,
            "run_id": run.info.run_id,
            "diverged": 1.0 if "diverged" in run.data.tags else 0.0,
            "seconds": ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000,
        }
    )
    out["method"] = run.data.tags.get("solution_method", c.get("method"))
    if "classes" in c:
        out["classes"] = "vs".join(str(k) for k in c["classes"])
    return out


def collect(planned: list[PlannedRun], tracker: Tracker) -> dict[str, list[tuple[PlannedRun, object]]]:
    """suite -> [(planned run, MLflow run)] for every planned run that is done."""
    latest = tracker.latest_by_hash()
    out: dict[str, list] = {}
    for p in planned:
        found = latest.get(p.hash)
        if found is not None and found["status"] == "FINISHED":
            out.setdefault(p.spec.suite, []).append((p, found["run"]))
    return out


def build_tables(done: dict, tracker: Tracker, profile: str) -> list[T.ResultTable]:
    paper = profile == "paper"
    recs = {s: [record(p, r) for p, r in items] for s, items in done.items()}
    out = []
    if recs.get("mlp_lr_sweep"):
        out.append(T.mlp_sweep_table(recs["mlp_lr_sweep"]))
    if recs.get("mlp_full"):
        out.append(T.mlp_full_table(recs["mlp_full"], MLP_FULL_TEST_ACC if paper else None))
    for suite in T.CNN_TABLE_NAMES:
        if recs.get(suite):
            out.append(T.cnn_table(suite, recs[suite], reference=paper))
    if recs.get("svm_multiclass") or recs.get("svm_soft"):
        out.append(T.svm_table(recs.get("svm_multiclass", []), recs.get("svm_soft", [])))
    if done.get("theory"):
        _, run = done["theory"][0]
        rows = pd.read_csv(io.StringIO(tracker.download_text(run.info.run_id, "theory.csv"))).to_dict("records")
        out.append(T.theory_table(rows))
    return out


def build_figures(done: dict, tracker: Tracker, folder: Path) -> list[tuple[str, Path]]:
    """Figure 2 (the first seed's learning-rate sweep) and each CNN part's curves (first seed)."""
    figures = []

    def first_seed(items):
        seeds = sorted({p.spec.config.model_dump().get("seed") for p, _ in items}, key=lambda s: (s is None, s))
        return [(p, r) for p, r in items if p.spec.config.model_dump().get("seed") == seeds[0]]

    def rows(run, keys):
        hist = {k: dict(tracker.metric_history(run.info.run_id, k)) for k in keys}
        steps = sorted(set().union(*(h.keys() for h in hist.values())))
        return [{"epoch": s, **{k: hist[k].get(s, float("nan")) for k in keys}} for s in steps]

    if done.get("mlp_lr_sweep"):
        items = sorted(first_seed(done["mlp_lr_sweep"]), key=lambda pr: pr[0].spec.config.lr)
        series = [(f"lr={p.spec.config.lr:g}", rows(r, ["train_acc", "train_loss", "test_acc"])) for p, r in items]
        ds = items[0][0].spec.config.dataset
        path = folder / "mlp_lr_sweep.png"
        write_atomically(
            path, lambda f: lr_sweep_figure(series, f, f"Part 1 (b) on {ds}: one network per learning rate")
        )
        figures.append(("Part 1 (b): training accuracy, training loss and test accuracy per epoch", path))
    for suite, (name, title) in T.CNN_TABLE_NAMES.items():
        if done.get(suite):
            items = first_seed(done[suite])
            series = [
                (p.spec.variant or p.spec.label, [r for r in rows(run, ["train_loss", "val_acc"]) if r["epoch"] > 0])
                for p, run in items
            ]
            ds = items[0][0].spec.config.dataset
            path = folder / f"{name}.png"
            write_atomically(path, lambda f: cnn_curves_figure(series, f, f"{title} on {ds}"))
            figures.append((f"{title}: training loss and validation accuracy per epoch", path))
    return figures


def write_tables(tables: list[T.ResultTable], folder: Path) -> None:
    for t in tables:
        write_atomically(
            folder / f"{t.name}.md", lambda f: f.write_text(f"## {t.title}\n\n" + T.to_markdown(t.display))
        )
        write_atomically(folder / f"{t.name}.csv", lambda f: t.numeric.to_csv(f, index=False))
        write_atomically(folder / f"{t.name}.tex", lambda f: f.write_text(T.to_latex(t.display)))


def run_link(tracker: Tracker, run_id: str) -> str:
    if tracker.uri.startswith(("http://", "https://")):
        return f"[{run_id[:8]}]({tracker.uri.rstrip('/')}/#/experiments/{tracker.experiment_id}/runs/{run_id})"
    return f"`{run_id[:8]}`"


def write_report(
    profile: str,
    planned: list[PlannedRun],
    tracker: Tracker,
    results_dir: str | Path,
    device: str,
    description: str = "",
) -> tuple[list[T.ResultTable], Path]:
    """Tables, figures and REPORT.md under results/<profile>/; returns the tables and the report path."""
    import mlflow
    import torch

    root = Path(results_dir) / profile
    done = collect(planned, tracker)
    tables = build_tables(done, tracker, profile)
    write_tables(tables, root / "tables")
    figures = build_figures(done, tracker, root / "figures")
    records = [record(p, r) for items in done.values() for p, r in items]
    total = sum(r["seconds"] for r in {r["run_id"]: r for r in records}.values())
    datasets = sorted({r.get("dataset", "digits") for r in records if r.get("dataset")})
    lines = [
        f"# mlhw reproduction: profile `{profile}`",
        "",
        description,
        "",
        f"Datasets: {', '.join(datasets) or '-'}."
        + (
            " These runs used scikit-learn's 8x8 digits, not MNIST/CIFAR-10: the numbers are not the assignment's."
            if datasets == ["digits"]
            else ""
        ),
        "",
    ]
    for t in tables:
        lines += [
            f"## {t.title}",
            "",
            T.to_markdown(t.display),
            f"(CSV: `tables/{t.name}.csv`, LaTeX: `tables/{t.name}.tex`)",
            "",
        ]
    if figures:
        lines += ["## Figures", ""]
        for caption, path in figures:
            lines += [f"![{caption}](figures/{path.name})", "", f"*{caption}*", ""]
    lines += [
        "## Environment",
        "",
        f"- mlhw {mlhw.__version__}, git commit `{git_commit() or 'unknown'}`",
        f"- Python {platform.python_version()}, torch {torch.__version__}, mlflow {mlflow.__version__}",
        f"- device: {device}; machine: {platform.machine()}, {platform.processor() or platform.system()}",
        f"- compiled {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} from {len(records)} runs "
        f"({len({r['run_id'] for r in records})} distinct); total run time {total:.1f} s",
        f"- tracking store: `{tracker.uri}`, experiment id {tracker.experiment_id} (`mlhw ui` to browse)",
        "",
        "## Runs",
        "",
        "| suite | run | seconds | MLflow run |",
        "|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['suite']} | {r['label']} | {r['seconds']:.1f} | {run_link(tracker, r['run_id'])} |")
    missing = [p for p in planned if p.spec.suite not in done or all(q is not p for q, _ in done[p.spec.suite])]
    if missing:
        lines += [
            "",
            f"**{len(missing)} planned runs are not finished** and are missing from the tables: "
            + ", ".join(f"{p.spec.suite} {p.spec.label}" for p in missing),
        ]
    report = write_atomically(root / "REPORT.md", lambda f: f.write_text("\n".join(lines) + "\n"))
    return tables, report
