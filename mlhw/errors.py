"""User-facing errors: one line that names the culprit, exit code 2 at the CLI."""

import re


class MLHWError(ValueError):
    """Bad input (a file, key, option or value). The message is one line and names the culprit."""


class DataNotFound(MLHWError):
    """A dataset is not on disk and could not be downloaded."""


def yaml_error(path, err) -> str:
    """A YAML parse error as one line: where the parser stopped, and where what it was parsing began when that
    is another line (an unclosed `[` on line 58 was reported at line 61, where the parser gave up, alone)."""
    mark, begun = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    why = getattr(err, "problem", None) or err
    context = getattr(err, "context", None)
    if context and begun is not None and (mark is None or begun.line != mark.line):
        why = f"{why}; {context} that begins on line {begun.line + 1}"
    return f"{path}:{where} not valid YAML ({why})"


def format_validation_error(err, prefix: str = "", model=None) -> str:
    """Render a pydantic ValidationError as one line: `key: message (got value)`. `model`: the class validated,
    whose keys an unknown key's message lists ('suites.sweep.gird: unknown key (keys here: base, grid, ...)')."""
    parts = []
    for e in err.errors():
        path = e.get("loc", ())
        loc = ".".join(str(p) for p in path if not isinstance(p, int))  # "hidden", not "hidden.0"
        if prefix == "--":  # a command-line option: spelled with dashes, as the user typed it
            loc = loc.replace("_", "-")
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        msg = ("each value " if any(isinstance(p, int) for p in path) else "") + message(e)
        if e.get("type") == "extra_forbidden" and model is not None and (known := keys_at(model, path[:-1])):
            msg += f" (keys here: {', '.join(known)})"
        got = e.get("input")
        if isinstance(got, dict) or got is None:
            shown = ""
        elif prefix == "--" and isinstance(got, list | tuple):  # an option's list, as typed: --classes 3,11
            shown = f" (got {','.join(as_written(v) for v in got)})"
        else:
            shown = f" (got {as_written(got)})"
        parts.append(f"{key}: {msg}{shown}")
    return "; ".join(parts)


def keys_at(model, path) -> list[str]:
    """The keys a pydantic model takes at `path` (model fields and dict keys on the way), or [] where unknown."""
    import typing

    from pydantic import BaseModel

    t = model
    for part in path:
        if isinstance(t, type) and issubclass(t, BaseModel) and part in t.model_fields:
            t = t.model_fields[part].annotation
        elif typing.get_origin(t) is dict:
            t = typing.get_args(t)[1]
        else:
            return []
    return sorted(t.model_fields) if isinstance(t, type) and issubclass(t, BaseModel) else []


def as_written(value) -> str:
    """A value in an error message as the user wrote it, in YAML's terms rather than Python's: true / false, null,
    [3, 3] for a list (a tuple once validated), -1 for a whole float (--lr -1 arrives as -1.0), inf and nan; a string
    keeps its quotes ('5' is not 5)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(as_written(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{k if isinstance(k, str) else as_written(k)}: {as_written(v)}" for k, v in value.items())
            + "}"
        )
    return repr(value)


def message(e: dict) -> str:
    """A pydantic error in mlhw's words (no "Value error, ..." prefixes)."""
    kind = e.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "finite_number":
        return "must be a finite number"
    msg = e.get("msg", "invalid")
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if msg.startswith("Input should be "):  # pydantic's wording -> "must be >= 1", "must be 'sgd' or 'adam'"
        msg = "must be " + msg.removeprefix("Input should be ")
        for words, sign in (
            ("greater than or equal to", ">="),
            ("less than or equal to", "<="),
            ("greater than", ">"),
            ("less than", "<"),
        ):
            msg = msg.replace(words, sign)
        msg = re.sub(r"^must be a valid (\w+),.*$", r"must be a valid \1", msg)
    return msg
