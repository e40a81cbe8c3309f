"""Oracle tests from a mutation audit of the layer around the numerical core (tables, report, check, plan,
experiments, lifecycle): each pins a number, verdict or text a user sees to a value worked out by hand, where the
rest of the suite let a small wrong change of that code pass."""

import pandas as pd
import pytest

from mlhw import check as C
from mlhw import check_policy as P
from mlhw import tables as T


def test_the_full_runs_reference_accuracy_is_shown_as_a_percentage():
    recs = [
        {"dataset": "mnist", "seed": s, "train_loss": 0.1, "train_acc": 0.9, "test_acc": a}
        for s, a in ((1, 0.90), (2, 0.92))
    ]
    table = T.mlp_full_table(recs, reference=0.9512)
    assert table.display["reference test acc"].tolist() == ["95.12%"]
    assert table.display["test acc"].tolist() == ["91.00% ± 1.41%"]  # std of (90, 92) with n - 1: 1.414


def _cnn_record(variant, optimizer, lr, batchnorm, seed, loss, val, test):
    return {
        "kind": "cnn",
        "variant": variant,
        "optimizer": optimizer,
        "lr": lr,
        "batchnorm": batchnorm,
        "seed": seed,
        "train_loss": loss,
        "val_acc": val,
        "test_acc": test,
    }


def test_cnn_table_names_each_rows_optimizer_rate_and_batchnorm_as_it_ran():
    recs = [
        _cnn_record("sgd-0.005", "sgd", 0.005, True, 0, 1.2, 0.40, 0.41),
        _cnn_record("adam-5e-05-plain", "adam", 5e-5, False, 0, 0.8, 0.55, 0.56),
    ]
    d = T.cnn_table("cnn_optimizers", recs).display
    assert d["optimizer"].tolist() == ["SGD", "Adam"]
    assert d["learning rate"].tolist() == ["0.005", "5e-05"]
    assert d["BN+Dropout"].tolist() == ["yes", "no"]
    assert d["val acc"].tolist() == ["40.00%", "55.00%"] and d["test acc"].tolist() == ["41.00%", "56.00%"]
    assert d["final train loss"].tolist() == ["1.2000", "0.8000"]


def test_svm_table_shows_each_rows_own_errors_objective_and_solver_numbers():
    q1 = {"dataset": "digits", "method": "lp", "objective": 0.0, "train_error": 0.0, "test_error": 0.0325}
    soft = {
        "dataset": "digits",
        "classes": "3vs8",
        "C": 0.1,
        "bias": "free",
        "primal_objective": 1.23456789,
        "dual_objective": 1.2345678,
        "duality_gap": 2.5e-9,
        "support_vectors": 17.0,
        "train_error": 0.0125,
        "test_error": 0.05,
        "liblinear_relative_difference": 3.3e-7,
    }
    d = T.svm_table([q1], [soft]).display
    assert d["train error"].tolist() == ["0.00%", "1.25%"]
    assert d["test error"].tolist() == ["3.25%", "5.00%"]
    assert d["objective"].tolist() == ["0", "1.23457"]
    assert d["dual / gap"].tolist() == ["exact: linear program", "1.23457 / 2.5e-09"]
    assert d["support vectors"].tolist() == ["-", "17"]
    assert d["liblinear rel. diff"].tolist() == ["-", "3.3e-07"]


def test_svm_table_says_why_a_large_q3_row_has_no_dual_rather_than_nan():
    # above DUAL_MAX_SAMPLES the active-set dual is not solved: the run logs no dual, gap or support vectors
    from mlhw.svm import DUAL_MAX_SAMPLES

    base = {"dataset": "mnist", "classes": "3vs8", "C": 1.0, "primal_objective": 2.0, "train_error": 0.01}
    large = base | {"n_train": DUAL_MAX_SAMPLES + 3943, "test_error": 0.02, "liblinear_relative_difference": 1e-7}
    read = base | {"n_train": 500, "test_error": 0.02, "dual_objective": float("nan"), "support_vectors": float("nan")}
    d = T.svm_table([], [large, read]).display
    assert d["dual / gap"].tolist() == [f"not solved: {DUAL_MAX_SAMPLES + 3943:,} samples > {DUAL_MAX_SAMPLES:,}", "-"]
    assert d["support vectors"].tolist() == ["-", "-"]


# --- report: the pieces of REPORT.md ---------------------------------------------------------------------------


def test_a_runs_curves_start_at_the_first_epoch_asked_and_flag_divergence_from_its_epoch_on():
    from mlhw.report import curves

    record = {"history": [{"epoch": e, "train_loss": 1.0 / (e + 1)} for e in range(5)], "diverged_epoch": 3}
    rows = curves(record, first_epoch=1)
    assert [h["epoch"] for h in rows] == [1, 2, 3, 4]
    assert [h.get("diverged", False) for h in rows] == [False, False, True, True]
    assert [h["epoch"] for h in curves(record)] == [0, 1, 2, 3, 4]
    assert not any("diverged" in h for h in curves(record | {"diverged_epoch": None}))


def test_the_missing_runs_sentence_counts_a_run_two_suites_share_once():
    from mlhw.report import Entry, missing_sentence

    shared = [Entry(s, "Adam lr=5e-5", "id-adam", {}) for s in ("cnn_optimizers", "cnn_adam_lr")]
    text = missing_sentence([*shared, Entry("mlp_full", "seed 8", "id-mlp", {})])
    assert text == (
        "**2 planned runs are not finished** and missing from the tables: "
        "Adam lr=5e-5 (cnn_optimizers, cnn_adam_lr), mlp_full seed 8"
    )
    assert missing_sentence(shared).startswith("**1 planned run is not finished**")


def test_runs_trained_together_span_from_the_first_start_to_the_last_end():
    from mlhw.report import group_spans

    records = [  # start / end in ms, as MLflow gives them
        {"together": "g/3", "start": 1_000, "end": 9_000},
        {"together": "g/3", "start": 2_000, "end": 10_500},
        {"together": "g/3", "start": 3_000, "end": 8_000},
        {"together": None, "start": 0, "end": 99_000},
    ]
    assert group_spans(records) == {"g/3": pytest.approx(9.5)}  # 10.5 s - 1.0 s


# --- check: the gate's verdict ---------------------------------------------------------------------------------


def _one_row(value, std=None, n=1):
    return {"mlp_full": pd.DataFrame([{"dataset": "digits", "n": n, "test_acc_mean": value, "test_acc_std": std}])}


def test_a_move_of_exactly_the_tolerance_is_within_it():
    """ok <=> |delta| <= tolerance: numbers exact in binary, so the boundary is the boundary."""
    policy = P.policy_from_dict({"metrics": {"test_acc": {"absolute_floor": 0.25}}})
    res = C.compare(_one_row(0.5), _one_row(0.75), policy)
    [row] = res.rows
    assert row.delta == 0.25 and row.tolerance == 0.25 and row.within is True and row.status == "ok" and res.passed
    past = C.compare(_one_row(0.5), _one_row(0.765625), policy)
    assert not past.passed and past.rows[0].status == "drift"


def test_a_chaotic_row_is_listed_only_when_it_moved_beyond_tolerance():
    policy = P.policy_from_dict({"chaotic": [{"table": "mlp_full", "row": {"dataset": "digits"}, "reason": "noise"}]})
    still = C.compare(_one_row(0.9), _one_row(0.91), policy)
    assert still.passed and [r.status for r in still.rows] == ["chaotic"] and C.table_rows(still) == []
    moved = C.compare(_one_row(0.9), _one_row(0.5), policy)
    assert moved.passed and [x[7] for x in C.table_rows(moved)] == ["chaotic"]


def test_a_baseline_table_with_one_damaged_cell_among_good_ones_is_refused(tmp_path):
    (tmp_path / "tables").mkdir()
    rows = [
        {"lr": 0.1, "n": 3, "test_acc_mean": 0.9, "test_acc_std": 0.01},
        {"lr": 1.0, "n": 3, "test_acc_mean": "0.8x", "test_acc_std": 0.02},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "tables" / "mlp_lr_sweep.csv", index=False)
    with pytest.raises(P.CheckConfigError, match=r"mlp_lr_sweep.csv: lr=1.0, test_acc_mean: '0.8x' is not a number"):
        C.load_baseline(tmp_path)


def test_check_yaml_a_table_metric_entry_wins_over_the_metric_and_a_user_pattern_over_the_defaults():
    p = P.policy_from_dict(
        {
            "metrics": {
                "test_acc": {"absolute_floor": 0.05},
                "mlp_full.test_acc": {"absolute_floor": 0.1},
                "train_*": {"absolute_floor": 0.3},
            }
        }
    )
    assert p.tolerance_for("mlp_full", "test_acc").absolute_floor == 0.1  # listed second, still first to match
    assert p.tolerance_for("mlp_lr_sweep", "test_acc").absolute_floor == 0.05
    assert p.tolerance_for("mlp_full", "train_acc").absolute_floor == 0.3  # the user's pattern, not "*_acc"
    assert p.tolerance_for("mlp_full", "val_acc").absolute_floor == 0.02  # the default "*_acc"


@pytest.mark.parametrize(
    ("data", "culprit"),
    [
        ({"k": float("inf")}, "check.yaml: k: expected a number >= 0 (got "),
        ({"metrics": {"test_acc": {"absolute_floor": float("nan")}}}, "metrics.test_acc.absolute_floor: expected a"),
        (
            {"chaotic": [{"table": "t", "row": {"lr": 1}, "metric": ["x"]}]},
            "check.yaml: chaotic[0].metric: unknown key",
        ),
    ],
)
def test_check_yaml_refuses_a_tolerance_that_is_no_number_and_a_misspelt_chaotic_key(data, culprit):
    with pytest.raises(P.CheckConfigError) as e:
        P.policy_from_dict(data)
    assert culprit in str(e.value)


def test_check_yaml_keys_for_a_known_table_match_its_rows_by_every_key_named():
    df = pd.DataFrame(
        [
            {"dataset": "digits", "lr": 0.1, "n": 1, "test_acc_mean": 0.9, "test_acc_std": None},
            {"dataset": "digits", "lr": 0.5, "n": 1, "test_acc_mean": 0.6, "test_acc_std": None},
        ]
    )
    policy = P.policy_from_dict({"keys": {"mlp_full": ["dataset", "lr"]}})
    assert policy.required_keys("mlp_full") == ["dataset", "lr"]
    res = C.compare({"mlp_full": df}, {"mlp_full": df}, policy)
    assert res.passed and res.skipped_tables == []
    assert sorted(r.row for r in res.rows) == ["dataset=digits, lr=0.1", "dataset=digits, lr=0.5"]


class _Run:
    """An MLflow run as the report reads it: info (run_id, status, start/end ms), data (metrics, tags, params)."""

    def __init__(self, run_id, identity, status, metrics, tags=(), start=1_000, end=3_500):
        from types import SimpleNamespace

        from mlhw.lifecycle import IDENTITY_TAG

        self.info = SimpleNamespace(run_id=run_id, status=status, start_time=start, end_time=end)
        self.data = SimpleNamespace(metrics=dict(metrics), tags={IDENTITY_TAG: identity, **dict(tags)}, params={})


class _Store:
    uri, experiment_name, experiment_id = "sqlite:///nowhere.db", "mlhw", "1"

    def __init__(self, runs, texts=None):
        self.runs, self.texts = runs, texts or {}

    def search(self, query=""):
        return list(self.runs)

    def download_text_if_any(self, run_id, name):
        return self.texts.get((run_id, name))  # none: an mlp run without history.csv, the tables hold without curves

    def download_text(self, run_id, name):
        return self.texts[(run_id, name)]

    def run_url(self, run_id):
        return None


def test_the_report_tables_count_finished_runs_only_and_a_diverged_run_as_diverged():
    from mlhw.report import Entry, Scope, collect

    config = {"kind": "mlp", "dataset": "digits", "lr": 100.0, "epochs": 3}
    entries = [Entry("mlp_lr_sweep", f"seed {s}", f"id{s}", config | {"seed": s}) for s in (1, 2, 3)]
    metrics = {"train/loss": 2.3, "train/acc": 0.1, "test/acc": 0.1}
    store = _Store(
        [
            _Run("r1", "id1", "FINISHED", metrics, {"mlhw.diverged_epoch": "2"}),
            _Run("r2", "id2", "FINISHED", metrics | {"test/acc": 0.2}),
            _Run("r3", "id3", "FAILED", metrics | {"test/acc": 0.9}),  # a crashed run: not in the tables
        ]
    )
    done, missing = collect(Scope("p", entries), store)
    assert [e.identity for e in missing] == ["id3"]
    recs = done["mlp_lr_sweep"]
    assert [r["run_id"] for r in recs] == ["r1", "r2"] and [r["diverged"] for r in recs] == [1.0, 0.0]
    assert recs[0]["seconds"] == 2.5 and recs[0]["diverged_epoch"] == 2
    d = T.mlp_sweep_table(recs).display
    assert d["diverged runs"].tolist() == ["1/2"] and d["test acc"].tolist() == ["15.00% ± 7.07%"]


def _q1(run_id, identity, status="FINISHED", test_error=0.03):
    metrics = {"objective": 0.0, "train/error": 0.0, "test/error": test_error}
    return _Run(run_id, identity, status, metrics)


Q1_CONFIG = {"kind": "svm_multiclass", "dataset": "digits", "method": "lp", "bias": True, "seed": 8}


def test_a_report_with_a_run_missing_is_not_stamped_sound_and_a_stamp_of_a_lost_suite_is_stale(tmp_path):
    """A sound stamp makes the next reproduce of the plan skip the report: one with a run not finished (or of a
    suite the profile no longer has) must be compiled again."""
    import json

    from mlhw.report import STAMP, Entry, Scope, changed_files, write_report

    entries = [Entry("svm_multiclass", "", "q1-a", Q1_CONFIG), Entry("svm_multiclass", "", "q1-b", Q1_CONFIG)]
    whole = _Store([_q1("ra", "q1-a"), _q1("rb", "q1-b")])
    part = _Store([_q1("ra", "q1-a"), _q1("rb", "q1-b", status="FAILED")])
    key = {"svm_multiclass": "suite-k"}
    _, report, _, _ = write_report(Scope("p", entries), part, tmp_path, stamp=key)
    assert "**1 planned run is not finished**" in report.read_text()
    assert "sound" not in json.loads((report.parent / STAMP).read_text())
    assert changed_files(report.parent, key, ["svm_multiclass"]) is None
    _, report, _, _ = write_report(Scope("p", entries), whole, tmp_path, stamp=key)
    assert json.loads((report.parent / STAMP).read_text())["sound"] is True
    assert changed_files(report.parent, key, ["svm_multiclass"]) == []
    assert changed_files(report.parent, key, ["mlp_full"]) is None  # the profile lost the suite


def test_the_report_counts_runs_trained_together_once_in_its_total_time():
    from mlhw.report import Entry, Scope, report_text

    def rec(run_id, start, end, together=None):
        base = {"run_id": run_id, "suite": "svm_multiclass", "label": "", "dataset": "digits", "method": "lp"}
        return base | {"together": together, "start": start, "end": end, "seconds": (end - start) / 1000}

    # r1 and r2 trained together from 1.0 s to 6.0 s (each run's own start..end overlaps the other's)
    done = {"svm_multiclass": [rec("r1", 1_000, 5_000, "g/2"), rec("r2", 1_500, 6_000, "g/2"), rec("r3", 0, 2_000)]}
    entries = [Entry("svm_multiclass", "", f"i{i}", Q1_CONFIG) for i in (1, 2, 3)]
    text = report_text(Scope("p", entries), _Store([]), [], [], done, [], "cpu")
    assert "from 3 runs; total run time 7.0 s" in text  # 2.0 s alone + the pair's 1.0 s .. 6.0 s span, once
    assert "| svm_multiclass | exact: linear program | 5.0 (one computation with 1 other) | `r1` |" in text
    assert "| svm_multiclass | exact: linear program | 2.0 | `r3` |" in text


def test_the_report_says_the_cpu_threads_its_runs_trained_on():
    """On a CPU an AlexNet run's numbers move with torch's thread count (--jobs N gives each worker its share): the
    Environment section counts the runs by the threads their tag mlhw.cpu_threads records; no line where none does
    (runs of a GPU, the SVMs, an older store)."""
    from mlhw.report import Entry, Scope, report_text

    def rec(run_id, threads):
        base = {"run_id": run_id, "suite": "svm_multiclass", "label": "", "dataset": "digits", "method": "lp"}
        return base | {"together": None, "start": 0, "end": 1_000, "seconds": 1.0, "cpu_threads": threads}

    entries = [Entry("svm_multiclass", "", f"i{i}", Q1_CONFIG) for i in (1, 2, 3, 4)]
    done = {"svm_multiclass": [rec("r1", "1"), rec("r2", "2"), rec("r3", "1"), rec("r4", None)]}
    text = report_text(Scope("p", entries), _Store([]), [], [], done, [], "cpu")
    [line] = [x for x in text.splitlines() if x.startswith("- CPU threads")]
    assert "on the CPU: 1 (2 runs), 2 (1 run) (tag `mlhw.cpu_threads`" in line
    # a Ray reproduction's runs say 1 whatever the node's cores: the line named --jobs N's share alone
    assert "`--executor ray` each task one" in line
    done = {"svm_multiclass": [rec("r1", None), rec("r2", None)]}
    assert "CPU threads" not in report_text(Scope("p", entries[:2]), _Store([]), [], [], done, [], "cpu")
    # read from the run's tag
    from mlhw.report import collect

    store = _Store([_Run("ra", "i1", "FINISHED", {"objective": 0.0}, {"mlhw.cpu_threads": "3"})])
    done, _ = collect(Scope("p", entries[:1]), store)
    assert done["svm_multiclass"][0]["cpu_threads"] == "3"


def test_a_table_title_names_its_dataset_but_the_svm_tables_rows_say_it_themselves():
    from mlhw.report import build_tables

    mlp = [
        {"kind": "mlp", "dataset": "digits", "seed": s, "train_loss": 0.2, "train_acc": 0.9, "test_acc": 0.9}
        for s in (1, 2)
    ]
    q1 = [{"dataset": "digits", "method": "lp", "objective": 0.0, "train_error": 0.0, "test_error": 0.03}]
    titles = [t.title for t in build_tables({"mlp_full": mlp, "svm_multiclass": q1}, _Store([]))]
    assert titles == ["Part 1 (c): the full run on digits", "SVM: Q1 and Q3"]


def test_mlhw_tables_reads_the_newest_full_reproduction_not_a_partial_one():
    import json

    from mlhw.report import scope_from_store

    def parent(run_id, partial, start):
        tags = {"mlhw.kind": "suite", "mlhw.suite": "svm_multiclass", "mlhw.profile": "p"}
        tags |= {"mlhw.partial": "true"} if partial else {}
        return _Run(run_id, "", "FINISHED", {}, tags, start=start)

    def plan(identity):
        return json.dumps([{"suite": "svm_multiclass", "label": "", "identity": identity, "config": Q1_CONFIG}])

    store = _Store(  # newest first, as MLflow's search gives them
        [parent("set", True, 2_000), parent("full", False, 1_000)],
        {("set", "plan.json"): plan("with-set"), ("full", "plan.json"): plan("as-the-profile-says")},
    )
    scope = scope_from_store(store, "p")
    assert [e.identity for e in scope.entries] == ["as-the-profile-says"] and not scope.partial


# --- plan: what a reproduction runs and reports -----------------------------------------------------------------


def _spec(suite, config, label="", part="b"):
    from mlhw.experiments import RunSpec

    return RunSpec(suite, config.kind, part, config, label)


def test_only_makes_a_partial_report_while_another_suite_is_not_done_or_a_set_changed_the_runs():
    from mlhw.config import KINDS
    from mlhw.plan import Plan, Planned

    cfg = KINDS["svm_multiclass"](dataset="digits")
    rest = [Planned(_spec("theory", cfg), "t", "done"), Planned(_spec("cnn_optimizers", cfg), "c", "no data")]
    plan = Plan("p", [], only=["svm_multiclass"], rest=rest)
    assert plan.rest_missing == [] and plan.report_only == []  # CIFAR-10 absent and never reported: excused
    plan.reported = {"cnn_optimizers"}  # results/p/ has its table: a report without it would drop it
    assert plan.rest_missing == ["cnn_optimizers"] and plan.report_only == ["svm_multiclass"]
    overridden = Plan("p", [], overrides=["lr=0.5"], only=["svm_multiclass"], rest=rest[:1])
    assert overridden.rest_missing == [] and overridden.report_only == ["svm_multiclass"]


def test_a_run_tagged_again_names_each_suite_it_serves_once():
    from mlhw.config import KINDS
    from mlhw.plan import Plan, Planned, member_tags

    cfg = KINDS["svm_multiclass"](dataset="digits")
    entries = [Planned(_spec(s, cfg, part=pt), "same", "done") for s, pt in (("a", "2a"), ("b", "2b"))]
    before = {"mlhw.suites": "a,old", "mlhw.parts": "2a", "mlhw.profile": "q", "mlhw.suite": "old", "mlhw.part": "x"}
    tags = member_tags(Plan("p", entries), entries[0], before)
    assert tags == {
        "mlhw.profile": "q",
        "mlhw.suite": "old",
        "mlhw.suites": "a,old,b",
        "mlhw.part": "x",
        "mlhw.parts": "2a,2b",
    }


def test_mlp_runs_that_differ_in_seed_and_rate_train_as_one_unit_other_kinds_alone():
    from mlhw.config import KINDS
    from mlhw.plan import Plan, Planned, units

    mlp = [KINDS["mlp"](dataset="digits", lr=lr, seed=s) for lr, s in ((0.1, 1), (0.5, 2), (0.1, 3))]
    other = KINDS["mlp"](dataset="digits", lr=0.1, seed=1, epochs=5)  # another network: another unit
    svm = [KINDS["svm_multiclass"](dataset="digits", seed=s) for s in (1, 2)]
    entries = [Planned(_spec("mlp_lr_sweep", c, f"r{i}"), f"m{i}") for i, c in enumerate([*mlp, other])]
    entries += [Planned(_spec("svm_multiclass", c, f"s{i}"), f"s{i}") for i, c in enumerate(svm)]
    sizes = [[j.identity for j in u] for u in units(Plan("p", entries), {})]
    assert sizes == [["m0", "m1", "m2"], ["m3"], ["s0"], ["s1"]]


def test_a_suites_key_is_its_set_of_runs_whatever_their_order():
    """A suite's parent run and the report's stamp are keyed by the runs the suite holds, not by the order they
    are listed in: a grid reordered in experiments.yaml (lr [1, 0.1] for [0.1, 1]) is the same suite, and the
    report's scope, which lists the runs in the store's order, must stamp the key the plan computes. A run more or
    less is another suite."""
    from types import SimpleNamespace

    from mlhw.config import KINDS
    from mlhw.plan import Plan, Planned, stamp_keys

    cfgs = [KINDS["mlp"](dataset="digits", lr=lr) for lr in (0.1, 1.0, 10.0)]
    entries = [Planned(_spec("mlp_lr_sweep", c, f"r{i}"), f"id{i}") for i, c in enumerate(cfgs)]
    plan, reordered = Plan("p", entries), Plan("p", entries[::-1])
    assert plan.suite_identity("mlp_lr_sweep") == reordered.suite_identity("mlp_lr_sweep")
    assert Plan("p", entries[:2]).suite_identity("mlp_lr_sweep") != plan.suite_identity("mlp_lr_sweep")
    scope = SimpleNamespace(
        profile="p",
        overrides=[],
        entries=[SimpleNamespace(suite="mlp_lr_sweep", identity=e.identity) for e in entries[::-1]],
        suites=lambda: ["mlp_lr_sweep"],
    )
    assert stamp_keys(scope) == plan.suite_keys()


def test_a_suites_key_is_another_for_another_profile_or_other_overrides():
    """The key of a suite (its parent run's identity, the report's stamp) is its profile, name, runs and overrides: the
    same runs reproduced under another profile, or with a --set that leaves the runs as they are (a value equal to the
    default), are another reproduction, whose parent run and report are not this one's."""
    from mlhw.plan import suite_key

    ids = ["id0", "id1"]
    key = suite_key("p", "mlp_lr_sweep", ids, [])
    assert suite_key("p", "mlp_lr_sweep", ids[::-1], []) == key
    others = [
        suite_key("q", "mlp_lr_sweep", ids, []),
        suite_key("p", "mlp_full", ids, []),
        suite_key("p", "mlp_lr_sweep", ids[:1], []),
        suite_key("p", "mlp_lr_sweep", ids, ["lr=0.1"]),
    ]
    assert len({key, *others}) == 5
