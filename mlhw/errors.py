"""User-facing errors: one line that names the culprit, exit code 2 at the CLI."""

import re


class MLHWError(ValueError):
    """Bad input (a file, key, option or value). The message is one line and names the culprit."""


class DataNotFound(MLHWError):
    """A dataset is not on disk and could not be downloaded."""


def format_validation_error(err, prefix: str = "") -> str:
    """Render a pydantic ValidationError as one line: `key: message (got value)`."""
    parts = []
    for e in err.errors():
        path = e.get("loc", ())
        loc = ".".join(str(p) for p in path if not isinstance(p, int))  # "hidden", not "hidden.0"
        if prefix == "--":  # a command-line option: spelled with dashes, as the user typed it
            loc = loc.replace("_", "-")
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        msg = ("each value " if any(isinstance(p, int) for p in path) else "") + message(e)
        got = e.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        parts.append(f"{key}: {msg}{shown}")
    return "; ".join(parts)


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
