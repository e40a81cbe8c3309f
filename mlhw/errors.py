"""User-facing errors: one line that names the culprit, exit code 2 at the CLI."""

import contextlib
import datetime
import math
import os
import re
import unicodedata


class MLHWError(ValueError):
    """Bad input (a file, key, option or value). The message is one line and names the culprit."""


def refuse_empty(option: str, folder, default: str) -> None:
    """A folder option given as '' (`--data-dir "$DIR"` with DIR unset) is refused: Path('') is '.', a folder the user
    never named (the data looked for in ./data, a report written into the working directory itself)."""
    if not str(folder).strip():
        raise MLHWError(f"{option} {str(folder)!r}: empty (the default is {default})")


@contextlib.contextmanager
def path_errors(culprit: str, path, kind: type[MLHWError] = MLHWError):
    """Where the command looks at a path the user named: Python 3.11's Path.exists(), is_file() and is_dir() raise,
    not answer False, where a folder on the way cannot be searched (a parent of mode 700 owned by another user:
    EACCES) or a name is too long (a part over 255 bytes: ENAMETOOLONG). Such an error, about `path`, a path under
    it or a folder above it, becomes one line: `culprit` (the option and its value), the path and the reason. An
    OSError about another file (a cache, a socket) is not the user's path: it goes on as it was."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise
        name = os.fsdecode(err.filename)
        if not _related(name, os.fsdecode(path)):
            raise
        why = err.strerror or type(err).__name__
        where = "" if culprit.endswith(f" {name}") else f"{name} "  # (not said twice)
        raise kind(f"{culprit}: {where}cannot be accessed ({why})") from None


def _related(a: str, b: str) -> bool:
    """Whether one path is the other or lies under it (as written, made absolute; never a call that could raise)."""
    a, b = os.path.abspath(a), os.path.abspath(b)
    return os.path.commonpath([a, b]) in (a, b)


class DataNotFound(MLHWError):
    """A dataset is not on disk and could not be downloaded."""


class DataDirUnusable(MLHWError):
    """The data folder cannot be looked at (mlhw.runs.data_dir_errors): like DataNotFound, said with where the
    folder came from when MLHW_DATA_DIR named it."""


def float_beyond_range(text: str) -> str | None:
    """Why a number as typed is no float ('too small for a float: ...'), where float() rounds it to another number
    without a word: 1e-400 reads as 0 (then refused as 'must be > 0 (got 0)', a value nobody typed) and 1e400 as inf.
    None for a number in range, for inf and nan as written, and for text that is no number (float() says so)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    digits = re.sub(r"[eE].*$", "", str(text).strip().replace("_", ""))
    if value == 0 and any(unicodedata.digit(c, 0) for c in digits):  # float() reads any script's digits: '١e-400'
        return "too small for a float: it reads as 0 (the smallest is about 5e-324)"
    if math.isinf(value) and not re.search(r"inf", str(text), re.IGNORECASE):
        return "too large for a float: it reads as inf (the largest is about 1.8e308)"
    return None


def yaml_error(path, err) -> str:
    """A YAML parse error as one line: where the parser stopped, and where what it was parsing began when that
    is another line (an unclosed `[` on line 58 was reported at line 61, where the parser gave up, alone)."""
    mark, begun = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    why = getattr(err, "problem", None) or err
    context = getattr(err, "context", None)
    if context and begun is not None and (mark is None or begun.line != mark.line):
        why = f"{why}; {context} that begins on line {begun.line + 1}"
    # one line: a reader error (a NUL or another control character) spans two, the second 'in "<unicode string>", ...'
    why = " ".join(str(why).replace('in "<unicode string>", ', "at ").split())
    return f"{path}:{where} not valid YAML ({why})"


def format_validation_error(err, prefix: str = "", model=None) -> str:
    """Render a pydantic ValidationError as one line: `key: message (got value)`. `model`: the class validated,
    whose keys an unknown key's message lists ('suites.sweep.gird: unknown key (keys here: base, grid, ...)')."""
    parts = []
    errors = err.errors()
    item_locs = {tuple(e.get("loc", ()))[:-1] for e in errors if e.get("loc") and isinstance(e["loc"][-1], int)}
    for e in errors:
        path = e.get("loc", ())
        # pydantic counts a list's valid items for its min_length: `--hidden 0` also said "must hold 1 value at
        # least (got 0)" of a list that holds one; the item's own error names the culprit
        if e.get("type") == "too_short" and tuple(path) in item_locs:
            continue
        if len(path) >= 2 and path[-1] == "[key]":  # a mapping's key that is no name: 'suites.None.[key]' before
            where = ".".join(str(p) for p in path[:-2] if not isinstance(p, int)) or "config"
            # the key as read: pydantic's loc spells null 'None', true 1, 1.5 '1.5' and a date its repr
            key = as_written(e["input"] if "input" in e else path[-2])
            parts.append(f"{prefix}{where}: the key {key} is not a name (quote it to make it one)")
            continue
        loc = ".".join(str(p) for p in path if not isinstance(p, int))  # "hidden", not "hidden.0"
        if prefix == "--":  # a command-line option: spelled with dashes, as the user typed it
            loc = loc.replace("_", "-")
        key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        msg = ("each value " if any(isinstance(p, int) for p in path) else "") + message(e)
        if e.get("type") == "extra_forbidden" and model is not None and (known := keys_at(model, path[:-1])):
            msg += f" (keys here: {', '.join(known)})"
        got = e.get("input")
        if e.get("type") in ("model_type", "dict_type"):  # "a valid dictionary or instance of ProfileSpec": a class
            # name the file never shows; `mine:` with nothing under it is YAML's null, the commonest way to get here
            known = keys_at(model, path) if model is not None else []
            msg = ("nothing given (YAML's null): " if got is None else "") + "must be a mapping of key: value"
            msg += f" (keys here: {', '.join(known)})" if known else ""
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


# An error message shows at most this much of a value: a YAML alias bomb (nine nested anchors of ten) as a seeds list
# or a description made one error "line" of 1.1 GB, and a 100,000-character string one of 100 kB
WRITTEN_LIMIT = 200


def as_written(value, limit: int = WRITTEN_LIMIT) -> str:
    """A value in an error message as the user wrote it, in YAML's terms rather than Python's: true / false, null,
    [3, 3] for a list (a tuple once validated), -1 for a whole float (--lr -1 arrives as -1.0), inf and nan; a string
    keeps its quotes ('5' is not 5). Cut to `limit` characters, ending in '...': the culprit is named, not copied."""
    text = _written(value, limit)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _written(value, limit: int) -> str:
    """as_written, building no more than about `limit` characters of a long or nested value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, datetime.date):  # YAML's timestamps (2024-01-01), not Python's datetime.date(2024, 1, 1)
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        is_dict = isinstance(value, dict)
        items = value.items() if is_dict else value
        parts, size = [], 1
        for item in items:
            if size > limit:
                parts.append("...")
                break
            if is_dict:
                k, v = item
                part = f"{k if isinstance(k, str) else _written(k, limit)}: {_written(v, limit)}"
            else:
                part = _written(item, limit)
            parts.append(part)
            size += len(part) + 2
        return ("{" if is_dict else "[") + ", ".join(parts) + ("}" if is_dict else "]")
    if isinstance(value, int) and value.bit_length() > 3 * limit:  # str() of over 4,300 digits raises ValueError
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits:,} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def message(e: dict) -> str:
    """A pydantic error in mlhw's words (no "Value error, ..." prefixes)."""
    kind = e.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "missing":  # pydantic's "Field required": a YAML file has keys, not fields
        return "missing: a required key"
    if kind == "too_short":  # pydantic's "Tuple should have at least 1 item after validation, not 0"
        least = e.get("ctx", {}).get("min_length", 1)
        return f"must hold {least} value{'s' if least != 1 else ''} at least"
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


def undecodable_bytes(text: str) -> list[str]:
    """The characters of `text` that stand for bytes its decoding could not read (surrogateescape: a non-UTF-8 file
    name under the C locale, U+DC80..U+DCFF): MLflow's URIs and SQLite cannot encode them, stdout writes them back."""
    return [c for c in text if "\udc80" <= c <= "\udcff"]
