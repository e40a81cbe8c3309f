"""`mlhw` with a timeline of the parent's phases on stderr: `python3 benchmarks/timeline.py reproduce ...`.

Each line: "[timeline] +S.SS s (unix T) PHASE begin|end", S from this process's start, T to set beside MLflow's
run start times (benchmarks/gpu_paper.sh prints them as phases).
"""

from __future__ import annotations

import functools
import sys
import time

T0 = time.perf_counter()


def mark(what: str) -> None:
    print(f"[timeline] +{time.perf_counter() - T0:6.2f} s (unix {time.time():.2f}) {what}", file=sys.stderr, flush=True)


def wrap(mod, name: str) -> None:
    fn = getattr(mod, name)

    @functools.wraps(fn)
    def timed(*a, **kw):
        mark(f"{name} begin")
        try:
            return fn(*a, **kw)
        finally:
            mark(f"{name} end")

    setattr(mod, name, timed)


if __name__ == "__main__":  # spawned workers import this file as __mp_main__: they must not run the command
    import mlhw.cli.reproduce as reproduce

    mark("imports of typer, rich and mlhw's CLI done")
    for phase in ("validate", "_suite_parents", "_execute", "_compile"):  # validate: as reproduce imports it
        wrap(reproduce, phase)
    from mlhw.cli import main

    sys.argv = ["mlhw", *sys.argv[1:]]
    try:
        main()  # the entry point's own way out (mlhw.processes.end_now), as an installed `mlhw` ends
    finally:
        mark("exit")
