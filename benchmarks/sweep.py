"""Sweep benchmark: the digits profile with --jobs 1, --jobs 2 and --executor ray, one machine, one run.

Starts a local `mlflow server` (SQLite backend) on a free port, then runs `mlhw reproduce` once per
executor, each into its own experiment (so each executes the whole profile), and prints wall time,
runs executed and overhead per run against --jobs 1. On this project's 2-core machines the workers
compete for the same two cores: the numbers measure overhead, not scaling.

    uv run python benchmarks/sweep.py [--profile digits] [--only SUITE ...]
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

from mlhw.tracking import local_server

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="digits")
    ap.add_argument("--only", action="append", default=[])
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, local_server(tmp) as uri:
        for name, extra in [
            ("--jobs 1", ["--jobs", "1"]),
            ("--jobs 2", ["--jobs", "2"]),
            ("--executor ray", ["--executor", "ray"]),
        ]:
            cmd = [
                sys.executable,
                "-m",
                "mlhw",
                "reproduce",
                "--profile",
                args.profile,
                "--file",
                str(REPO / "experiments.yaml"),
                "--tracking-uri",
                uri,
                "--experiment",
                name.replace(" ", "").replace("-", ""),
                "--results-dir",
                str(Path(tmp) / "results"),
                *extra,
            ]
            for suite in args.only:
                cmd += ["--only", suite]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            ran = re.search(r"ran (\d+) runs in ([\d.]+) s", done.stderr)
            if done.returncode != 0 or not ran:
                print(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
                continue
            results[name] = (wall, int(ran.group(1)), float(ran.group(2)))
    base = results.get("--jobs 1")
    print(f"profile {args.profile} on {os.cpu_count()} cores, a local mlflow server (SQLite)")
    print(f"{'executor':<16}{'wall s':>8}{'runs':>6}{'execute s':>11}{'s/run':>8}{'vs jobs 1':>11}")
    for name, (wall, runs, execute) in results.items():
        ratio = f"{wall / base[0]:.2f}x" if base else "-"
        print(f"{name:<16}{wall:>8.1f}{runs:>6}{execute:>11.1f}{execute / max(runs, 1):>8.2f}{ratio:>11}")
    if base:
        for name, (_wall, runs, execute) in results.items():
            if name != "--jobs 1":
                print(f"{name}: overhead per run vs --jobs 1: {(execute - base[2]) / max(runs, 1):+.2f} s")


if __name__ == "__main__":
    main()
