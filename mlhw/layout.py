"""Where a profile's results live: `results/<profile>/` (a partial report: `results/<profile>-partial/`), holding
`tables/<name>.{md,csv,tex}`, `figures/<name>.png` and `REPORT.md`. `mlhw.report` alone writes there; the
baseline check and the suite parents' artifacts read the same paths through these names."""

from __future__ import annotations

from pathlib import Path

TABLES = "tables"
FIGURES = "figures"
REPORT = "REPORT.md"
TABLE_FORMATS = ("md", "csv", "tex")
PARTIAL_SUFFIX = "-partial"


def profile_folder(results_dir: str | Path, profile: str, partial: bool = False) -> Path:
    """results/<profile>/, or results/<profile>-partial/ for a report of some suites or of overridden runs."""
    return Path(results_dir) / (f"{profile}{PARTIAL_SUFFIX}" if partial else profile)


def table_file(folder: Path, name: str, ext: str = "csv") -> Path:
    return folder / TABLES / f"{name}.{ext}"


def is_partial(folder: Path) -> bool:
    """A -partial folder is one reproduction's output, never a baseline."""
    return folder.name.endswith(PARTIAL_SUFFIX)
