"""The one table builder: result rows -> pandas DataFrames -> rich, Markdown, CSV and LaTeX."""

from __future__ import annotations

import math
import re

import pandas as pd

from mlhw.config import user_fields
from mlhw.labels import optimizer_name, subset_note
from mlhw.reference import CNN_INDEPENDENT_VAL_ACC, CNN_REFERENCE, CNN_VARIANT_TITLES


def pct(v) -> str:
    """A fraction as a percentage; '-' for none or a non-finite value."""
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.2f}%"


def _missing(v) -> bool:
    """A metric a run did not log: absent, or NaN where records were read through a table of runs."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def fixed(v, digits: int = 4) -> str:
    return "-" if _missing(v) else f"{v:.{digits}f}"


# a cell that is a number: 0.005, -3.4e-16, 94.76%, 0.1630 ± 0.0721, 5.18543 / -3.4e-16, 0/1, nan, inf
_NUM = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?%?|\.\d+(?:e[-+]?\d+)?%?|nan|inf)"
_NUMBER = re.compile(rf"{_NUM}(?:\s*(?:±|/)\s*{_NUM})?")
_RUN_ID = re.compile(r"[0-9a-f]{8}|[0-9a-f]{32}")  # an MLflow run id, or its first 8: what a reader copies


def to_rich(df: pd.DataFrame, title: str, caption: str | None = None, header: bool = True):
    """A rich table that loses nothing on a narrow terminal: a column of numbers (or run ids) is right-aligned and
    never narrower than its longest number (never cut to `1.7e-…` or `3f9f2…`), text wraps at spaces, and a table
    of a few rows that still does not fit is printed turned (one column per row), and a table that fits only
    without its outer border, or with a pair of numbers (`a / b`) wrapped at its spaces, is printed so, before any
    word is broken."""
    return _Fitted(df, title, caption, header)


def page_titled(table):
    """A rich Table whose title and caption, when wider than the table, are set above and below it at the page's
    width: rich wraps them at the table's, and a piped log (160 columns) broke `mlhw mlp train`'s title and caption
    at its table's 78."""
    return _PageTitled(table)


class _PageTitled:
    def __init__(self, table):
        self.table = table

    def __rich_console__(self, console, options):
        import copy

        from rich.measure import Measurement

        table = copy.copy(self.table)  # the caller's keeps its title
        width = Measurement.get(console, options, table).maximum
        above = below = None
        if table.title and (text := console.render_str(table.title, style=table.title_style or "table.title")):
            if text.cell_len > width:
                above, table.title = text, None
        if table.caption and (text := console.render_str(table.caption, style=table.caption_style or "table.caption")):
            if text.cell_len > width:
                below, table.caption = text, None
        yield from (r for r in (above, table, below) if r is not None)


class _Fitted:
    def __init__(self, df: pd.DataFrame, title: str, caption: str | None = None, header: bool = True):
        self.df, self.title, self.caption, self.header = df, title, caption, header

    def __rich_console__(self, console, options):
        page = options.max_width
        frames = [self.df]
        if 0 < len(self.df) <= 6 and self.header:  # a few rows: one column per row, one row per field
            frames.append(
                pd.DataFrame(  # by position: a header may repeat
                    [[str(self.df.columns[j]), *map(str, self.df.iloc[:, j])] for j in range(1, self.df.shape[1])],
                    columns=[str(self.df.columns[0]), *_row_names(self.df)],
                )
            )
        # (frame, whole words, outer border, whole pairs of numbers), the first that fits. Without the border (2
        # columns): at 80 columns the digits report's Part 1 (b) table was 1 column short and broke its headers into
        # `learnin / g rate` and `diverge / d runs`. Then a pair of numbers (`5.18543 / -1.7e-16`) may put its second
        # on the next line: at 80 columns the SVM table broke every text cell inside its words (`digi / ts`, `mult /
        # icla / ss`), turned it fits so.
        tries = [(f, True, True, True) for f in frames] + [(self.df, True, False, True)]
        tries += [(f, True, True, False) for f in frames] + [(self.df, True, False, False)]
        tries += [(self.df, False, True, False), (self.df, False, False, False)]  # text may break in a word; numbers
        # stay whole (without the border last: a table that fitted only so was printed as `field: value` lines)
        for df, whole_words, edge, whole_pairs in tries:
            if (table := _table(df, self.title, page, whole_words, edge, whole_pairs)) is not None:
                table.caption, table.show_header = self.caption, self.header
                yield page_titled(table)
                return
        from rich.text import Text  # a page narrower than any table: each row as `field: value` lines

        yield Text(self.title, style="italic")
        for row in self.df.itertuples(index=False):
            if not self.header:  # rows of `name: value`
                yield Text(f"{row[0]}: {', '.join(map(str, row[1:]))}")
                continue
            yield Text("\n".join(f"{c}: {v}" for c, v in zip(self.df.columns, row)) + "\n")
        if self.caption:
            yield Text(self.caption, style="italic")


def _row_names(df: pd.DataFrame) -> list[str]:
    """A turned table's column headers: each row's first cell, with the first setting that tells apart rows that
    share it: Part 2 (b) turned read `optimizer ┃ Adam ┃ Adam`, now "Adam (learning rate 0.005)"; also "Adam
    (BN+Dropout no)", "Q3 soft SVM (digits 3vs8, C=1)". A setting is a column of text, or of numbers that are no
    result: right of every result column (those with `±` or `%`)."""
    first = [str(v) for v in df.iloc[:, 0]]
    names = list(first)
    columns = [[str(v) for v in df.iloc[:, j]] for j in range(df.shape[1])]
    result = [any("±" in c or "%" in c for c in cells) for cells in columns]
    last_result = max((j for j, r in enumerate(result) if r), default=0)
    for j in range(1, df.shape[1]):
        if len(set(names)) == len(names):
            break
        cells = columns[j]
        text = not any(_NUMBER.fullmatch(c) for c in cells)
        if result[j] or not (text or j > last_result):
            continue
        for i, name in enumerate(first):
            same = [k for k, other in enumerate(first) if other == name]
            if names[i] == name and len(same) > 1 and len({cells[k] for k in same}) > 1:
                # a phrase ("digits 3vs8, C=1") says what it is; a word or number needs its column's name
                names[i] = f"{name} ({cells[i] if ' ' in cells[i] else f'{df.columns[j]} {cells[i]}'})"
    return names


def _table(
    df: pd.DataFrame, title: str, page: int, whole_words: bool = True, edge: bool = True, whole_pairs: bool = True
):
    """The table at its natural widths, narrowed column by column (the widest that may narrow first)
    to fit `page` characters (with its outer border, or without: `edge`); None when even the narrowest widths do
    not fit. A number is never broken; a pair of them (`a / b`, `a ± b`) is kept on one line with `whole_pairs`,
    else it may wrap at its spaces. The widths are set here, not by
    rich: its own narrowing cuts numbers, and with minimum widths it overshoots the page. Widths are terminal
    cells (a CJK character takes two)."""
    from rich.cells import cell_len
    from rich.table import Table

    heads, columns, natural, least, numeric = [str(c) for c in df.columns], [], [], [], []
    for i, head in enumerate(heads):
        cells = [str(v) for v in df.iloc[:, i].tolist()]  # by position: a turned table may repeat a header
        numbers = [c for c in cells if _NUMBER.fullmatch(c) or _RUN_ID.fullmatch(c)]
        # a column of dashes alone (no run diverged) is a column of numbers yet to come: aligned as the same column
        # is in a table where one has them (`mlp train`'s "diverged at" was left-aligned, `mlp sweep`'s right)
        is_number = (bool(numbers) and len(numbers) * 2 >= len([c for c in cells if c != "-"])) or (
            bool(cells) and set(cells) == {"-"}
        )
        head_word = max(map(cell_len, head.split()), default=1) if whole_words else 1
        if is_number:  # never narrower than its longest number
            low = max([head_word, *(cell_len(w) for c in numbers for w in ([c] if whole_pairs else c.split()))])
        else:  # whole words (the longest, at most 14, may break) or any width from 4
            word = max((cell_len(w) for c in cells for w in c.split()), default=1)
            low = min(max(head_word, word), 14) if whole_words else 4
        columns.append(cells)
        natural.append(max(cell_len(head), *map(cell_len, cells)) if cells else cell_len(head))
        least.append(min(low, natural[-1]))
        numeric.append(is_number)
    widths = list(natural)
    while sum(widths) + 3 * len(widths) + (1 if edge else -1) > page:  # a cell's padding and border, the edges
        narrower = [j for j in range(len(widths)) if widths[j] > least[j]]
        if not narrower:
            return None
        widths[max(narrower, key=lambda j: widths[j])] -= 1
    table = Table(title=title, show_edge=edge)
    for head, width, is_number in zip(heads, widths, numeric):
        table.add_column(head, justify="right" if is_number else "left", width=width, overflow="fold")
    for row in zip(*columns):
        table.add_row(*row)
    return table


def to_markdown(df: pd.DataFrame) -> str:
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731  (a | inside a cell would split it)
    cols = [cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# --- tables compiled from tracked runs (mlhw reproduce / mlhw tables) ---------------------------


class ResultTable:
    """One result table: `numeric` (means, stds, n: the CSV) and `display` (mean ± std strings: the
    Markdown, LaTeX and terminal versions). `like`: the built-in table whose form it has (an added suite's SVM
    table is an `svm` table: it takes that table's note), its own name for a built-in one."""

    def __init__(self, name: str, title: str, numeric: pd.DataFrame, display: pd.DataFrame, like: str | None = None):
        self.name, self.title, self.numeric, self.display = name, title, numeric, display
        self.like = like or name


def _fmt(mean, std, n, f) -> str:
    """mean ± std over n logged values; '-' when no run logged the metric, 'nan' when a logged seed was NaN."""
    if n == 0:
        return "-"
    if math.isnan(mean):  # a seed diverged to NaN (its mean is not hidden: see summarise)
        return "nan"
    return f(mean) + (f" ± {f(std)}" if n > 1 and std is not None and not math.isnan(std) else "")


def shown_value(v) -> str:
    """A config value as a table's column and a setting's label give it: lists (hidden, classes) as '[40]'."""
    return repr(v).strip("'")


def varying_fields(records: list[dict], by: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The config fields besides the seed and `by` whose value differs between runs of one `by` group: a grid the
    table (or the question) has no column for (`--set mlp_full.grid.hidden=[40,80]`), whose runs are not seeds of
    one setting. Sorted by name; [] when only the seeds (and `by`) differ."""
    df = pd.DataFrame(records)
    fields = user_fields(df["kind"].iloc[0]) - {"seed", *by} if "kind" in df and len(df) else set()
    shown = df[sorted(fields & set(df))].map(repr)  # lists (hidden, classes) compared as text
    if not by:
        return [f for f in shown if shown[f].nunique(dropna=False) > 1]
    return [f for f in shown if shown.groupby([df[b] for b in by], sort=False, dropna=False)[f].nunique().max() > 1]


def setting_groups(
    records: list[dict], by: list[str] | tuple[str, ...] = ()
) -> tuple[list[str], list[tuple[str, list[dict]]]]:
    """(the varying fields, [(label, records)] per setting of them, in order of first appearance): the runs a table
    gives a row each, split as `summarise` splits them; one group labelled '' when nothing but the seeds varies."""
    extra = varying_fields(records, by)
    groups: dict[str, list[dict]] = {}
    for r in records:
        label = ", ".join(f"{f}={shown_value(r.get(f))}" for f in extra)
        groups.setdefault(label, []).append(r)
    return extra, list(groups.items())


def summarise(records: list[dict], by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Group runs (one dict each) by `by`, keeping the group order of first appearance; for every
    metric its mean and std over the group (seeds), and n.

    Only seeds are averaged: runs that differ in another config field (a grid the table has no column for, e.g.
    `--set mlp_full.grid.lr=[0.1,0.5]`) get a row each, that field joining the key (listed in `attrs["extra"]`,
    shown as a column by `_display`). A seed whose metric is NaN or infinite makes its group's mean so: a diverged
    seed is not left out of a mean that still counts it in n."""
    df = pd.DataFrame(records)
    extra = varying_fields(records, by)
    df[extra] = df[extra].map(shown_value)
    keys = by + extra
    rows, logged_n = [], {}  # metric -> per row, how many runs logged it (attrs: the CSV keeps its columns)
    for key, g in df.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key)) | {"n": len(g)}
        for m in metrics:
            # a metric a run never logged (absent, None) is left out; one logged as NaN (a diverged seed) is not
            logged = [records[i].get(m) for i in g.index if records[i].get(m) is not None]
            vals = pd.to_numeric(pd.Series(logged, dtype=object), errors="coerce")
            row[f"{m}_mean"] = float(vals.mean(skipna=False)) if len(vals) else float("nan")
            row[f"{m}_std"] = float(vals.std(ddof=1, skipna=False)) if len(vals) > 1 else float("nan")
            logged_n.setdefault(m, []).append(len(vals))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["extra"], out.attrs["logged"] = extra, logged_n
    return out


def _display(num: pd.DataFrame, columns: list[tuple[str, str, object]]) -> pd.DataFrame:
    """columns: (header, key, formatter); a key naming a summarised metric shows mean ± std. The config fields
    `summarise` had to add to the key come after the first column."""
    out = {}
    for i, (header, key, f) in enumerate(columns):
        if f"{key}_mean" in num:
            logged = num.attrs.get("logged", {}).get(key) or list(num["n"])
            out[header] = [_fmt(r[f"{key}_mean"], r[f"{key}_std"], k, f) for (_, r), k in zip(num.iterrows(), logged)]
        else:
            out[header] = [f(v) for v in num[key]]
        if i == 0:
            out |= {field.replace("_", " "): list(num[field]) for field in num.attrs.get("extra", [])}
    return pd.DataFrame(out)


def _diverged_runs(num: pd.DataFrame) -> list[str]:
    """A table's "diverged runs" cells, k/n: from the mean of the runs' 0/1 `diverged` and their number."""
    return [f"{int(round(m * n))}/{n}" for m, n in zip(num["diverged_mean"], num["n"])]


def mlp_sweep_table(records: list[dict]) -> ResultTable:
    num = summarise(records, ["lr"], ["train_loss", "train_acc", "test_acc", "diverged"])
    disp = _display(
        num,
        [
            ("learning rate", "lr", lambda v: f"{v:g}"),
            ("final train loss", "train_loss", num_or_inf),
            ("train acc", "train_acc", pct),
            ("test acc", "test_acc", pct),
            ("diverged runs", "diverged", str),  # (its place; the text, k/n, is written below)
            ("n", "n", str),
        ],
    )
    disp["diverged runs"] = _diverged_runs(num)
    return ResultTable("mlp_lr_sweep", "Part 1 (b): learning rates", num, disp)


def num_or_inf(v, digits: int = 4) -> str:
    """A loss as the tables and the terminal give it: 4 decimals (0.8763, 37.0042), and from a magnitude of 1e6 on
    3 significant digits (3.84e+29: a diverged run's loss printed as 30 digits and 4 decimals); nan, inf, -inf."""
    if _missing(v):
        return "nan"
    if not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}" if round(abs(v), digits) < 1e6 else f"{v:.2e}"


def mlp_full_table(records: list[dict], reference: float | None = None) -> ResultTable:
    num = summarise(records, ["dataset"], ["train_loss", "train_acc", "test_acc"])
    cols = [
        ("dataset", "dataset", str),
        ("final train loss", "train_loss", num_or_inf),
        ("train acc", "train_acc", pct),
        ("test acc", "test_acc", pct),
        ("n", "n", str),
    ]
    disp = _display(num, cols)
    if reference is not None:
        num["reference_test_acc"] = reference
        disp["reference test acc"] = pct(reference)
    return ResultTable("mlp_full", "Part 1 (c): the full run", num, disp)


CNN_TABLE_NAMES = {
    "cnn_optimizers": ("sgd_vs_adam", "Part 2 (a): SGD vs Adam"),
    "cnn_adam_lr": ("adam_lr", "Part 2 (b): Adam learning rate"),
    "cnn_batchnorm": ("batchnorm_dropout", "Part 2 (c): BatchNorm + Dropout"),
}
SUITE_TABLES = {  # suite -> the table that shows it (the CNN tables' names once, in CNN_TABLE_NAMES)
    "mlp_lr_sweep": "mlp_lr_sweep",
    "mlp_full": "mlp_full",
    **{suite: name for suite, (name, _) in CNN_TABLE_NAMES.items()},
    "svm_multiclass": "svm",
    "svm_soft": "svm",
    "theory": "theory",
}


def cnn_table(suite: str, records: list[dict], reference: bool = False) -> ResultTable:
    name, title = CNN_TABLE_NAMES[suite]
    num = summarise(records, ["variant", "optimizer", "lr", "batchnorm"], ["train_loss", "val_acc", "test_acc"])
    disp = _display(
        num,
        [
            ("optimizer", "optimizer", optimizer_name),
            ("final train loss", "train_loss", num_or_inf),
            ("val acc", "val_acc", pct),
            ("test acc", "test_acc", pct),
            ("learning rate", "lr", lambda v: f"{v:g}"),
            ("BN+Dropout", "batchnorm", lambda v: "yes" if v else "no"),
            ("n", "n", str),
        ],
    )
    # The precision a run trained in (mlhw.device.select_precision: bf16 on GPUs and CPUs that have it) is a
    # runtime choice, not part of its identity: shown, so that a table never mixes precisions silently; left out
    # of the CSV, so that `mlhw check` compares the same rows on machines with and without bf16.
    disp.insert(len(disp.columns) - 1, "precision", _precision_cells(records, num, ["variant"]))
    if reference:
        refs = [CNN_REFERENCE.get(v, {}) for v in num["variant"]]
        for k in ("train_loss", "val_acc", "test_acc"):
            num[f"reference_{k}"] = [r.get(k) for r in refs]
        disp["reference (loss / val / test)"] = [
            f"{fixed(r.get('train_loss'))} / {pct(r.get('val_acc'))} / {pct(r.get('test_acc'))}" for r in refs
        ]
    return ResultTable(name, title, num, disp)


def _precision_cells(records: list[dict], num: pd.DataFrame, keys: list[str]) -> list[str]:
    """Each row's precision cell (`_precisions`), the row being the runs of one value of `keys`."""
    used: dict[tuple, list[str]] = {}
    for r in records:
        key = tuple(r.get(k) for k in keys)
        used.setdefault(key, []).extend([str(r["precision"])] if r.get("precision") else [])
    return [_precisions(used.get(tuple(row[k] for k in keys), [])) for _, row in num.iterrows()]


def _precisions(names: list[str]) -> str:
    """'bf16', or for runs in several precisions 'bf16 x2, fp32 x1 (mixed)'."""
    counts = {n: names.count(n) for n in sorted(set(names))}
    if len(counts) <= 1:
        return next(iter(counts), "-")
    return ", ".join(f"{n} x{c}" for n, c in counts.items()) + " (mixed)"


# --- a suite added to experiments.yaml: a table of its own, named after it, in the form of its kind's ----------

BUILT_IN_TABLE_NAMES = frozenset(SUITE_TABLES.values())
ADDED_METRICS = {  # an added suite's columns: the final metrics its kind's built-in tables show
    "mlp": [
        ("final train loss", "train_loss", num_or_inf),
        ("train acc", "train_acc", pct),
        ("test acc", "test_acc", pct),
    ],
    "cnn": [
        ("final train loss", "train_loss", num_or_inf),
        ("val acc", "val_acc", pct),
        ("test acc", "test_acc", pct),
    ],
}


def table_of(suite: str, kind: str | None, runs: int = 1) -> str | None:
    """The name of the table that shows a suite: a built-in suite's (`SUITE_TABLES`); a suite added to
    experiments.yaml gets one named after it where its kind has a table that takes it whole (an MLP's or AlexNet's
    grid, the SVM table's rows, the theory table of one run); None where no table is built (`untabled_reason`)."""
    if suite in SUITE_TABLES:
        return SUITE_TABLES[suite]
    return None if untabled_reason(suite, kind, runs) else suite


def untabled_reason(suite: str, kind: str | None, runs: int = 1) -> str | None:
    """Why no table is built for an added suite, in words for the plan and REPORT.md; None where one is."""
    if suite in SUITE_TABLES:
        return None
    if suite in BUILT_IN_TABLE_NAMES:  # tables/<suite>.csv is the assignment's table of another suite
        owners = ", ".join(s for s, t in SUITE_TABLES.items() if t == suite)
        return f"its name is that of the table of {owners}: rename the suite for a table of its own"
    if kind == "theory" and runs != 1:  # the theory table is one run's checks: several runs' rows would merge
        return f"the theory table holds one run's checks, and it has {runs}"
    if kind not in ("mlp", "cnn", "svm_soft", "svm_multiclass", "theory"):
        return f"no table is built for runs of kind {kind}"
    return None


def grid_fields(records: list[dict]) -> list[str]:
    """The fields an added suite's runs differ in besides the seed, as experiments.yaml names them ('lr',
    'batch_size'): a table's key. AlexNet's `variant` stands for the fields it sets (optimizer, lr, BN/Dropout)."""
    from mlhw.reference import CNN_VARIANT_FIELDS

    fields = varying_fields(records)
    if len({r.get("variant") for r in records}) > 1:
        fields = ["variant"] + [f for f in fields if f not in CNN_VARIANT_FIELDS]
    return fields


def grid_value(v) -> str:
    """A grid's value in a table's cell: 0.001, 5e-05, 64, [100, 40], adam-5e-05."""
    return f"{v:g}" if isinstance(v, float) else shown_value(v)


def _added_title(suite: str, kind: str, records: list[dict], keys: list[str], description: str | None) -> str:
    """'my_cnn_lrs (Adam rates): AlexNet by lr, Adam, batch 64, 1 epoch': the suite, its description, the model,
    what varies and the training settings that do not (the report appends the dataset, as to the built-in ones')."""
    from mlhw.labels import lr_label

    r = records[0]
    fixed = []
    if kind == "mlp":
        model = "MLP" if "hidden" in keys else f"MLP {shown_value(r.get('hidden'))}"
        if "lr" not in keys:
            fixed.append(lr_label(r["lr"]))
    else:
        model = "AlexNet"
        if "variant" not in keys:  # a variant sets all four: else each that the grid does not vary, as cnn_title
            # words them ('Adam lr=5e-5, no BN/Dropout'); a grid of batchnorm or of the optimizer left the lr out
            said = [optimizer_name(r["optimizer"])] if "optimizer" not in keys else []
            said += [lr_label(r["lr"])] if "lr" not in keys else []
            off = [n for n, f in (("BN", "batchnorm"), ("Dropout", "dropout")) if f not in keys and not r.get(f, True)]
            fixed += ([" ".join(said)] if said else []) + ([f"no {'/'.join(off)}"] if off else [])
    if "batch_size" not in keys:
        fixed.append(f"batch {r['batch_size']}")
    if "epochs" not in keys:
        fixed.append(f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)}")
    varies = f" by {', '.join(keys)}" if keys else ""
    return f"{added_heading(suite, description)}: {model}{varies}" + "".join(f", {f}" for f in fixed)


def added_suite_table(suite: str, records: list[dict], description: str | None = None) -> ResultTable:
    """An added MLP or AlexNet suite's table (tables/<suite>.*): a row per setting of the fields its runs differ in
    (`grid_fields`; the dataset where only seeds differ), the final metrics its kind's built-in tables show as
    mean ± std over the seeds, the diverged runs k/n as Part 1 (b)'s, AlexNet's precision, and n."""
    kind = str(records[0]["kind"])
    keys = grid_fields(records) or ["dataset"]
    # a list (hidden) as its text: rows are grouped by it
    recs = [r | {k: shown_value(r[k]) for k in keys if isinstance(r.get(k), list | tuple)} for r in records]
    metrics = ADDED_METRICS[kind]
    num = summarise(recs, keys, [m for _, m, _ in metrics] + ["diverged"])
    cols = [(k, k, grid_value) for k in keys] + list(metrics) + [("diverged runs", "diverged", str), ("n", "n", str)]
    disp = _display(num, cols)
    disp["diverged runs"] = _diverged_runs(num)
    if kind == "cnn":
        disp.insert(len(disp.columns) - 1, "precision", _precision_cells(recs, num, keys))
    title = _added_title(suite, kind, records, [k for k in keys if k != "dataset"], description)
    return ResultTable(suite, title, num, disp, like=kind)


def added_svm_table(suite: str, records: list[dict], description: str | None = None) -> ResultTable:
    """An added SVM suite's table: the SVM table's rows of its runs alone."""
    kind = str(records[0]["kind"])
    t = svm_table(records, []) if kind == "svm_multiclass" else svm_table([], records)
    question = "Q1 multiclass hinge" if kind == "svm_multiclass" else "Q3 soft SVM"
    return ResultTable(suite, f"{added_heading(suite, description)}: {question}", t.numeric, t.display, like="svm")


def added_theory_table(suite: str, rows: list[dict], description: str | None = None) -> ResultTable:
    """An added theory suite's table: the theory table of its one run's checks (theory.csv)."""
    t = theory_table(rows)
    return ResultTable(suite, f"{added_heading(suite, description)}: {t.title}", t.numeric, t.display, like="theory")


def setting_label(values, keys: list[str]) -> str:
    """A row of a grid as the runs' names say it: 'lr=5e-5', 'Adam lr=5e-5' (a variant in the assignment's words),
    'batch_size=20, lr=0.1' (the figure's curves and the parent's headline alike). `values`: a record or a row."""
    from mlhw.labels import lr_label, variant_title

    def one(k: str, v) -> str:
        if k == "lr" and isinstance(v, float):
            return lr_label(v)
        if k == "variant":
            return variant_title(str(v))
        return f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"  # (str: a row's numpy int64 as 10)

    return ", ".join(one(k, values[k]) for k in keys)


def added_heading(suite: str, description: str | None) -> str:
    """An added suite's table title starts with its name and description: 'my_cnn_lrs (Adam rates)'."""
    about = (description or "").strip().rstrip(".")
    return f"{suite} ({about})" if about else suite


Q1_METHODS = {  # how Q1's minimum is known (mlhw.svm.solve_multiclass), in the table's "dual / gap" column
    "certificate": "exact: a W with f = 0",
    "lp": "exact: linear program",
    "subgradient": "subgradient steps",
}


# the seed both SVM kinds default to: a setting names a seed only where it is another (the profiles' rows read as
# before), yet two runs of a seeds list never share a setting
SVM_DEFAULT_SEED = 8


def _svm_data(r: dict) -> str:
    """The dataset, with its subset sizes when a run drew one ('digits 500/all'): every field that tells two SVM
    runs apart is in the `setting` (the key `mlhw check` matches rows by), so that a grid never makes two rows
    with one setting."""
    return r["dataset"] + subset_note(r.get("train_size"), r.get("test_size"))


def _svm_seed(r: dict) -> str:
    seed = r.get("seed", SVM_DEFAULT_SEED)
    return "" if seed == SVM_DEFAULT_SEED else f", seed {seed}"


def _q1_variant(r: dict) -> str:
    out = "" if r.get("bias", True) else ", no bias"
    if r.get("method") == "subgradient":  # the exact method ignores steps and lr
        out += f", subgradient {r.get('steps')} steps, lr {r.get('lr', float('nan')):g}"
    return out


def _soft_dual(r: dict) -> str:
    """A Q3 row's dual objective and duality gap, or why there are none: above DUAL_MAX_SAMPLES samples the
    active-set dual is not solved (a row of 'nan / nan' read as a broken solver)."""
    if not _missing(r.get("dual_objective")):
        return f"{r['dual_objective']:.6g} / {r.get('duality_gap', float('nan')):.1e}"
    from mlhw.svm import DUAL_MAX_SAMPLES  # (here: tables are built where no SVM ran)

    n = r.get("n_train")
    if isinstance(n, (int, float)) and n > DUAL_MAX_SAMPLES:
        return f"not solved: {n:,.0f} samples > {DUAL_MAX_SAMPLES:,}"  # as `mlhw svm soft` says it (svm.soft_skipped)
    return "-"


def svm_table(multiclass: list[dict], soft: list[dict]) -> ResultTable:
    rows = []
    for r in multiclass:
        rows.append(
            {
                "question": "Q1 multiclass hinge",
                "setting": f"{_svm_data(r)}, all classes" + _q1_variant(r) + _svm_seed(r),
                "objective": r["objective"],
                "dual / gap": Q1_METHODS.get(r.get("method"), f"method {r.get('method', '-')}"),
                "support vectors": "-",
                "train error": r["train_error"],
                "test error": r["test_error"],
                "liblinear rel. diff": float("nan"),
            }
        )
    for r in soft:
        rows.append(
            {
                "question": "Q3 soft SVM",
                "setting": f"{_svm_data(r)} {r['classes']}, C={r['C']:g}"
                + ("" if r.get("bias", "free") == "free" else f", bias {r['bias']}")
                + _svm_seed(r),
                "objective": r["primal_objective"],
                "dual / gap": _soft_dual(r),
                "support vectors": "-" if _missing(r.get("support_vectors")) else f"{r['support_vectors']:.0f}",
                "train error": r["train_error"],
                "test error": r["test_error"],
                "liblinear rel. diff": r.get("liblinear_relative_difference", float("nan")),
            }
        )
    num = pd.DataFrame(rows)
    disp = num.copy()
    if len(num):
        disp["objective"] = [f"{v:.6g}" for v in num["objective"]]
        disp["train error"] = [pct(v) for v in num["train error"]]
        disp["test error"] = [pct(v) for v in num["test error"]]
        disp["liblinear rel. diff"] = ["-" if math.isnan(v) else f"{v:.1e}" for v in num["liblinear rel. diff"]]
    return ResultTable("svm", "SVM: Q1 and Q3", num, disp)


# a suite parent's summary metric (the hyperparameter-sweep convention of MLflow's examples: the parent logs its best
# child's number): the table's row with the highest mean of this metric
HEADLINE = {
    "mlp_lr_sweep": "test_acc",
    "mlp_full": "test_acc",
    "sgd_vs_adam": "val_acc",
    "adam_lr": "val_acc",
    "batchnorm_dropout": "val_acc",
}
# an added suite's table (its `like`: the kind of its runs), by the metric its kind's built-in tables choose by
ADDED_HEADLINE = {"mlp": "test_acc", "cnn": "val_acc"}


def headline(table: ResultTable) -> tuple[str, float, str] | None:
    """(metric, the best row's mean, the tag that says which row: 'lr=0.1 (the mean of its 3 runs' test/acc)',
    'Adam lr=5e-5 (its one run's val/acc)') of a table, or None. A sweep's parent and a suite's parent show their
    number this one way: the row as the runs' names say it, the metric as the UI names it (the tag read
    'variant=adam-5e-05 (... val_acc)' beside runs named 'Adam lr=5e-5' and a metric named val/acc)."""
    from mlhw.lifecycle import metric_name

    added = table.name not in HEADLINE and table.like != table.name  # a suite added to experiments.yaml
    metric, df = HEADLINE.get(table.name) or (ADDED_HEADLINE.get(table.like) if added else None), table.numeric
    if metric is None or f"{metric}_mean" not in df.columns or not df[f"{metric}_mean"].notna().any():
        return None
    row = df.loc[df[f"{metric}_mean"].idxmax()]
    key = "variant" if "variant" in df.columns else df.columns[0]
    keys = [c for c in df.columns if c != "n" and not str(c).endswith(("_mean", "_std"))]
    # an added grid of two fields: its row is both values ('batch_size=10, lr=0.1')
    which = setting_label(row, keys if added and len(keys) > 1 else [key])
    if len(df) == 1:  # nothing to be best among: mlp_full's parent said "dataset=digits", a column, not a choice
        which = "its one configuration"
    n = int(row["n"]) if "n" in df.columns and pd.notna(row["n"]) else None
    whose = "its one run's" if n == 1 else f"the mean of its {n} runs'" if n else "the mean of its runs'"
    return metric, float(row[f"{metric}_mean"]), f"{which} ({whose} {metric_name(metric)})"


# a line under a table in REPORT.md, where a column needs saying what it compares
TABLE_NOTES = {
    "svm": "*liblinear rel. diff*: |liblinear's objective - ours| / max(1, |ours|) for the same data and C, with the "
    "bias folded into the features (liblinear penalises its bias): for a row whose bias is free (not penalised) it "
    "checks the bias-penalised variant of that row's problem, solved by both, not the objective shown.",
    # the data column's names are the checks' own (mlhw.theory.run_checks): a reader of the report has no other key
    "theory": "*data*: *blobs*, 300 points of 4 well-separated Gaussian blobs in 5 dimensions, with a bias feature "
    "(linearly separable by construction); *overlapping*, 120 Gaussian points in 6 dimensions labelled by a noisy "
    "linear rule (not linearly separable); *random*, inputs each check draws itself (its *check* "
    "column says which); *digits*, the embedded digits' 1,297 training images (Q1: all 10 classes, with a bias "
    "feature; Q3: the 264 3s and 8s). *max error* is the measure its *check* column names; a row passes when it is "
    "at most the *tolerance* (0: exactly). Each claim is checked against what does not share its code: a second "
    "minimiser by HiGHS's linear program (Q1), numpy's max (Q2), the Lagrangian minimised numerically on torch "
    "autograd's gradients, a general QP solver (SLSQP) and scikit-learn's liblinear (Q3), torch autograd and "
    "central differences (Q4).",
}


def theory_table(rows: list[dict]) -> ResultTable:
    # in the assignment's order, Q1 to Q4 (the checks run cheapest first); each question's datasets as they ran
    num = pd.DataFrame(sorted(rows, key=lambda r: str(r.get("question", ""))[:2]))
    disp = num[["question", "claim", "check", "data"]].copy() if len(num) else num
    if len(num):
        disp["max error"] = [f"{float(v):.1e}" for v in num["max_error"]]
        disp["tolerance"] = [f"{float(v):.0e}" for v in num["tolerance"]]
        disp["result"] = ["PASS" if str(v) == "True" else "FAIL" for v in num["passed"]]
    return ResultTable("theory", "Theory: Q1-Q4 checks", num, disp)


def table_files(t: ResultTable) -> dict[str, str]:
    """A result table's files by extension, as results/<profile>/tables/ holds them (and a sweep's parent run)."""
    return {
        "md": f"## {t.title}\n\n" + to_markdown(t.display),
        "csv": t.numeric.to_csv(index=False),
        "tex": f"% {latex_text(t.title)}\n" + to_latex(t.display),
    }


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs tabular (\\usepackage{booktabs}) that pdflatex sets as it reads, in its default OT1 encoding: every
    text cell and header through `latex_text` (pandas' own escaping leaves `<`, `>`, `|` and `±` as they are)."""
    esc = lambda v: latex_text(v) if isinstance(v, str) else v  # noqa: E731  (numbers: pandas formats them)
    return df.rename(columns=lambda c: latex_text(str(c))).map(esc).to_latex(index=False, escape=False)


# Set in math: in OT1 text `<`, `>` and `|` come out as ¡, ¿ and a dash, and the Unicode signs not at all.
_LATEX_MATH = {
    ">=": r"\geq",
    "<=": r"\leq",
    "=>": r"\Rightarrow",
    "->": r"\rightarrow",
    "!=": r"\neq",
    "<": "<",
    ">": ">",
    "|": "|",
    "±": r"\pm",
    "−": "-",  # U+2212, the minus sign
    "≥": r"\geq",
    "≤": r"\leq",
    "≠": r"\neq",
    "≈": r"\approx",
    "→": r"\rightarrow",
    "⇒": r"\Rightarrow",
    "×": r"\times",
    "·": r"\cdot",
    "•": r"\bullet",
    "∞": r"\infty",
}
_LATEX_TEXT = {  # TeX's specials, and the ligatures and Unicode punctuation of plain text
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "--": "-{}-",  # not an en dash
    "–": "--",
    "—": "---",
    "…": r"\ldots{}",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
}
_LATEX_TOKEN = re.compile(
    "|".join(re.escape(k) for k in sorted({**_LATEX_MATH, **_LATEX_TEXT}, key=len, reverse=True)) + r"|[^\x00-\x7f]"
)


def latex_text(s: str) -> str:
    """Plain text as LaTeX source that pdflatex sets right with no package but booktabs, in ASCII:
    `|x| <= 1e6` -> `$|$x$|$ $\\leq$ 1e6`, `0.16 ± 0.07` -> `0.16 $\\pm$ 0.07`, `a_i` -> `a\\_i`. Adjacent math
    pieces share one `$...$` (`$$` would open display math); a cell that starts with `[` has it braced (after
    `\\\\` or `\\midrule` it would be read as their optional argument); another non-ASCII character becomes its
    ASCII letter where it has one (é -> e), else `?`."""
    import unicodedata

    out, math_run = [], []

    def close_math():
        if math_run:
            out.append("$" + "".join(math_run) + "$")
            math_run.clear()

    pos = 0
    for m in _LATEX_TOKEN.finditer(s):
        if m.start() > pos:  # plain text between: the math before it ends
            close_math()
            out.append(s[pos : m.start()])
        token, pos = m.group(), m.end()
        if token in _LATEX_MATH:
            math_run.append(_LATEX_MATH[token])
            continue
        close_math()
        if token in _LATEX_TEXT:
            out.append(_LATEX_TEXT[token])
        else:  # another non-ASCII character
            ascii_ = unicodedata.normalize("NFKD", token).encode("ascii", "ignore").decode()
            out.append(latex_text(ascii_) if ascii_ else "?")
    close_math()
    out.append(s[pos:])
    text = "".join(out)
    return "{[}" + text[1:] if text.startswith("[") else text


def reference_table() -> pd.DataFrame:
    """The write-up's Part 2 numbers (and an independent solution's validation accuracy), for display."""
    return pd.DataFrame(
        [
            {
                "variant": CNN_VARIANT_TITLES.get(v, v),
                "final train loss": fixed(r["train_loss"]),
                "val acc": pct(r["val_acc"]),
                "test acc": pct(r["test_acc"]),
                "independent val acc": pct(CNN_INDEPENDENT_VAL_ACC.get(v)),
            }
            for v, r in CNN_REFERENCE.items()
        ]
    )
