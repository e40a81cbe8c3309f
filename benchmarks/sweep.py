"""Sweep benchmark: the digits profile with --jobs 1 and --jobs 2 on a SQLite store (the default: the
workers write through the parent's relay) and on a local `mlflow server`, and --executor ray, one machine.

Each row runs `mlhw reproduce` into a store or experiment of its own (so each executes the whole profile)
and prints wall time, runs executed and seconds per run against --jobs 1 on SQLite, measured in the same
invocation. On this project's 2-core machines the workers compete for the same two cores. Ray is the
optional extra: without it (`uv sync --extra ray`) its row says so.

    uv run python benchmarks/sweep.py [--profile digits] [--only SUITE ...] [--no-server]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers import local_server  # noqa: E402 - the test suite's real `mlflow server` on a free port


def reproduce(profile: str, only: list[str], uri: str, experiment: str, tmp: str, extra: list[str]):
    """One `mlhw reproduce` in a fresh process: (wall s, runs executed, execute s), or None with its error."""
    cmd = [sys.executable, "-m", "mlhw", "reproduce", "--profile", profile, "--file", str(REPO / "experiments.yaml")]
    cmd += ["--tracking-uri", uri, "--experiment", experiment, "--results-dir", str(Path(tmp) / experiment), *extra]
    for suite in only:
        cmd += ["--only", suite]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ran = re.search(r"ran (\d+) of \d+ runs in ([\d.]+) s", done.stderr)
    if done.returncode != 0 or not ran:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        print(f"  {experiment}: exit {done.returncode}: {tail[0][:200]}", flush=True)
        return None
    return wall, int(ran.group(1)), float(ran.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="digits")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--no-server", action="store_true", help="only the SQLite rows (no mlflow server, no Ray)")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, jobs in (("sqlite --jobs 1", "1"), ("sqlite --jobs 2", "2")):
            uri = f"sqlite:///{tmp}/{name.split()[-1]}.db"  # a database each: the rows share no runs
            rows[name] = reproduce(args.profile, args.only, uri, "mlhw", tmp, ["--jobs", jobs])
            print(f"  {name}: {rows[name]}", flush=True)
        if not args.no_server:
            with local_server(Path(tmp) / "server") as uri:
                for name, extra in (
                    ("server --jobs 1", ["--jobs", "1"]),
                    ("server --jobs 2", ["--jobs", "2"]),
                    ("server ray", ["--executor", "ray"]),
                ):
                    experiment = name.replace(" ", "").replace("-", "")
                    rows[name] = reproduce(args.profile, args.only, uri, experiment, tmp, extra)
                    print(f"  {name}: {rows[name]}", flush=True)
    base = rows.get("sqlite --jobs 1")
    print(f"profile {args.profile} on {os.cpu_count()} cores; every row a fresh store, measured in this run")
    print(f"{'store, executor':<18}{'wall s':>8}{'runs':>6}{'execute s':>11}{'s/run':>8}{'vs sqlite --jobs 1':>20}")
    for name, row in rows.items():
        if row is None:
            print(f"{name:<18}{'failed (see above)':>33}")
            continue
        wall, runs, execute = row
        ratio = f"{wall / base[0]:.2f}x" if base else "-"
        print(f"{name:<18}{wall:>8.1f}{runs:>6}{execute:>11.1f}{execute / max(runs, 1):>8.2f}{ratio:>20}")


if __name__ == "__main__":
    main()
