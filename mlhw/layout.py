"""Where a profile's results live: `results/<profile>/` (a partial report: `results/<profile>-partial/`), holding
`tables/<name>.{md,csv,tex}`, `figures/<name>.png` and `REPORT.md`. `mlhw.report` alone writes there; the
baseline check and the suite parents' artifacts read the same paths through these names."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

TABLES = "tables"
FIGURES = "figures"
REPORT = "REPORT.md"
REPORT_HEADING = "# mlhw reproduction: profile `{profile}`"  # REPORT.md's first line (check reads the profile there)
TABLE_FORMATS = ("md", "csv", "tex")
PARTIAL_SUFFIX = "-partial"


def umask() -> int:
    """The process's umask, for the modes of what results/ holds (0644 files, 0755 folders, less it). Read where
    Linux shows it: setting it to read it, as os.umask must, leaves a moment in which another thread's new file (a
    SQLite journal, say) would be made with none."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace").splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


OLD = "mlhw-old"  # `.<profile>.mlhw-old-<process>`: the report a swap moved aside, until the new one is in place
TOKEN = r"([0-9a-f]{8}-\d+-\d+)"  # a lifecycle.process_token in a folder's name, as a regular expression's group


def swapped(folder: Path) -> Path:
    """The folder a report of `folder` is swapped in: where it points if it is a link (results/<profile> on another
    disk, a shared folder; a dangling one too, as a SIGKILL between the swap's renames leaves it), else itself."""
    return folder.resolve() if folder.is_symlink() else folder


def moved_aside(final: Path) -> list[tuple[Path, str]]:
    """The old reports that swaps of `final` moved aside, each with the process_token of the process that did."""
    import re

    pattern = re.compile(rf"\.{re.escape(final.name)}\.{OLD}-{TOKEN}")
    try:
        return [(p, m[1]) for p in sorted(final.parent.iterdir()) if (m := pattern.fullmatch(p.name))]
    except OSError:
        return []


def put_back(final: Path) -> Path | None:
    """Where `final` is missing because a process was killed between its swap's two renames (the old report moved
    aside, the new one not yet in place), put the old report back; returns the folder it was in (None: nothing to
    do). A live process's swap is waited for (it holds the folder's lock between its renames); another machine's or
    boot's is left alone. One that cannot be moved back (a results folder this user cannot write in, a read-only
    mount) is an MLHWError naming both folders and the `mv` that does it: it was a traceback of the rename's OSError,
    which named neither the report nor why it was being moved."""
    from mlhw.errors import MLHWError
    from mlhw.lifecycle import token_gone
    from mlhw.store import folder_lock

    if final.exists() or final.is_symlink() or not moved_aside(final):
        return None
    # taken before looking again: a live swap holds it between its renames, and is waited for (its report then in
    # place), where the missing folder read as no baseline in the milliseconds between them
    with folder_lock(final.parent):
        if final.exists() or final.is_symlink():
            return None
        for path, token in moved_aside(final):
            if not token_gone(token):
                continue
            try:
                path.replace(final)
            except OSError as err:
                import shlex

                raise MLHWError(
                    f"{final}/ is missing: a process killed while it replaced the report left it in {path}/, "
                    f"which cannot be moved back ({err.strerror or err}); `mv {shlex.quote(str(path))} "
                    f"{shlex.quote(str(final))}` puts it back"
                ) from None
            return path
    return None


def profile_folder(results_dir: str | Path, profile: str, partial: bool = False) -> Path:
    """results/<profile>/, or results/<profile>-partial/ for a report of some suites or of overridden runs."""
    return Path(results_dir) / (f"{profile}{PARTIAL_SUFFIX}" if partial else profile)


def table_file(folder: Path, name: str, ext: str = "csv") -> Path:
    return folder / TABLES / f"{name}.{ext}"


def is_partial(folder: Path) -> bool:
    """A -partial folder is one reproduction's output, never a baseline."""
    return folder.name.endswith(PARTIAL_SUFFIX)


def check_writable(results_dir: str | Path, profile: str | None = None) -> None:
    """Before any run exists: the results folder can be created and written (not a file, not read-only), and so
    can the profile's report folders in it (a file of that name would be replaced by the report). A dry run checks
    it too: it passed `--results-dir /proc/x` that the run itself refused; the probe (a folder made and removed
    where the results folder would be made) leaves nothing."""
    from mlhw.errors import path_errors, refuse_empty

    refuse_empty("--results-dir", results_dir, "results")
    with path_errors(f"--results-dir {results_dir}", results_dir):  # (a folder on the way not searchable)
        _check_writable(results_dir, profile)


def _check_writable(results_dir: str | Path, profile: str | None) -> None:
    from mlhw.errors import MLHWError

    root = Path(results_dir)
    for name in [profile, f"{profile}{PARTIAL_SUFFIX}"] if profile else []:
        if (root / name).exists() and not (root / name).is_dir():
            raise MLHWError(f"--results-dir {results_dir}: {root / name} is a file, not a folder (the report's)")
    probe_in = root
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise MLHWError(f"--results-dir {results_dir}: {probe_in} is a file, not a folder")
    try:  # a real write, not a permission check: root passes os.access, and /proc or a full disk say no only here
        shutil.rmtree(tempfile.mkdtemp(dir=probe_in, prefix=".mlhw-probe-"))
    except OSError as err:
        why = err.strerror or err
        if probe_in != root:  # the folder to make, not its nearest existing parent: "cannot write in /proc" for
            # /proc/ro named neither it nor what failed
            raise MLHWError(
                f"--results-dir {results_dir}: {root} cannot be created: no folder can be made in {probe_in} ({why})"
            ) from None
        raise MLHWError(f"--results-dir {results_dir}: cannot write in {root} ({why})") from None
