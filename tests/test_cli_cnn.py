"""`mlhw cnn` through the CLI; runs read back from MLflow."""

import json
from pathlib import Path

import pytest
from helpers import assert_nothing_created, assert_one_line_error, invoke, runs_of, write_cifar_batches

from mlhw.labels import variant_title

SMALL = ["--width", "0.125", "--epochs", "1", "--precision", "fp32"]


def test_train_one_variant(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--epochs", 2, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    client, (run,) = runs_of(uri)
    assert run.info.status == "FINISHED" and rec["run_id"] == run.info.run_id
    assert run.data.params["optimizer"] == "adam" and run.data.params["image_size"] == "67"
    assert run.data.params["train_fraction"] == "1.0" and run.data.params["width"] == "0.125"  # digits preset
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")] == [1, 2]
    assert run.data.metrics["test/acc"] == pytest.approx(rec["test_acc"])
    assert {"train/loss", "val/acc", "test/acc", "test/loss", "system/epoch_seconds"} <= set(run.data.metrics)
    # measured once, at step 0 (MLflow's UI draws one value there as a bar; at the last epoch's step, one dot)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test/acc")] == [0]
    assert run.data.tags["mlhw.dataset"] == "digits" and run.data.tags["mlhw.kind"] == "cnn"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"history.csv"}
    assert not (workdir / "results").exists()


def test_sgd_without_a_rate_trains_at_the_assignments_sgd_rate(workdir, monkeypatch):
    """`cnn train --optimizer sgd` took Adam's 5e-5 (an SGD run that barely moves); it is Part 2 (a)'s 0.005."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--optimizer", "sgd", "--train-fraction", "0.1", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    _, (run,) = runs_of(uri)
    assert (run.data.params["optimizer"], float(run.data.params["lr"])) == ("sgd", 0.005)
    assert "SGD lr=0.005" in run.info.run_name
    assert "one step an epoch" not in res.stdout  # batch 64 of 117 images
    monkeypatch.setenv("COLUMNS", "200")  # --help's default on one line
    assert "[default: (0.005 for sgd, 5e-05 for adam)]" in invoke("cnn", "train", "--help").output


def test_a_batch_as_large_as_the_training_split_is_said(workdir):
    """As `mlp train` says it: legal full-batch training, but a typo's look-alike."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--train-fraction", "0.1", "--batch-size", "117", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "train 117 / val 130 / test 500, the whole training split in each batch: one step an epoch, " in res.stdout
    assert res.stdout.count("batch 117") == 1, res.stdout  # the title names it; the line said it twice


def test_compare_titles_a_part_one_way_on_the_console_and_in_its_figure(workdir, monkeypatch):
    """The console's table said 'Part 2 (a): SGD vs Adam on digits, 1 epoch', its figure 'Part 2 (a) SGD vs Adam on
    digits, seed 0': one run, two titles."""
    from mlhw import plots

    drawn = []
    real = plots.cnn_curves_figure
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda s, f, t: drawn.append(t) or real(s, f, t))
    res = invoke("cnn", "compare", "--part", "a", *SMALL, "--tracking-uri", f"sqlite:///{workdir}/mlflow.db")
    assert res.exit_code == 0, res.output
    title = "Part 2 (a): SGD vs Adam on digits, width 0.125, 1 epoch, seed 0"  # SMALL's width: not the preset's
    assert drawn == [title] and title in res.stdout, (drawn, res.stdout)


def test_compare_titles_name_every_setting_other_than_the_presets(workdir, monkeypatch):
    """`cnn compare --batch-size 32 --width 0.125` was titled 'on digits, 1 epoch, seed 0', as the default comparison
    is: its table and figure hid the batch and the model it ran; and its runs shared the default's names."""
    from mlhw import plots

    drawn = []
    real = plots.cnn_curves_figure
    monkeypatch.setattr(plots, "cnn_curves_figure", lambda s, f, t: drawn.append(t) or real(s, f, t))
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "a", *SMALL, "--batch-size", "32", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    title = "Part 2 (a): SGD vs Adam on digits, width 0.125, batch 32, 1 epoch, seed 0"
    assert drawn == [title] and title in res.stdout, (drawn, res.stdout)
    _, runs = runs_of(uri)
    assert len(runs) == 3 and all("width 0.125, batch 32, 1 epoch)" in r.info.run_name for r in runs), [
        r.info.run_name for r in runs
    ]


def test_compare_sets_the_write_ups_numbers_beside_its_own_setting_only():
    """REPORT.md sets the write-up's numbers beside runs at its setting (official CIFAR-10, 10 epochs, batch 64, the
    paper model on 10% of the pool); `cnn compare`, the README's 'paper setting', never did, even there."""
    from mlhw.cli.cnn import reference_gap
    from mlhw.config import CNNConfig
    from mlhw.data import NOT_OFFICIAL, OFFICIAL

    assert reference_gap(CNNConfig(dataset="cifar10"), OFFICIAL) == []
    assert reference_gap(CNNConfig(dataset="cifar10"), NOT_OFFICIAL)  # synthetic files: never
    assert reference_gap(CNNConfig(dataset="cifar10", epochs=2), OFFICIAL) == ["epochs=2 (the assignment's: 10)"]
    assert reference_gap(CNNConfig(dataset="cifar10", batch_size=32), OFFICIAL)
    assert reference_gap(CNNConfig(), "embedded")  # digits


def test_compare_at_the_write_ups_setting_shows_its_numbers_and_says_what_they_are(workdir, monkeypatch):
    """The paper setting needs official CIFAR-10 and a GPU: here digits stands in for it (the gate said 'at it')."""
    from mlhw.cli import cnn

    monkeypatch.setattr(cnn, "reference_gap", lambda cfg, files: [])
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "a", *SMALL, "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert "1.1383 / 48.70% / 49.91%" in res.stdout and "0.6086 / 61.89% / 62.49%" in res.stdout, res.stdout
    assert "normalised with ImageNet's statistics" in res.stdout  # the write-up's test accuracies' caveat
    client, runs = runs_of(uri)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "cnn-compare"][0]
    csv = client.download_artifacts(parent.info.run_id, "tables/sgd_vs_adam.csv", str(workdir / "dl"))
    assert "reference_val_acc" in Path(csv).read_text().splitlines()[0]


def test_compare_all_runs_shared_variant_once(workdir):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "all", *SMALL, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [r["variant"] for r in recs] == ["sgd-0.005", "adam-5e-05", "adam-0.005", "adam-5e-05-plain"]
    client, runs = runs_of(uri)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "cnn-compare"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 5 and len(children) == 4
    assert sorted(r.data.tags["mlhw.variant"] for r in children) == sorted(r["variant"] for r in recs)
    shared = [r for r in children if r.data.tags["mlhw.variant"] == "adam-5e-05"][0]
    assert shared.data.tags["mlhw.parts"] == "cnn.a,cnn.b,cnn.c"  # one run serves the three parts
    # named for its parts as the parent is (cnn.abc): it was "cnn.a,cnn.b,cnn.c · ...", then "cnn · ...", which read
    # as a stray `cnn train` run among cnn.a, cnn.b and cnn.c
    assert shared.info.run_name.startswith("cnn.abc · Adam lr=5e-5, seed 0 (")
    assert {r.info.run_name.split(" · ")[0] for r in children} == {"cnn.a", "cnn.abc", "cnn.b", "cnn.c"}
    assert parent.data.tags["mlhw.dataset"] == "digits" == shared.data.tags["mlhw.dataset"]  # a filter finds both
    # the parent's settings are the variants' common ones: its optimizer=adam stood beside an SGD child
    assert (
        not {"optimizer", "lr", "batchnorm", "dropout"} & set(parent.data.params) and "variants" in parent.data.params
    )
    names = ("sgd_vs_adam", "adam_lr", "batchnorm_dropout")  # as reproduce names them (it was cnn_part_a, ...)
    figures = {a.path: a.file_size for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert set(figures) == {f"figures/{n}.png" for n in names} and min(figures.values()) > 10_000
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert arts == {f"tables/{n}.{ext}" for n in names for ext in ("md", "csv")}
    md = client.download_artifacts(parent.info.run_id, "tables/sgd_vs_adam.md", str(workdir / "dl"))
    assert Path(md).read_text().startswith("## Part 2 (a): SGD vs Adam on digits\n")  # what it ran on, as in reproduce
    assert not (workdir / "results").exists()  # a single seed's comparison never touches a profile's report
    assert "BN+Dropout" in res.stderr  # the tables go to stderr with --json


def test_paper_configuration_is_one_flag_away(workdir):
    """CIFAR-10 from python batches in --data-dir: the assignment's 5,000 validation images."""
    write_cifar_batches(workdir / "c" / "cifar-10-batches-py", per_batch=1010, n_test=40)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke(
        "cnn",
        "train",
        "--dataset",
        "cifar10",
        "--data-dir",
        workdir / "c",
        "--image-size",
        67,
        *SMALL,
        "--json",
        "--tracking-uri",
        uri,
    )
    assert res.exit_code == 0, res.output
    client, (run,) = runs_of(uri)
    assert json.loads(run.data.tags["mlhw.dataset_sizes"]) == {"train": 5, "val": 5000, "test": 40}
    # random pixels in CIFAR-10's format (as benchmarks/gpu_paper.sh writes) are run, and named for what they are
    assert run.data.tags["mlhw.dataset"] == "cifar10"
    assert run.data.tags["mlhw.dataset_files"] == "not the official files"
    # its result is one line in a log (the console is a 160-column pipe here): '(run …)' was cut onto a line alone
    (line,) = [x for x in res.stderr.splitlines() if "final train loss" in x]
    start = "Adam lr=5e-5 on cifar10 10%, width 0.125, 67 px, 1 epoch, seed 0 (not the official CIFAR-10 files): "
    assert line.startswith(start + "train 5 / val 5,000"), line
    assert line.endswith(f"(run {run.info.run_id[:8]})") and len(line) > 160, line
    assert run.data.params["train_fraction"] == "0.1"  # 10% of the 50 left in the pool: the cifar10 preset
    assert run.data.params["image_size"] == "67" and run.data.params["width"] == "0.125"  # the flags win


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["train", "--optimizer", "rmsprop"], "--optimizer: must be 'sgd' or 'adam'"),
        (["train", "--lr", "0"], "--lr: must be > 0"),
        (["train", "--lr", "-0.1"], "--lr: must be > 0"),
        (["train", "--lr", "inf"], "--lr: must be a finite number (got inf)"),
        (["train", "--lr", "nan"], "--lr: must be a finite number (got nan)"),
        (["train", "--seed", "-1"], "--seed: must be >= 0 (got -1)"),
        (
            ["train", "--seed", "4294967296"],
            "--seed: must be <= 4294967295 (got 4294967296)",
        ),
        (["train", "--image-size", "63"], "--image-size: must be >= 67 (got 63)"),
        (["train", "--image-size", "50"], "--image-size: must be >= 67 (got 50)"),
        (["train", "--width", "0"], "--width: must be > 0 (got 0)"),
        (["train", "--width", "inf"], "--width: must be a finite number (got inf)"),
        (["train", "--train-fraction", "1.5"], "--train-fraction: must be <= 1 (got 1.5)"),
        (["train", "--train-fraction", "0.0008"], "--train-fraction: 0.0008 of digits is 1 image(s); 2 at least"),
        (["train", "--batch-size", "1"], "--batch-size: BatchNorm needs batches of 2 images at least (got 1)"),
        (["compare", "--image-size", "63"], "--image-size: must be >= 67 (got 63)"),
        (["compare", "--seed", "-1"], "--seed: must be >= 0 (got -1)"),
        (["train", "--dataset", "cifar10", "--data-dir", "none", "--no-download"], "CIFAR-10 not found in none/"),
        (["train", "--dataset", "imagenet"], "--dataset: must be 'digits' or 'cifar10'"),
        (["train", "--dataset", "mnist"], "--dataset: must be 'digits' or 'cifar10' (got 'mnist')"),
        # Adam reads no momentum: the run was logged with momentum 0.9 and trained exactly as with 0
        (
            ["train", "--momentum", "0.9"],
            "--momentum 0.9: not used here (Adam has no momentum; optimizer sgd reads it)",
        ),
    ],
)
def test_bad_input(workdir, args, culprit):
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", *args, "--tracking-uri", uri)
    line = assert_one_line_error(res, culprit)
    assert "Field required" not in line  # an unknown dataset named three preset fields too
    assert_nothing_created(workdir, uri)


def test_results_dir_is_not_an_option_of_single_runs(workdir):
    for cmd in ("train", "compare"):
        res = invoke("cnn", cmd, *SMALL, "--results-dir", workdir / "out")
        assert res.exit_code == 2 and "--results-dir" in res.output
    assert_nothing_created(workdir)


def test_compares_live_bar_starts_each_variant_without_the_last_ones_numbers(workdir, monkeypatch):
    """On a terminal, the epoch bar of `cnn compare` showed the previous variant's "loss ... val acc ..." beside the
    next variant's name until its first epoch ended (rich's reset keeps the fields it is not given)."""
    from mlhw import runs
    from mlhw.cli import cnn as cli
    from mlhw.cli import common

    monkeypatch.setattr(common, "is_terminal", lambda *a: True)
    bars, seen, started = [], [], []
    real_progress, real_run = cli.progress, runs.run_cnn

    def spied_progress():
        bars.append(real_progress())
        return bars[-1]

    def spied_run(job, *a, **kw):
        epochs = [t for t in bars[-1].tasks if t.fields.get("unit") == "epoch"]
        seen.append([(t.description, t.completed, t.fields["info"]) for t in epochs])
        [overall] = [t for t in bars[-1].tasks if t.fields.get("unit") == "variant"]
        started.append((overall.completed, overall.fields["info"]))
        return real_run(job, *a, **kw)

    monkeypatch.setattr(cli, "progress", spied_progress)
    monkeypatch.setattr(runs, "run_cnn", spied_run)
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "b", *SMALL, "--train-fraction", "0.1", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    assert sorted(row[0][0] for row in seen) == ["Adam lr=0.005", "Adam lr=5e-5"], seen
    assert all(row == [(row[0][0], 0, "")] for row in seen), seen  # the second started with the first's numbers
    # the count is of variants done, and the text names the one now training: "variant 1/2 Adam lr=5e-5" in a log
    # read as "variant 1 is Adam" while the first was done and the second training
    assert started == [(i, f"now {row[0][0]}") for i, row in enumerate(seen)], started


def test_a_data_dir_beside_digits_is_refused_before_any_run(workdir):
    """`cnn train --data-dir DIR` without --dataset cifar10 trained on digits without a word."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", "--data-dir", "cifar", "--epochs", "1", "--tracking-uri", uri)
    assert res.exit_code == 2 and res.stderr.strip() == (
        "error: --data-dir cifar: not used here (digits is embedded; --dataset cifar10 reads it)"
    )
    assert not (workdir / "mlflow.db").exists()


def test_compares_parent_has_its_best_variants_number(workdir):
    """`cnn compare`'s parent had no metric (its Model metrics tab and the table's metric columns empty), where
    `mlp sweep`'s and every suite parent show their best child's number and say which in mlhw.best."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "a", *SMALL, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in res.stdout.strip().splitlines()]
    client, runs = runs_of(uri)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "cnn-compare"][0]
    best = max(recs, key=lambda r: r["val_acc"])
    assert parent.data.metrics == {"val/acc": pytest.approx(best["val_acc"])}
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "val/acc")] == [0]
    assert parent.data.tags["mlhw.best"] == f"{variant_title(best['variant'])} (its one run's val/acc)"


def test_compares_parent_describes_the_parts_it_ran(workdir):
    """`cnn compare --part b`'s parent said "Part 2: the assignment's comparisons, one seed": all three, for one."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "compare", "--part", "b", *SMALL, "--train-fraction", "0.1", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    _, runs = runs_of(uri)
    parent = [r for r in runs if r.data.tags["mlhw.kind"] == "cnn-compare"][0]
    assert parent.data.tags["mlflow.note.content"] == "Part 2: (b) Adam learning rate; one seed"


def test_a_run_stopped_mid_training_still_says_its_size_and_precision(workdir, monkeypatch):
    """A CNN run logged `parameters` and `precision` only once it had trained: one killed (Ctrl-C, SIGTERM) or
    failed mid-training showed neither in the UI, the two things that say how large and how fast it was."""
    from mlhw import cnn

    real = cnn.evaluate

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cnn, "evaluate", stopped)  # the first epoch's validation: Ctrl-C
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--tracking-uri", uri)
    assert res.exit_code == 130, res.output
    monkeypatch.setattr(cnn, "evaluate", real)
    assert invoke("cnn", "train", *SMALL, "--seed", "1", "--tracking-uri", uri).exit_code == 0
    _, runs = runs_of(uri)
    killed, done = sorted(runs, key=lambda r: r.info.status != "KILLED")
    assert (killed.info.status, done.info.status) == ("KILLED", "FINISHED")
    assert {k: killed.data.params.get(k) for k in ("parameters", "precision")} == {
        "parameters": done.data.params["parameters"],  # the same network, counted before its first step
        "precision": "fp32",
    }


def test_train_says_what_it_trained_on_stdout(workdir):
    """Its one result line read 'digits: train 1,167 / val 130 / ...': optimizer, rate, epochs, batch and seed were
    only on stderr's progress line, gone from a log of stdout."""
    uri = f"sqlite:///{workdir}/mlflow.db"
    args = ("--optimizer", "sgd", "--batch-size", "32", "--seed", "2")
    res = invoke("cnn", "train", *SMALL, *args, "--train-fraction", "0.1", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    (line,) = [x for x in res.stdout.splitlines() if "final train loss" in x]
    assert line.startswith("SGD lr=0.005 on digits 10%, width 0.125, batch 32, 1 epoch, seed 2: train 117 / "), line
    assert "write-up" not in res.stdout  # digits: no reference


def test_train_at_the_write_ups_setting_says_its_number(workdir, monkeypatch):
    """As `mlp train` says the write-up's 93.97% beside Part 1 (c): digits stands in for official CIFAR-10 here."""
    from mlhw.cli import cnn

    monkeypatch.setattr(cnn, "reference_gap", lambda cfg, files: [])
    uri = f"sqlite:///{workdir}/mlflow.db"
    res = invoke("cnn", "train", *SMALL, "--train-fraction", "0.1", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    want = "the write-up's single run of Adam lr=5e-5: final train loss 0.6086, val acc 61.89%, test acc 62.49%."
    assert want in res.stdout and "ImageNet's statistics" in res.stdout, res.stdout
    res = invoke("cnn", "train", *SMALL, "--train-fraction", "0.1", "--lr", "1e-4", "--tracking-uri", uri)
    assert res.exit_code == 0 and "write-up" not in res.stdout, res.stdout  # no such run in the write-up


def test_the_reference_line_of_the_plain_variant_says_its_loss_is_not_reported():
    """The write-up reports no loss for Adam 5e-5 without BN/Dropout (reference.CNN_REFERENCE): `cnn train` read
    'final train loss -, val acc 60.62%', a dash where a number was expected."""
    from mlhw.cli.cnn import _reference_line
    from mlhw.config import CNNConfig
    from mlhw.data import OFFICIAL

    line = _reference_line(CNNConfig(dataset="cifar10", batchnorm=False, dropout=False), OFFICIAL)
    assert line.startswith(
        "the write-up's single run of Adam lr=5e-5, no BN/Dropout: final train loss not reported, val acc 60.62%, "
    ), line
    line = _reference_line(CNNConfig(dataset="cifar10"), OFFICIAL)
    assert line.startswith("the write-up's single run of Adam lr=5e-5: final train loss 0.6086, val acc 61.89%, "), line


def test_a_compiled_run_says_so_in_its_tags(workdir, monkeypatch):
    """--compile trains the same network to the chaos of training (not another identity) at another speed: the run's
    tag says which, in the UI. (A stand-in for torch.compile: a CPU's Inductor compiles C++ for minutes.)"""
    import torch

    monkeypatch.setattr(torch, "compile", lambda model: model)
    uri = f"sqlite:///{workdir}/mlflow.db"
    assert invoke("cnn", "train", *SMALL, "--compile", "--tracking-uri", uri).exit_code == 0
    assert invoke("cnn", "train", *SMALL, "--seed", "1", "--tracking-uri", uri).exit_code == 0
    _, found = runs_of(uri)
    tags = {r.data.params["seed"]: r.data.tags.get("mlhw.compiled") for r in found}
    assert tags == {"0": "torch.compile", "1": None}, tags
