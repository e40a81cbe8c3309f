"""The one table builder: result rows -> pandas DataFrames -> rich, Markdown, CSV and LaTeX."""
from __future__ import annotations

import math

import pandas as pd

from mlhw.reference import CNN_PARTS, CNN_REFERENCE


def pct(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}%"


def num(v, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def cnn_part_table(part: str, rows: dict[str, dict], reference: bool = False) -> pd.DataFrame:
    """The seed's table for one part of Part 2: one row per variant.

    rows: variant -> {"optimizer", "lr", "batchnorm", "train_loss", "val_acc", "test_acc"} (a variant
    may also carry "*_std" and "n" when it summarises several seeds).
    """
    out = []
    for v in CNN_PARTS[part][1]:
        r = rows[v]
        spread = lambda k, f: f(r[k]) + (f" ± {f(r[k + '_std'])}" if r.get(k + "_std") is not None else "")  # noqa: E731
        row = {"optimizer": {"sgd": "SGD", "adam": "Adam"}[r["optimizer"]],
               "final train loss": spread("train_loss", num),
               "val acc": spread("val_acc", pct), "test acc": spread("test_acc", pct),
               "learning rate": f"{r['lr']:g}", "BN+Dropout": "yes" if r["batchnorm"] else "no"}
        if "n" in r:
            row["n"] = r["n"]
        if r.get("diverged_epoch"):
            row["final train loss"] += f" (NaN at epoch {r['diverged_epoch']})"
        if reference:
            ref = CNN_REFERENCE[v]
            row["reference (loss / val / test)"] = f"{num(ref['train_loss'])} / {pct(ref['val_acc'])} / {pct(ref['test_acc'])}"
        out.append(row)
    return pd.DataFrame(out)


def to_rich(df: pd.DataFrame, title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="left" if df[col].dtype == object else "right")
    for _, row in df.iterrows():
        table.add_row(*[str(v) for v in row.tolist()])
    return table


def to_markdown(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
