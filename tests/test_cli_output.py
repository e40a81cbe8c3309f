"""What a terminal, a log file and CI see: progress only on a real terminal, tables that lose no number."""

import io
import re

import pandas as pd
import pytest
from rich.console import Console

from mlhw.cli import common
from mlhw.tables import to_rich


@pytest.mark.parametrize(
    "value, ci", [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("", False)]
)
def test_ci_is_what_the_variable_says(monkeypatch, value, ci):
    monkeypatch.setenv("CI", value)
    assert common.in_ci() is ci


def test_no_live_progress_into_a_file_even_with_forced_colour(monkeypatch):
    """rich counts FORCE_COLOR as a terminal; a live bar redrawn into a log file is noise."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")  # (a dumb one is no terminal here: its own test)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: False, raising=False)
    assert not common.is_terminal()
    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: True, raising=False)
    assert common.is_terminal()
    monkeypatch.setenv("CI", "true")
    assert not common.is_terminal()


@pytest.mark.parametrize("term, live", [("dumb", False), ("unknown", False), ("xterm-256color", True), ("", True)])
def test_a_dumb_terminal_gets_plain_progress_lines(monkeypatch, term, live):
    """TERM=dumb on a terminal (Emacs' shell, a CI runner's pty): rich does not redraw its live bar there, and a
    reproduction showed nothing while its runs ran, then `all 12/12 runs` once at the end. Plain lines there."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", term)
    monkeypatch.setattr(common.sys.stderr, "isatty", lambda: True, raising=False)
    assert common.is_terminal() is live


def test_a_log_gets_plain_progress_lines_the_last_always_and_the_rest_at_most_every_ten_seconds():
    """Piped or in CI a single command printed nothing until it ended (a CNN epoch on a CPU: minutes of silence)."""
    now = [0.0]
    buf = io.StringIO()
    bar = common.PlainProgress(Console(file=buf, width=200, color_system=None), every=10.0, clock=lambda: now[0])
    task = bar.add_task("subgradient", total=2000, info="", unit="step")
    for step in range(1, 2001):  # 2,000 steps in 40 s: a line at 10, 20, 30 s and the last
        now[0] = step * 0.02
        bar.update(task, completed=step, info=f"f {1 / step:.4f}")
    lines = buf.getvalue().splitlines()
    assert lines == [
        "subgradient: step 500/2000 (10 s) f 0.0020",
        "subgradient: step 1000/2000 (20 s) f 0.0010",
        "subgradient: step 1500/2000 (30 s) f 0.0007",
        "subgradient: step 2000/2000 (40 s) f 0.0005",
    ]
    bar.reset(task, total=3, description="Adam lr=5e-5")  # the next run of a compare: its own clock and count
    bar.update(task, completed=3, info="loss 1.9")
    assert buf.getvalue().splitlines()[-1] == "Adam lr=5e-5: step 3/3 (0 s) loss 1.9"
    hidden = bar.add_task("", total=None, visible=False)
    bar.update(hidden, completed=5)
    assert len(buf.getvalue().splitlines()) == 5  # an invisible task says nothing


def test_a_single_command_piped_says_each_epochs_progress_at_least_at_the_end(workdir):
    from helpers import invoke

    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("mlp", "train", "--epochs", "2", "--train-size", "200", "--test-size", "50", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert re.search(r"^mlp\.c lr=0\.1: epoch 2/2 \(\d+ s\) test acc [\d.]+%$", res.stderr, re.M), res.stderr


SVM = pd.DataFrame(
    {
        "question": ["Q1 multiclass hinge", "Q3 soft SVM"],
        "setting": ["digits, all classes", "digits 3vs8, C=1"],
        "objective": ["0", "5.18543"],
        "dual / gap": ["method certificate", "5.18543 / -3.4e-16"],
        "support vectors": ["-", "48"],
        "train error": ["0.00%", "0.00%"],
        "test error": ["3.40%", "0.00%"],
        "liblinear rel. diff": ["-", "3.4e-16"],
    }
)
THEORY = pd.DataFrame(
    {
        "question": [f"Q{i % 4 + 1}" for i in range(12)],
        "claim": ["relu net z1+z2+z3-z4 = max(x1,x2)"] * 12,
        "check": ["rel. error vs max, 10081 inputs, ties, |x|<=1e6"] * 12,
        "max error": [f"{1.5 * 10.0**-i:.1e}" for i in range(12)],
        "tolerance": ["1e-14"] * 12,
        "result": ["PASS"] * 12,
    }
)


def render(df: pd.DataFrame, width: int) -> list[str]:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(to_rich(df, "t"))
    return buf.getvalue().splitlines()


@pytest.mark.parametrize("width", [200, 100, 80, 60, 40, 24])
@pytest.mark.parametrize("df", [SVM, THEORY], ids=["svm, few rows", "theory, many rows"])
def test_every_number_survives_a_narrow_terminal(df, width):
    """rich alone cut `3.4e-16` to `3.4e-…` at 80 columns; every number must appear whole, on one line, and no
    line may be wider than the page (the terminal would crop it)."""
    lines = render(df, width)
    assert max(map(len, lines)) <= width
    text = "\n".join(lines)
    numbers = {c for col in df.columns for c in df[col] if re.match(r"^[-+]?\d", c)}
    for n in numbers - {"5.18543 / -3.4e-16"}:  # a cell that is a number on its own
        assert re.search(rf"(^|[\s│]){re.escape(n)}($|[\s│])", text, re.M), (n, width, text)
    assert "…" not in text


@pytest.mark.parametrize("width", [160, 80, 60, 44])
def test_a_run_id_is_never_cut_and_a_name_value_table_wraps_its_names(width):
    """At 60 columns `mlhw svm soft` showed its run id as `b760fdf00d824ad0bc867970f8…` and `mlhw mlp train` as
    `3f9f2…`: the id is what a reader copies into the UI's search. A name-value table (no header) wraps its names."""
    rid = "b760fdf00d824ad0bc867970f8a1c2d3"
    kv = pd.DataFrame(
        [["Q3(d): max beta / max(1, max alpha), general QP (n=120)", "9.19334e-10"], ["run id", rid]],
        columns=["quantity", "value"],
    )
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(to_rich(kv, "t", header=False))
    lines = buf.getvalue().splitlines()
    assert max(map(len, lines)) <= width and "…" not in "".join(lines) and "quantity" not in "".join(lines)
    assert any(rid in line for line in lines) and any("9.19334e-10" in line for line in lines)
    mlp = pd.DataFrame([["0.1", "1.0809", "76.48%", "75.60%", "-", "0.05", rid[:8]]], columns=[*"abcdefg"])
    assert any(rid[:8] in line for line in render(mlp, width)) and "…" not in "".join(render(mlp, width))


def test_a_column_of_dashes_is_aligned_as_numbers():
    """`mlp train`'s "diverged at", "-" where no rate diverged, was left-aligned; `mlp sweep`'s, where one rate
    diverged at epoch 1, right-aligned: the same column, two alignments."""
    none = pd.DataFrame([["0.1", "-", "text"]], columns=["lr", "diverged at", "note"])
    some = pd.DataFrame([["0.1", "-", "text"], ["100", "1", "word"]], columns=["lr", "diverged at", "note"])
    for df in (none, some):
        head, first = render(df, 80)[2], render(df, 80)[4]
        assert head.split("┃")[2] == " diverged at " and first.split("│")[2] == "           - ", render(df, 80)
        assert first.split("│")[3] == " text ", render(df, 80)  # text stays left-aligned


def test_a_wide_page_shows_the_table_as_it_is():
    lines = render(SVM, 200)
    assert "question" in lines[2] and "liblinear rel. diff" in lines[2]  # one header row, columns across
    turned = render(SVM, 80)  # two rows, eight columns: one column per row fits 80
    assert any("Q1 multiclass hinge" in line and "Q3 soft SVM" in line for line in turned[:4])


def test_a_table_one_border_too_wide_drops_its_edges_before_breaking_a_word():
    """At 80 columns (a default terminal) the digits report's Part 1 (b) table was 81 wide at its narrowest whole-word
    widths, too wide turned, and was printed with its headers broken inside words: `learnin / g rate`, `diverge / d
    runs`. Without its outer border it fits, every header word and number whole."""
    sweep = pd.DataFrame(
        {
            "learning rate": ["0.001", "0.01", "0.1", "1", "10", "100"],
            "final train loss": ["1.4212 ± 0.2869", "0.1722 ± 0.0410", "0.0099 ± 0.0015"] + ["46.7340 ± 7.1126"] * 3,
            "train acc": ["73.12% ± 20.16%"] * 6,
            "test acc": ["72.93% ± 18.68%"] * 6,
            "diverged runs": ["0/3"] * 5 + ["3/3"],
            "n": ["3"] * 6,
        }
    )
    lines = render(sweep, 80)
    assert max(map(len, lines)) <= 80
    words = {w for line in lines for w in re.split(r"[\s│┃]+", line)}
    assert {"learning", "rate", "diverged", "runs", "46.7340", "73.12%"} <= words, "\n".join(lines)
    assert "┏" not in "".join(lines)  # the edges went
    assert "┏" in "".join(render(sweep, 100))  # where the table fits with them, it keeps them


def test_a_pair_of_numbers_wraps_at_its_spaces_before_any_word_breaks():
    """At 80 columns the digits report's SVM table (four rows) fitted neither whole, nor turned, nor without its
    border, as every `a / b` pair counted as one unbreakable number: every text cell was broken inside its words
    (`digi / ts`, `mult / icla / ss`, `C=0. / 1`). A pair may wrap at its spaces; each number stays whole."""
    soft = [
        ("C=0.1", "2.00091", "4.4e-16", "119"),
        ("C=1", "5.18543", "-1.7e-16", "48"),
        ("C=10", "7.98771", "0.0e+00", "29"),
    ]
    svm = pd.DataFrame(
        [["Q1 multiclass hinge", "digits, all classes", "0", "exact: a W with f = 0", "-", "0.00%", "3.40%", "-"]]
        + [["Q3 soft SVM", f"digits 3vs8, {c}", f, f"{f} / {g}", n, "0.00%", "1.08%", g] for c, f, g, n in soft],
        columns=list(SVM.columns),
    )
    for width in (80, 60):
        lines = render(svm, width)
        assert max(map(len, lines)) <= width
        words = {w for line in lines for w in re.split(r"[\s│┃]+", line)}
        cells = {w for col in svm.columns for c in [col, *svm[col]] for w in c.split()}
        assert cells <= words, (cells - words, "\n".join(lines))  # every word and number whole
    # where the pairs fit whole, they stay on one line (as the one-border test's `mean ± std` cells do)
    assert any("5.18543 / -1.7e-16" in line for line in render(svm, 200))


def test_a_table_that_fits_only_with_broken_words_and_no_border_is_still_a_table():
    """The last try broke words with the border kept; a table that fitted only without it too fell back to
    `field: value` lines. Seven rows (not turned), two 13-digit numbers: at 45 columns it fits so."""
    df = pd.DataFrame(
        [[f"alphabetical{i}", "1234567890.12", "1234567890.12", "wordy words"] for i in range(7)],
        columns=["name", "a", "b", "c"],
    )
    lines = render(df, 45)
    assert max(map(len, lines)) <= 45 and "┏" not in "".join(lines)
    assert any("┃" in line and " a " in line for line in lines), "\n".join(lines)  # a header row
    assert sum("1234567890.12 │ 1234567890.12" in line for line in lines) == 7  # each number whole, on its row


def test_a_turned_table_keeps_its_values_when_a_header_repeats():
    df = pd.DataFrame([["a", "1.2e-16", "2.0"], ["b", "3.0", "4.0"]], columns=["name", "x", "x"])
    text = "\n".join(render(df, 25))
    assert "1.2e-16" in text and "4.0" in text, text


def test_a_turned_table_tells_apart_rows_whose_first_cells_repeat():
    """Part 2 (b) and (c) turned read `optimizer ┃ Adam ┃ Adam`: which column was which variant, only the rows
    below said. Each header now names the first setting that differs (not a result: ±, %)."""
    from mlhw.tables import _row_names

    cols = ["optimizer", "final train loss", "val acc", "test acc", "learning rate", "BN+Dropout", "precision", "n"]
    b = pd.DataFrame(
        [
            ["Adam", "2.3026 ± 0.0001", "13.44% ± 1.02%", "12.10% ± 0.91%", "0.005", "yes", "bf16", "4"],
            ["Adam", "0.0596 ± 0.0047", "98.46% ± 0.63%", "98.30% ± 0.74%", "5e-05", "yes", "bf16", "4"],
        ],
        columns=cols,
    )
    assert _row_names(b) == ["Adam (learning rate 0.005)", "Adam (learning rate 5e-05)"]
    c = b.assign(**{"learning rate": ["5e-05", "5e-05"], "BN+Dropout": ["no", "yes"]})
    assert _row_names(c) == ["Adam (BN+Dropout no)", "Adam (BN+Dropout yes)"]
    mixed = pd.concat([b, b.assign(optimizer="SGD").iloc[:1]])  # SGD alone: its name alone
    assert _row_names(mixed) == ["Adam (learning rate 0.005)", "Adam (learning rate 5e-05)", "SGD"]
    svm = pd.DataFrame([["Q3 soft SVM", f"digits 3vs8, C={c}", "5.18543"] for c in (1, 10)], columns=[*"abc"])
    assert _row_names(svm) == ["Q3 soft SVM (digits 3vs8, C=1)", "Q3 soft SVM (digits 3vs8, C=10)"]
    lines = render(b, 80)  # turned at 80 columns (8 columns do not fit), the names in its header
    head = " ".join(line for line in lines if "┃" in line)
    assert "optimizer" in head and "0.005)" in head and "5e-05)" in head and "rate" in head, "\n".join(lines)


def test_a_cell_is_a_number_only_when_all_of_it_is():
    """A text cell that starts with a digit ('3 vs 8, ...') may wrap; a number, a percentage, mean ± std may not."""
    from mlhw.tables import _NUMBER

    for cell in ("0.005", "-3.4e-16", "94.76%", "0.1630 ± 0.0721", "5.18543 / -3.4e-16", "0/1", "nan", "inf", ".5"):
        assert _NUMBER.fullmatch(cell), cell
    for cell in ("3 vs 8, C=1e6", "digits 3vs8", "method certificate", "1.2.3", "-", "Q1"):
        assert not _NUMBER.fullmatch(cell), cell


def test_wide_characters_count_as_two_cells():
    df = pd.DataFrame({"名前": ["数据集数据集数据集"], "value": ["0.5"]})
    lines = render(df, 80)
    assert any("数据集数据集数据集" in line for line in lines)  # on one line: the page has room
    assert max(Console(width=80).measure(line).maximum for line in lines) <= 80


def test_losses_print_with_four_decimals_as_the_tables_give_them():
    """`mlp sweep` printed lr 100's loss as `37` beside lr 0.1's `0.8763` (4 significant digits each)."""
    assert [common.loss_text(v) for v in (37.00417, 0.87631, float("nan"), float("inf"), None)] == [
        "37.0042",
        "0.8763",
        "nan",
        "inf",
        "-",
    ]


def test_a_diverged_loss_prints_compactly_and_an_ordinary_one_as_it_was():
    """`mlp train --lr 1e30 --dtype float64` printed its final loss as 384354102436290373580199297024.0000."""
    values = (3.843541024362904e29, -2.5e6, 999_999.99999, 999_999.5, 0.1234, 0.0, float("-inf"))
    expected = ["3.84e+29", "-2.50e+06", "1.00e+06", "999999.5000", "0.1234", "0.0000", "-inf"]
    assert [common.loss_text(v) for v in values] == expected
    from mlhw.tables import num_or_inf

    assert [num_or_inf(v) for v in values] == expected and num_or_inf(float("nan")) == "nan"


def test_mlp_train_prints_a_diverged_loss_compactly(workdir):
    from helpers import invoke

    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ("--lr", "1e30", "--dtype", "float64", "--epochs", "1", "--train-size", "200", "--test-size", "50")
    res = invoke("mlp", "train", *args, "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if "1e+30" in line)
    assert re.search(r"│\s+\d\.\d\de\+\d\d │", row) and not re.search(r"\d{10}", row), res.stdout


def test_a_piped_single_commands_title_and_caption_are_not_wrapped_at_its_tables_width(workdir):
    """Piped, the console is 160 columns wide (as `reproduce`'s), but rich wraps a table's title and caption at the
    table's width: `mlp train`'s title broke at its table's 78 columns, mid-sentence."""
    from helpers import invoke

    uri = f"sqlite:///{workdir}/mlflow.db"
    more = ("--hidden", "100,40", "--batch-size", "20", "--train-size", "300", "--test-size", "100", "--epochs", "1")
    res = invoke("mlp", "train", *more, "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    lines = [line.strip() for line in res.stdout.splitlines()]
    title = "mlp.c: MLP [100, 40] on digits 300/100, 1 epoch, batch 20; 300 train / 100 test"
    table = max(len(line) for line in lines if line.startswith("┏"))
    assert title in lines and len(title) > table, res.stdout  # a title wider than its table, on one line
    assert any(line.startswith("train s: ") and line.endswith("training and test sets") for line in lines), res.stdout


def test_a_title_wider_than_its_table_wraps_at_the_page_and_a_short_one_stays_centred():
    from rich.table import Table

    from mlhw.tables import page_titled

    def lines(title, page):
        table = Table(title=title)
        table.add_column("lr")
        table.add_row("0.1")
        buf = io.StringIO()
        Console(file=buf, width=page, color_system=None).print(page_titled(table))
        assert table.title == title  # the caller's table is left as it was
        return buf.getvalue().splitlines()

    long = ", ".join(["a title of many words"] * 4)
    assert lines(long, 160)[0] == long  # one line: the page has room
    wrapped = lines(long, 40)[:3]
    assert max(map(len, wrapped)) <= 40 and " ".join(wrapped).split() == long.split()  # the page's width, nothing lost
    assert lines("lr", 160)[0] == "  lr   "  # as rich sets it: in the table, centred
    buf = io.StringIO()  # the tables of `reproduce`, `tables`, `cnn compare`, `theory` alike
    Console(file=buf, width=160, color_system=None).print(to_rich(pd.DataFrame({"lr": ["0.1"]}), long))
    assert buf.getvalue().splitlines()[0] == long


HELP_COMMANDS = [["mlp", "train"], ["mlp", "sweep"], ["cnn", "train"], ["cnn", "compare"], ["svm", "soft"]]
HELP_COMMANDS += [["svm", "multiclass"], ["reproduce"], ["tables"], ["check"]]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=" ".join)
def test_help_at_80_columns_breaks_no_choice_list(command, monkeypatch):
    """At COLUMNS=80 `mlhw cnn train --help` wrapped '<auto|bf16|fp16|fp3' / '2>', and --dataset showed '<str>':
    a list of choices fits on its line, every list in full (not '<choice>' or '<mode>')."""
    import typer.rich_utils
    from typer.testing import CliRunner

    from mlhw.cli import app

    # typer reads TERMINAL_WIDTH once, when its help formatting is first imported: set there through the
    # environment, 80 columns held for every later test of the process (another module's --help at COLUMNS=200 then
    # wrapped, and failed in the full suite)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(x) for x in lines) <= 80  # the width asked for: the check below is about 80 columns
    lists = [m.group(0) for x in lines for m in re.finditer(r"<[\w.]+(\|[\w.]+)+>?", x)]
    assert all(x.endswith(">") for x in lists), lists
    options = {x.split()[1]: x for x in lines if re.match(r"^│ --[a-z]", x)}
    if "--dataset" in options:
        assert "<str>" not in options["--dataset"]
    if "--precision" in options:
        assert "<auto|bf16|fp16|fp32>" in options["--precision"]
    if command[0] == "mlp":
        assert "<digits|mnist>" in options["--dataset"]
    if command[0] == "cnn":
        assert "<digits|cifar10>" in options["--dataset"]
    assert "<choice>" not in res.output and "<mode>" not in res.output


@pytest.mark.parametrize("command", HELP_COMMANDS[:7], ids=" ".join)
def test_every_run_commands_help_shows_its_panels_in_one_order(command):
    """`mlp train --help` showed Data before Training, `mlp sweep`, `cnn train`, `svm multiclass` and `reproduce` the
    other way round (a panel comes where its first option does): a reader going from one to the next looked for
    them. reproduce's --download sat among its general options; it is in Data, as elsewhere. AlexNet's shape
    (--width, --image-size, --batchnorm, --dropout) is a Model panel between Data and Training."""
    from typer.testing import CliRunner

    from mlhw.cli import app

    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    panels = [m.group(1) for m in re.finditer(r"^╭─ ([\w ]+?) ─", res.output, re.MULTILINE)]
    extra = ["Parallel and distributed"] if command == ["reproduce"] else []  # its workers, a panel of its own
    model = ["Model"] if command[0] == "cnn" else []
    assert panels == ["Options", "Data", *model, "Training", "Tracking", "Output", *extra], panels
    data = res.output.split("╭─ Data ─")[1].split("╰")[0]
    assert "--download" in data, data


def test_the_count_column_names_what_it_counts_in_whole_numbers():
    """'3/10 epochs' (a bar of epochs under reproduce's bar of runs counted them bare); a million steps is
    1234567/2000000, not rich's 1.23457e+06; a task that counts nothing shows nothing."""
    from rich.progress import Progress

    bar = Progress(common.CountColumn())
    shown = {}
    for name, total, done, fields in [
        ("epochs", 10, 3, {"unit": "epoch"}),
        ("one", 1, 0, {"unit": "epoch"}),
        ("steps", 2_000_000, 1_234_567, {"unit": "step"}),
        ("bare", 4, 2, {}),
        ("none", 1, 0, {"unit": "epoch", "count": False}),
    ]:
        task = bar.add_task(name, total=total, completed=done, **fields)
        shown[name] = common.CountColumn().render(bar.tasks[task]).plain
    assert shown == {
        "epochs": "3/10 epochs",
        "one": "0/1 epoch",
        "steps": "1234567/2000000 steps",
        "bare": "2/4",
        "none": "",
    }


@pytest.mark.parametrize(
    "columns, width", [(None, 160), ("60", 60), (" 60", 60), ("", 160), ("wide", 160), ("0", 160), ("5", 160)]
)
def test_piped_output_is_160_columns_unless_columns_says_otherwise(columns, width):
    """`COLUMNS=60 mlhw theory > out.txt` wrote 160-column lines: a user who sets COLUMNS expects it to win."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | (
        {"COLUMNS": columns} if columns is not None else {}
    )
    code = "from mlhw.cli.common import out, err; print(out.width, err.width)"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert got.stdout.split() == [str(width), str(width)]


def _every_command():
    """(path, the function, its click command) of every `mlhw` command, as Typer builds them."""
    import typer

    from mlhw.cli import app

    def walk(typer_app, group, path):
        for info in typer_app.registered_commands:
            name = info.name or info.callback.__name__.replace("_", "-")
            yield [*path, name], info.callback, group.commands[name]
        for sub in typer_app.registered_groups:
            yield from walk(sub.typer_instance, group.commands[sub.name], [*path, sub.name])

    return list(walk(app, typer.main.get_command(app), []))


def _allowed_values(fn, command, param) -> list[str] | None:
    """The values an option takes when they are a fixed list: its type's (a Literal or an Enum), or, for a text
    option, those of the config field of its name (`--dtype`: MLPConfig.dtype's), the config being the one whose
    fields the command's options name most."""
    import enum
    import inspect
    import types
    import typing

    from mlhw.config import KINDS

    hint = typing.get_type_hints(inspect.unwrap(fn), include_extras=True)[param.name]
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if typing.get_origin(base) in (typing.Union, types.UnionType):  # Optional[...]
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if typing.get_origin(base) is typing.Literal:
        return [str(a) for a in typing.get_args(base)]
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [str(e.value) for e in base]
    names = {p.name for p in command.params}
    model = max(KINDS.values(), key=lambda m: len(names & set(m.model_fields)))
    if base is str and len(names & set(model.model_fields)) >= 3 and param.name in model.model_fields:
        field = model.model_fields[param.name].annotation
        if typing.get_origin(field) is typing.Literal:
            return [str(a) for a in typing.get_args(field)]
    return None


def test_every_option_of_fixed_values_lists_them_in_its_help(monkeypatch):
    """`--dtype <choice>`, `cnn --dataset <choice>`, `svm multiclass --method <choice>`, `--precision <mode>` and
    `svm soft --bias <str>` hid the values they take where `--dataset <digits|mnist>` listed them. Every option of
    every command whose values are a fixed list (a Literal or an Enum, or a text option for such a config field)
    lists them as its metavar, `<a|b|c>`, on its line of the help."""
    import typer.rich_utils
    from typer.testing import CliRunner

    from mlhw.cli import app

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 200)  # (read once by typer: see the 80-column test)
    checked = []
    for path, fn, command in _every_command():
        res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        for param in command.params:
            if getattr(param, "hidden", False) or not (values := _allowed_values(fn, command, param)):
                continue
            [line] = [x for x in res.output.splitlines() if re.match(rf"^│ {re.escape(param.opts[0])} ", x)]
            assert f"<{'|'.join(values)}>" in line, (" ".join(path), line)
            checked.append(f"{' '.join(path)} {param.opts[0]}")
    for expected in ["mlp train --dtype", "cnn train --dataset", "svm multiclass --method", "svm soft --bias"]:
        assert expected in checked, checked
    assert "cnn train --precision" in checked and "reproduce --executor" in checked


def test_profile_options_name_every_profile_of_experiments_yaml():
    """`--profile <str>` named no profile in its metavar; its help lists the shipped experiments.yaml's."""
    from pathlib import Path

    from typer.testing import CliRunner

    from mlhw.cli import app
    from mlhw.report import profiles_of

    profiles = profiles_of(str(Path(__file__).resolve().parents[1] / "experiments.yaml"))
    assert profiles
    for command in (["reproduce"], ["tables"], ["check"]):
        res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
        text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
        assert "--profile <name>" in text, command
        block = text.split("--profile <name>")[1].split(" --")[0]
        assert all(re.search(rf"\b{p}\b", block) for p in profiles), (command, block)


def test_svm_soft_help_names_c_once_and_dash_c_still_works(workdir):
    """`svm soft --help` read `--C  -C` (one option's two names in two columns); -C is said in --C's help, and a
    command line with either works as before. (Both at once: one option given twice, tests/test_entry_point.py.)"""
    from tests.helpers import invoke

    help_text = invoke("svm", "soft", "--help").stdout
    assert not re.search(r"--C +-C", help_text) and "(-C for short)" in " ".join(help_text.split())
    uri = f"sqlite:///{workdir}/mlflow.db"
    for flag in ("-C", "--C"):
        res = invoke("svm", "soft", flag, "2", "--tracking-uri", uri)
        assert res.exit_code == 0, res.output
        assert "3 vs 8, C = 2, bias free" in res.stdout


def test_mlp_train_part_is_among_its_own_options_not_tracking():
    """`mlp train --help` listed --part under Tracking (beside the store's URI); it is the command's own, as
    `cnn compare --part` is."""
    from tests.helpers import invoke

    out = invoke("mlp", "train", "--help").stdout
    assert "--part" in out.split("╭─ Options ─")[1].split("╰")[0]
    assert "--part" not in out.split("╭─ Tracking ─")[1].split("╰")[0]


EXAMPLES = [
    [],
    ["reproduce"],
    ["check"],  # the CI gate's step is written from its help, which had no example
    ["tables"],
    ["mlp", "train"],
    ["cnn", "train"],
    ["svm", "soft"],
    ["svm", "multiclass"],
]


@pytest.mark.parametrize("command", EXAMPLES, ids=lambda c: " ".join(c) or "mlhw")
def test_help_ends_with_examples_that_parse(command, monkeypatch, tmp_path):
    """No --help had an example. The app's, reproduce's and the single commands' end with Examples, each command
    line under 80 columns (a long one joined by backslashes), and each one parses: its options exist and take the
    values given (DIR: a folder)."""
    import shlex

    import typer
    import typer.rich_utils
    from typer.testing import CliRunner

    from mlhw.cli import app

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and max(len(x) for x in res.output.splitlines()) <= 80
    shown = res.output.split(" Examples")[1].splitlines()
    lines = " ".join(x.strip() for x in shown if x.startswith("   ")).replace("\\ ", "")
    lines = [f"mlhw {x}" for x in lines.split("mlhw ")[1:]]
    assert len(lines) >= 3 and all(x.startswith("mlhw " + " ".join(command)) for x in lines[:1] if command), lines
    root = typer.main.get_command(app)
    for line in lines:
        args = [str(tmp_path) if a == "DIR" else a for a in shlex.split(line)[1:]]
        group, i = root, 0
        while hasattr(group, "commands") and i < len(args) and args[i] in group.commands:
            group, i = group.commands[args[i]], i + 1
        assert not hasattr(group, "commands") or args[i:] == ["--help"], line  # a command, not a group
        if args[i:] != ["--help"]:
            group.make_context(" ".join(args[:i]), args[i:])  # a wrong option or value raises
