"""The on-disk cache of dataset fingerprints: a fingerprint (a content hash of every split) found by the recipe
that made the dataset (its files' paths, sizes and mtimes, and the derivation steps), so that a command with
nothing to do need not read or hash a dataset again. Best effort: a cache that cannot be read or written costs a
recomputation, never an error. Plain data: no datasets here (mlhw.data uses it)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

VERSION = 2  # bump when a loader or a derivation changes what it returns (2: subset)
MAX_ENTRIES = 1000
_memo: dict[tuple[str, str], str] = {}
_read_only = False
_file_memo: dict = {}  # the cache file last parsed: {"stamp": (path, size, mtime_ns), "entries": {...}}


def cache_path() -> Path | None:
    """`$MLHW_CACHE_DIR/fingerprints.json`, else `$XDG_CACHE_HOME/mlhw/` or `~/.cache/mlhw/`; None
    when there is no home folder (then nothing is cached)."""
    base = os.environ.get("MLHW_CACHE_DIR")
    if not base:
        try:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlhw"
        except RuntimeError:
            return None
    return Path(base) / "fingerprints.json"


def key(source: str, steps: tuple) -> str:
    """The cache key of a dataset made from `source` (a files stamp) by `steps` (derivations)."""
    return hashlib.sha256(json.dumps([VERSION, source, steps], default=str).encode()).hexdigest()


def _entries(path: Path) -> dict:
    """The cache file's entries (a copy), parsed once per version of the file."""
    try:
        st = path.stat()
        stamp = (str(path), st.st_size, st.st_mtime_ns)
        if _file_memo.get("stamp") != stamp:
            entries = json.loads(path.read_text()).get("entries")
            _file_memo.update(stamp=stamp, entries=entries if isinstance(entries, dict) else {})
    except (OSError, ValueError, AttributeError):  # absent, unreadable or not ours: start afresh
        return {}
    return dict(_file_memo["entries"])


def _is_fingerprint(value) -> bool:
    return isinstance(value, str) and len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def get(key: str) -> str | None:
    path = cache_path()
    if path is None:
        return None
    if (str(path), key) in _memo:
        return _memo[str(path), key]
    entry = _entries(path).get(key)
    fp = entry.get("fingerprint") if isinstance(entry, dict) else None
    if not _is_fingerprint(fp):
        return None
    _memo[str(path), key] = fp
    return fp


@contextlib.contextmanager
def read_only():
    """Within: fingerprints are remembered in this process only, the file is not written (a dry run writes
    nothing)."""
    global _read_only
    before, _read_only = _read_only, True
    try:
        yield
    finally:
        _read_only = before


def put(key: str, fp: str, source: str) -> None:
    """Best effort: a cache that cannot be written only costs a recomputation next time."""
    path = cache_path()
    if path is None:
        return
    _memo[str(path), key] = fp
    if _read_only:
        return
    try:
        entries = _entries(path)
        entries[key] = {"fingerprint": fp, "source": source, "time": time.time()}
        if len(entries) > MAX_ENTRIES:  # the oldest go first
            keep = sorted(entries, key=lambda k: entries[k].get("time", 0) if isinstance(entries[k], dict) else 0)
            entries = {k: entries[k] for k in keep[-MAX_ENTRIES:]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": VERSION, "entries": entries}))
        os.replace(tmp, path)  # atomic: concurrent writers lose entries at worst, never corrupt the file
    except (OSError, TypeError, ValueError):
        pass
