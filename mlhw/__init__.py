import os

__version__ = "0.1.0"

# torch's CPU kernels run on OpenMP threads (libgomp in the PyPI wheels), which by default spin for a while
# before they sleep. Where other processes hold the cores (CI, a test suite's workers, a second job) the spinning
# threads take the turns of the thread with work: Part 1's batched seeds ran 3-10x slower beside busy processes on
# 2 cores (benchmarks/omp_wait.py). PASSIVE lets a waiting thread sleep at once, at 0.03 s an epoch on an idle
# machine for that workload (the only one concerned). libgomp reads it when torch loads it, so it is set here, before
# any mlhw module imports torch; a policy in the environment is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
