"""Several seeds trained as one batched computation (mlp.train_mlp_groups) are their separate runs, and
run_mlp logs every job of a unit of several seeds and rates as its own MLflow run."""

import numpy as np
import pytest
import torch
from helpers import pattern_digits

from mlhw import mlp
from mlhw.config import MLPConfig
from mlhw.data import Dataset, subset

SEEDS, LRS = [5, 11, 23], [0.1, 0.7]
KEYS = ("train_loss", "train_acc", "test_acc")


def make_pool() -> Dataset:
    """123 training images (12 batches of 10 and a partial one of 3) and 80 test images of
    helpers.pattern_digits. Each seed's subset of 53 (5 batches and a partial one of 3) and 40 differs."""
    return pattern_digits(123, 80)


@pytest.fixture(scope="module")
def pool() -> Dataset:
    return make_pool()


def seed_data(pool, shared: bool) -> tuple[MLPConfig, list[Dataset]]:
    """Per-seed subsets (what DataSource.for_config gives with train_size/test_size), or the whole pool,
    one object every seed shares (what it gives without)."""
    if shared:
        return MLPConfig(epochs=3, dtype="float64"), [pool] * len(SEEDS)
    cfg = MLPConfig(epochs=3, dtype="float64", train_size=53, test_size=40)
    return cfg, [subset(pool, 53, 40, s) for s in SEEDS]


@pytest.mark.parametrize("shared", [False, True], ids=["per-seed subsets", "shared data"])
@pytest.mark.parametrize("graph_steps", [500, 2], ids=["one chunk", "chunks and a tail"])
def test_seeds_trained_together_equal_their_separate_runs(pool, mlp_networks, shared, graph_steps):
    """3 seeds x 2 rates in one computation (float64, CPU) against 3 one-seed train_mlp runs: every
    history value within 1e-12 (measured: <= 2e-13; the two differ in matmul shapes only) and the final
    weights within 1e-12. graph_steps=2 gathers 20 rows per group at a time: the 53-row subsets are two
    chunks and a tail of 13 (a full batch and a partial one of 3), the shared 123 rows six chunks and a
    tail of 3. The seeds' own curves differ from each other by > 1e-3 (a mixed-up order or init shows)."""
    cfg, datas = seed_data(pool, shared)
    together = mlp.train_mlp_groups(cfg, datas, SEEDS, LRS, graph_steps=graph_steps)
    grouped = mlp_networks.pop()
    assert grouped.groups == len(SEEDS) and grouped.replicas == len(SEEDS) * len(LRS)
    assert [[(r.seed, r.lr) for r in per] for per in together] == [[(s, lr) for lr in LRS] for s in SEEDS]
    for g, (seed, data) in enumerate(zip(SEEDS, datas)):
        alone = mlp.train_mlp(cfg.model_copy(update={"seed": seed}), data, LRS)
        net = mlp_networks.pop()
        for r, (a, b) in enumerate(zip(together[g], alone)):
            assert a.diverged_epoch == b.diverged_epoch and len(a.history) == len(b.history) == cfg.epochs + 1
            for got, want in zip(a.history, b.history):
                assert got["epoch"] == want["epoch"]
                for key in KEYS:
                    assert abs(got[key] - want[key]) <= 1e-12, (seed, a.lr, got["epoch"], key, got[key], want[key])
            for p_group, p_alone in zip(grouped.params, net.params):
                torch.testing.assert_close(p_group[g * len(LRS) + r], p_alone[r], rtol=0, atol=1e-12)
    finals = [per[0].final["train_loss"] for per in together]
    assert min(abs(a - b) for i, a in enumerate(finals) for b in finals[i + 1 :]) > 1e-3


def test_one_group_is_the_wide_matmul_path_of_before(pool, monkeypatch):
    """One seed takes the pre-grouping path: every forward gets 2-D rows (the first layer one addmm over the
    replicas). Its numbers are checked against the NumPy skeleton in tests/test_oracles.py."""
    dims = []
    forward = mlp.Network.forward
    monkeypatch.setattr(mlp.Network, "forward", lambda self, x: dims.append(x.dim()) or forward(self, x))
    cfg = MLPConfig(epochs=3, seed=5, dtype="float64", train_size=53, test_size=40)
    results = mlp.train_mlp(cfg, subset(pool, 53, 40, 5), LRS)
    assert dims and set(dims) == {2} and [r.lr for r in results] == list(LRS)


def test_divergence_is_recorded_per_seed_and_rate(pool):
    cfg, datas = seed_data(pool, shared=False)
    together = mlp.train_mlp_groups(cfg, datas[:2], SEEDS[:2], [0.1, 1e30])
    for per, seed, data in zip(together, SEEDS, datas):
        alone = mlp.train_mlp(cfg.model_copy(update={"seed": seed}), data, [0.1, 1e30])
        assert [r.diverged_epoch for r in per] == [r.diverged_epoch for r in alone] == [None, 1]


def test_on_epoch_gets_a_row_per_seed_and_rate(pool):
    cfg, datas = seed_data(pool, shared=False)
    seen = []
    together = mlp.train_mlp_groups(cfg, datas, SEEDS, LRS, on_epoch=lambda epoch, rows: seen.append((epoch, rows)))
    assert [e for e, _ in seen] == list(range(cfg.epochs + 1))
    for epoch, rows in seen:
        assert [[row for row in per] for per in rows] == [[r.history[epoch] for r in per] for per in together]


def test_seeds_must_train_in_lockstep(pool):
    cfg = MLPConfig(epochs=1, dtype="float64")
    with pytest.raises(ValueError, match="differ in size"):
        mlp.train_mlp_groups(cfg, [subset(pool, 53, 40, 1), subset(pool, 50, 40, 2)], [1, 2])
    with pytest.raises(ValueError, match="one dataset per seed"):
        mlp.train_mlp_groups(cfg, [pool], [1, 2])


def test_a_unit_of_seeds_and_rates_logs_each_job_as_its_own_run(workdir):
    """run_unit on 2 seeds x 2 rates (per-seed subsets of digits, float64) whose (seed 9, lr 1e30) run is
    FINISHED already: 3 new runs, each with its own identity, params, dataset tags, per-epoch metrics
    equal to a one-seed train_mlp of its config (1e-12), history.csv and diverged tag; the finished
    one is trained (the batch stays rectangular) but not logged again."""
    from helpers import runs_of

    from mlhw.claims import claimer
    from mlhw.lifecycle import IDENTITY_TAG, tracked_run
    from mlhw.runs import DataSource, Job, run_unit
    from mlhw.store import Store

    uri = f"sqlite:///{workdir}/mlflow.db"
    store, source = Store(uri, "groups"), DataSource()
    base = MLPConfig(epochs=2, train_size=200, test_size=50, dtype="float64")
    configs = [base.model_copy(update={"seed": s, "lr": lr}) for s in (8, 9) for lr in (0.1, 1e30)]
    jobs = [Job(c, source.identity(c), f"seed={c.seed} lr={c.lr:g}", {"mlhw.suite": "t"}) for c in configs]
    assert len({j.identity for j in jobs}) == 4
    with tracked_run(store, "earlier", tags={IDENTITY_TAG: jobs[3].identity}, claim=claimer()):
        pass
    seen = []
    done = run_unit(jobs, store, source, "cpu", claimer(), on_epoch=lambda epoch, row: seen.append((epoch, row)))

    assert [d.job for d in done] == jobs[:3]
    assert seen == [(e, done[0].result.history[e]) for e in range(base.epochs + 1)]
    client, runs = runs_of(uri, "groups")
    by_identity = {}
    for run in runs:
        by_identity.setdefault(run.data.tags[IDENTITY_TAG], []).append(run)
    assert sorted(map(len, by_identity.values())) == [1, 1, 1, 1]
    assert by_identity[jobs[3].identity][0].info.run_name == "earlier"
    for d in done:
        cfg, run = d.job.config, client.get_run(d.run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == d.job.name
        assert run.data.tags[IDENTITY_TAG] == d.job.identity
        assert run.data.params == {k: str(v) for k, v in cfg.to_params().items()}
        data = source.for_config(cfg)
        assert run.data.tags["mlhw.dataset_fingerprint"] == data.fingerprint()
        (alone,) = mlp.train_mlp(cfg, data)
        assert d.result.seed == cfg.seed and d.result.lr == cfg.lr
        assert (
            run.data.tags.get("mlhw.diverged_epoch")
            == (None if cfg.lr < 1 else "1")
            == (None if alone.diverged_epoch is None else str(alone.diverged_epoch))
        )
        for key, name in (("train_loss", "train/loss"), ("train_acc", "train/acc"), ("test_acc", "test/acc")):
            logged = sorted((m.step, m.value) for m in client.get_metric_history(d.run_id, name))
            assert [s for s, _ in logged] == list(range(1, base.epochs + 1))  # epoch 0 is init/<key>, its own chart
            logged.insert(0, (0, run.data.metrics[f"init/{key}"]))
            np.testing.assert_allclose(
                [v for _, v in logged], [h[key] for h in alone.history], rtol=0, atol=1e-12, equal_nan=True
            )
        assert "history.csv" in {a.path for a in client.list_artifacts(d.run_id)}
    assert done[0].run_id != done[2].run_id and done[0].result.history != done[2].result.history
