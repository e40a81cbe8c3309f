"""The `mlhw` command line: a thin Typer layer over mlhw.runs and the numerical core."""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Optional

import typer

import mlhw
from mlhw.cli import check, cnn, mlp, reproduce, svm, tables, theory, ui
from mlhw.cli.common import examples

app = typer.Typer(
    name="mlhw",
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Reproduce Intro-to-ML assignment 4 end to end: a hand-written backprop MLP, AlexNet on "
    "CIFAR-10 and the SVM theory. Every run is logged to MLflow (default sqlite:///mlflow.db). "
    "Every command runs on the embedded digits data out of the box.",
    epilog=examples(
        ("Start here: every part on the embedded digits (< 5 min on a CPU)", "mlhw reproduce"),
        (
            "The assignment's settings: MNIST and CIFAR-10 from DIR (AlexNet wants a GPU)",
            "mlhw reproduce --profile paper --data-dir DIR",
        ),
        ("Browse every run in the MLflow UI", "mlhw ui"),
        ("Each command's options and examples", "mlhw reproduce --help"),
    ),
)
app.command("reproduce", rich_help_panel="Main", epilog=reproduce.EXAMPLES)(reproduce.reproduce)
app.command("tables", rich_help_panel="Main", epilog=tables.EXAMPLES)(tables.tables)
app.command("check", rich_help_panel="Main", epilog=check.EXAMPLES)(check.check)
app.command("ui", rich_help_panel="Main")(ui.ui)
app.add_typer(mlp.app, name="mlp", rich_help_panel="Experiments")
app.add_typer(cnn.app, name="cnn", rich_help_panel="Experiments")
app.add_typer(svm.app, name="svm", rich_help_panel="Theory")
app.command("theory", rich_help_panel="Theory")(theory.theory)


def reflow(doc: str) -> str:
    """A docstring as help text: Typer's rich mode keeps every line break after the first paragraph, so the
    80-column help showed the docstring's own line breaks inside its wrapped lines. Lines of a paragraph join;
    a line that starts a list item ("- ") starts a new line."""
    out = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines: list[str] = []
        for line in para.splitlines():
            if lines and not line.lstrip().startswith(("- ", "* ")):
                lines[-1] += " " + line.strip()
            else:
                lines.append(line.rstrip())
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _reflow_help(typer_app: typer.Typer) -> None:
    for cmd in typer_app.registered_commands:
        if cmd.help is None and cmd.callback is not None and cmd.callback.__doc__:
            cmd.help = reflow(cmd.callback.__doc__)
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_reflow_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlhw {mlhw.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Reproduce Intro-to-ML assignment 4 end to end, every run logged to MLflow."""


def _without_flag_types(command):
    """Typer 0.29's help shows a flag's Python type as if it took a value ("--force <bool>", "--help <bool>"):
    every flag of every command, Typer's own --help and completion flags included, gets an empty metavar."""
    ctx = command.context_class(command, info_name=command.name)
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _without_flag_types(sub)
    return command


def _exact_floats(command):
    """Every float option of every command refuses a number that float() would round to 0 or inf (`--lr 1e-400`
    was refused as 'must be > 0 (got 0)', a value nobody typed). Typer 0.29 converts a value in the parameter's
    process_value, so the text is looked at there, before its conversion."""
    for param in command.params:
        if _is_float(param) and not getattr(param, "exact_float", False):
            param.process_value = functools.partial(_exact_float, param, param.process_value)
            param.exact_float = True
    for sub in getattr(command, "commands", {}).values():
        _exact_floats(sub)
    return command


def _once(command):
    """Every command refuses an option of one value given twice with two values (`--profile ci --profile digits`
    ran digits, silently: click keeps the last), a flag and its opposite among them (`--force ... --no-force`);
    the same value twice is harmless and goes through. Checked on the command's own arguments before click parses
    them, so the error names both values."""
    if not getattr(command, "checks_once", False) and not hasattr(command, "commands"):
        command.parse_args = functools.partial(_parse_once, command, command.parse_args)
        command.checks_once = True
    for sub in getattr(command, "commands", {}).values():
        _once(sub)
    return command


def _parse_once(command, parse_args, ctx, args):
    given = args[: args.index("--")] if "--" in args else args
    if any(arg in ctx.help_option_names for arg in given):  # --help wins, as over any other bad value (click's eager)
        return parse_args(ctx, args)
    seen: dict[str, tuple[str, str]] = {}  # param name -> (the option as typed, its value)
    takes = {}  # an option's every name -> (param, whether it takes a value)
    options = [param for param in command.params if getattr(param, "param_type_name", "") == "option"]
    for param in options:
        for opt in [*param.opts, *param.secondary_opts]:
            takes[opt] = (param, not param.is_flag and not getattr(param, "count", False))
    same = _short_names(options)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        name, value, step = arg, None, 1
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        elif arg not in takes and arg.startswith("-") and not arg.startswith("--") and arg[:2] in takes:
            name, value = arg[:2], arg[2:]  # `-C1`
        if name not in takes:
            i += 1
            continue
        param, valued = takes[name]
        if valued and value is None:
            value, step = (args[i + 1] if i + 1 < len(args) else None), 2
        elif not valued:
            value = "off" if name in param.secondary_opts else "on"
        i += step
        if value is None or param.multiple or getattr(param, "count", False):
            continue
        key = same.get(param.name, param.name)
        if key in seen and not _same_value(param, seen[key][1], value):
            first, before = seen[key]
            twice = f"{first} given twice" if first == name else f"{first} and {name} both given"
            why = f"{twice} ({before}, then {value}): give it once" if valued else None
            raise _click_exceptions().UsageError(why or f"{first} and {name} both given: give one", ctx=ctx)
        seen[key] = (name, value)
    return parse_args(ctx, args)


def _short_names(options) -> dict[str, str]:
    """A hidden option whose one name is `-x` beside an option `--x` is that option's short name (svm soft's `-C`:
    an option of its own so that --help names --C once); the two are one option here, given twice if both."""
    long_of = {opt: param.name for param in options for opt in param.opts if opt.startswith("--")}
    return {
        param.name: long_of["-" + param.opts[0]]
        for param in options
        if param.hidden
        and len(param.opts) == 1
        and not param.opts[0].startswith("--")
        and "-" + param.opts[0] in long_of
    }


def _same_value(param, before: str, value: str) -> bool:
    """One value, however it is spelt: a float option's `1` and `1.0`, `0.001` and `1e-3` ('--C given twice (1, then
    1.0)' refused what the docstring of _once lets through). Any other option's text is its value."""
    if before == value:
        return True
    if not _is_float(param):
        return False
    try:
        return float(before) == float(value)
    except ValueError:  # (the one that is no number is click's to refuse)
        return False


def _is_float(param) -> bool:
    """A float option: Typer 0.29 says so in its type descriptor; the Typers before it (pyproject allows 0.19) build
    click's own FLOAT parameter type and have no descriptor, so that none of their options was looked at."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        return getattr(descriptor, "annotation", None) is float
    return type(getattr(param, "type", None)).__name__ == "FloatParamType"


def _exact_float(param, process_value, ctx, value):
    from mlhw.errors import float_beyond_range

    if isinstance(value, str) and (why := float_beyond_range(value)):
        raise _click_exceptions().BadParameter(why, ctx=ctx, param=param)
    return process_value(ctx, value)


def _click_exceptions():
    """click's exceptions as Typer raises them: typer >= 0.2x carries its own copy of click."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _command_path(root, args: list[str]) -> str:
    """'mlhw mlp train' for ['mlp', 'train', '--lr']: the commands the arguments name, as far as they name one."""
    path, command = ["mlhw"], root
    for arg in args:
        command = getattr(command, "commands", {}).get(arg)
        if command is None:
            break
        path.append(arg)
    return " ".join(path)


def _given(param, args: list[str]) -> str | None:
    """The value typed for an option whose value was refused (`--epochs abc`, `--epochs=abc`): the last one given."""
    opts = getattr(param, "opts", ()) if getattr(param, "param_type_name", "") == "option" else ()
    found = None
    for i, arg in enumerate(args):
        for opt in opts:
            if arg == opt and i + 1 < len(args):
                found = args[i + 1]
            elif arg.startswith(f"{opt}="):
                found = arg.split("=", 1)[1]
    return found


def main() -> None:
    """The `mlhw` entry point: Typer's app, with click's usage errors (an unknown option, a value of the wrong
    type) as one line and exit 2, like every other bad input, instead of a usage line and a framed box. It ends
    the process without the interpreter's teardown (mlhw.processes.end_now); an unexpected exception propagates
    (its traceback, exit 1) the usual way."""
    import sys

    from mlhw.cli.common import StdoutFailed, guard_stdout, plain_where_unencodable, said_stdout_failed
    from mlhw.processes import end_now

    plain_where_unencodable()  # LC_ALL=C, PYTHONIOENCODING=ascii: ± as +/-, not a UnicodeEncodeError
    guard_stdout()  # a failed write to stdout (a full disk, a closed pipe): one path, mlhw.cli.common.StdoutFailed
    try:
        code = _main()
    except SystemExit as stop:  # sys.exit() in a command
        code = stop.code
    try:  # what is still buffered (`mlhw --version > /dev/full` said nothing, exit 0: end_now's flush is quiet)
        sys.stdout.flush()
    except StdoutFailed as err:
        failed = said_stdout_failed(err)
        code = code if code not in (None, 0) else failed
    if code is None or isinstance(code, int):
        end_now(code or 0)
    raise SystemExit(code)  # a message: Python prints it and exits 1


def _close_options(name: str, options) -> list[str]:
    """The options a mistyped one may have meant: those it begins (--dev: --device), then those close to it compared
    without their dashes. click compares them with, and the shared '--' made '--bogus' a "possible option" '--jobs'
    (0.62 of the letters in common, over click's 0.6)."""
    import difflib

    typed = name.lstrip("-")
    bare = {o.lstrip("-"): o for o in options}
    begun = [o for b, o in bare.items() if len(typed) >= 2 and b.startswith(typed)]
    close = [bare[m] for m in difflib.get_close_matches(typed, list(bare), cutoff=0.7)]
    return list(dict.fromkeys(begun + close))


def _plain_usage(why: str) -> str:
    """click's and pydantic's words for a bad option value in mlhw's own (`--set epochs: must be a valid integer`):
    "Invalid value for '--epochs': Input should be a valid integer, unable to parse string as an integer" ->
    "--epochs: must be a valid integer"; "'fp8' is not one of 'auto', 'bf16'." -> "must be 'auto' or 'bf16'"."""
    import re

    m = re.fullmatch(r"Invalid value for '([^']+)'(?: / '[^']+')*: (.*)", why)  # ('--C' / '-C': an option's names)
    if not m:
        return why
    option, text = m.groups()
    text = re.sub(r"^Input should be a valid (\w+)\b.*$", r"must be a valid \1", text)
    if choice := re.fullmatch(r"'.*?' is not one of (.*?)\.?", text):
        options = choice.group(1).split(", ")
        text = "must be " + (", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0])
    return f"{option}: {text}"


def _main() -> int:
    import sys

    from mlhw.cli.common import StdoutFailed, said_stdout_failed

    click = _click_exceptions()
    try:  # typer >= 0.2x has Abort and Exit moved to typer.exceptions
        from typer.exceptions import Abort
    except ImportError:
        from click.exceptions import Abort

    command = _once(_exact_floats(_without_flag_types(typer.main.get_command(app))))
    try:
        code = command(standalone_mode=False, prog_name="mlhw")
    except click.UsageError as err:
        if isinstance(err, click.NoSuchOption) and err.possibilities:
            err.possibilities = _close_options(err.option_name, err.possibilities)
        # the command the arguments name: click gives an option without its value ('--lr' last) the group's context
        where, why = _command_path(command, sys.argv[1:]), " ".join(err.format_message().split())
        why = _plain_usage(why.replace(": Value error, ", ": "))  # (a Literal option's check, in pydantic's words)
        given = _given(getattr(err, "param", None), sys.argv[1:])
        if why and given is not None and repr(given) not in why:  # as mlhw's own checks say it: `(got -1)`
            why += f" (got {given!r})"
        if why:  # (none: a group called without a command, whose help was the answer)
            sys.stderr.write(f"error: {where}: {why} (see {where} --help)\n")
        return err.exit_code
    except click.ClickException as err:
        sys.stderr.write(f"error: {' '.join(err.format_message().split())}\n")
        return err.exit_code
    except Abort:  # end of input at a prompt (Ctrl-C comes back as exit code 130 from typer itself)
        sys.stderr.write("aborted\n")
        return 130
    except StdoutFailed as err:  # outside a command (--help, --version, a usage error's help)
        return said_stdout_failed(err)
    return code if isinstance(code, int) else 0
