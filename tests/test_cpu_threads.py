"""The CPU threads a run trained with, said on the run (tag mlhw.cpu_threads).

On a CPU torch splits a matmul's or a convolution's sums by its thread count: the same AlexNet run (seed, config,
code, data and precision alike) came out otherwise from `reproduce --jobs 1` (the process's 2 threads) than from
`--jobs 2` or `auto` (a worker's 1 thread), in fp32 as in bf16: the ci profile's SGD run 0.152 vs 0.158 test
accuracy, the digits profile's Adam 5e-5 seed 0 0.980 vs 0.978 after 10 epochs. Nothing on the run said which."""

import pytest
import torch
import yaml
from helpers import invoke, runs_of

from mlhw.executors import worker_threads


@pytest.fixture
def threads():
    """Set torch's thread count for the test (the CliRunner runs the command in this process), then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("n", [1, 2])
def test_single_commands_tag_the_threads_they_trained_with(workdir, threads, n):
    threads(n)
    uri = f"sqlite:///{workdir}/mlflow.db"
    mlp = ["mlp", "train", "--epochs", 1, "--train-size", 100, "--test-size", 50, "--device", "cpu"]
    cnn = ["cnn", "train", "--width", "0.125", "--epochs", "1", "--precision", "fp32", "--device", "cpu"]
    for args in (mlp, cnn, ["svm", "soft", "--classes", "3,8", "--C", "1"]):
        res = invoke(*args, "--tracking-uri", uri)
        assert res.exit_code == 0, res.output
    _, runs = runs_of(uri)
    tags = {r.data.tags["mlhw.kind"]: r.data.tags.get("mlhw.cpu_threads") for r in runs}
    assert tags == {"mlp": str(n), "cnn": str(n), "svm_soft": None}  # the SVMs' numbers do not depend on them


EXP = {
    "version": 1,
    "suites": {  # two MLP units (the epochs differ): --jobs 2 starts two workers
        "a": {"kind": "mlp", "part": "mlp.b", "base": {"epochs": 1, "train_size": 100, "test_size": 50}},
        "b": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2, "train_size": 100, "test_size": 50}},
    },
    "profiles": {"tiny": {"defaults": {"dataset": "digits"}}},
}


@pytest.mark.parametrize("jobs", [1, 2])
def test_reproduce_tags_a_workers_share_of_the_threads(workdir, threads, jobs):
    threads(2)
    (workdir / "exp.yaml").write_text(yaml.safe_dump(EXP))
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke(
        "reproduce", "--file", workdir / "exp.yaml", "--profile", "tiny", "--jobs", jobs, "--tracking-uri", uri
    )
    assert res.exit_code == 0, res.output
    _, runs = runs_of(uri)
    tags = [r.data.tags.get("mlhw.cpu_threads") for r in runs if r.data.tags["mlhw.kind"] == "mlp"]
    assert tags == [str(2 if jobs == 1 else worker_threads(2))] * 2


def test_a_run_trained_on_a_gpu_has_no_cpu_threads_tag(threads):
    """The tag tells CPU-trained runs apart (the report counts the runs 'on the CPU' by it); a GPU run's numbers do
    not depend on torch's CPU threads, and a tag on it would count it among the CPU's."""
    from mlhw.config import KINDS
    from mlhw.runs import Job, run_tags

    threads(2)
    for kind in ("mlp", "cnn"):
        job = Job(config=KINDS[kind](), identity="x", name="x")
        assert run_tags(job, None, "cpu").get("mlhw.cpu_threads") == "2", kind
        for gpu in ("cuda", "cuda:1", "mps"):
            assert "mlhw.cpu_threads" not in run_tags(job, None, gpu), (kind, gpu)
