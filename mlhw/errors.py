"""User-facing errors: one line that names the culprit, exit code 2 at the CLI."""


class MLHWError(ValueError):
    """Bad input (a file, key, option or value). The message is one line and names the culprit."""


class DataNotFound(MLHWError):
    """A dataset is not on disk and could not be downloaded."""


def format_validation_error(err, prefix: str = "") -> str:
    """Render a pydantic ValidationError as one line: `key: message (got value)`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        msg = message(e)
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
    return msg
