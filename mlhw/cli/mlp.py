"""`mlhw mlp`: Part 1, the hand-written backprop MLP (train one configuration, sweep learning rates)."""

from __future__ import annotations

import contextlib
import functools
from typing import Annotated, Literal, Optional

import typer

from mlhw.cli.common import (
    DATA,
    TRAIN,
    Device,
    Download,
    Experiment,
    Json,
    MnistDir,
    Seed,
    TrackingUri,
    config_option,
    emit_json,
    err,
    examples,
    fmt,
    handles_errors,
    loss_text,
    out,
    parse_floats,
    parse_ints,
    prepare,
    progress,
    tracking_hint,
)
from mlhw.config import MLPConfig, build
from mlhw.errors import MLHWError
from mlhw.reference import MLP_SWEEP_LRS

app = typer.Typer(
    no_args_is_help=True,
    help="Part 1: the assignment's [784, 40, 10] ReLU network with hand-written backprop and mini-batch SGD; the "
    "defaults run on the embedded digits ([64, 40, 10]: 8x8 images), --dataset mnist on MNIST.",
)


_opt = functools.partial(config_option, MLPConfig)


Dataset = Annotated[
    Optional[str], _opt("digits (embedded, 8x8) or mnist (needs --data-dir or network).", "dataset", DATA)
]
TrainSize = Annotated[
    Optional[int],
    typer.Option(
        help="Training subset drawn with np.random.seed(seed) + choice (default: the whole pool).", rich_help_panel=DATA
    ),
]
TestSize = Annotated[
    Optional[int],
    typer.Option(
        help="Test subset, drawn from the test set with the seed set again (as the course's loader does).",
        rich_help_panel=DATA,
    ),
]
Epochs = Annotated[Optional[int], _opt("Epochs of SGD.", "epochs")]
BatchSize = Annotated[Optional[int], _opt("Mini-batch size.", "batch_size")]
Hidden = Annotated[Optional[str], _opt("Hidden layer widths, comma-separated (e.g. 40 or 100,40).", "hidden")]
Dtype = Annotated[Optional[str], _opt("float32 or float64.", "dtype")]


def _widths(text: str) -> tuple[int, ...]:
    return tuple(parse_ints(text, "--hidden", "comma-separated whole numbers, e.g. 40 or 100,40"))


def _config(dataset, train_size, test_size, hidden, epochs, batch_size, lr, seed, dtype) -> MLPConfig:
    widths = None if hidden is None else _widths(hidden)
    return build(
        MLPConfig,
        "--",
        dataset=dataset,
        train_size=train_size,
        test_size=test_size,
        hidden=widths,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        dtype=dtype,
    )


def _run(cfg: MLPConfig, lrs, part, data_dir, download, device, tracking_uri, experiment, as_json, sweep=False):
    from mlhw.data import files_note
    from mlhw.device import mlp_device
    from mlhw.labels import batch_label, lr_label, run_name
    from mlhw.lifecycle import standard_tags, tracked_run
    from mlhw.runs import run_mlp
    from mlhw.tables import pct

    # Everything that can fail on bad input happens before any run or progress display exists.
    dev = mlp_device(device)  # auto: never the slower device for Part 1 (see mlhw.device)
    configs = [cfg.model_copy(update={"lr": lr}) for lr in lrs]
    command = f"mlhw mlp {'sweep' if sweep else 'train'}"  # a sweep of one rate is still a sweep (its figure)
    source, store, job = prepare(
        cfg, "", part, command, data_dir, download, tracking_uri, experiment, device=dev, replicas=len(lrs)
    )
    jobs = [
        type(job)(c, source.identity(c), run_name(part, lr_label(c.lr), c), job.tags, job.description, command)
        for c in configs
    ]
    with contextlib.ExitStack() as stack, progress() as bar:
        parent = None
        if sweep:  # a parent run holding the children and the figure
            tags = (
                standard_tags(command, "Part 1 (b): one fresh network per learning rate")
                | job.tags
                | {"mlhw.kind": "mlp-sweep", "mlhw.dataset": cfg.dataset}  # (a filter on the dataset finds it too)
            )
            parent = stack.enter_context(
                tracked_run(
                    # the rates as `lrs`, no `lr` of its own: a filter on params.lr finds the child runs only
                    store,
                    run_name(part, f"sweep of {len(lrs)} rate" + "s" * (len(lrs) != 1), cfg),
                    {k: v for k, v in cfg.to_params().items() if k != "lr"} | {"lrs": lrs},
                    tags,
                )
            )
            for j in jobs:
                j.parent = parent.run_id
        label = f"{part} {'sweep' if parent else 'lr=' + format(cfg.lr, 'g')}"
        task = bar.add_task(label, total=cfg.epochs, info="", unit="epoch")

        def on_epoch(epoch, row):
            # a sweep's rows are one rate's each: only the epoch count speaks for all of them
            bar.update(task, completed=epoch, info="" if parent else f"test acc {pct(row['test_acc'])}")

        runs = run_mlp(jobs, store, source, dev, None, on_epoch)
        data = source.for_config(cfg)  # the split the runs saw (seed cfg.seed's subset), drawn once here
        if parent is not None:
            from mlhw.plots import lr_sweep_figure
            from mlhw.report import result_curves

            # flagged from the epoch each run diverged at, as the report's figure is: a dashed line, a cross
            series = [(lr_label(r.job.config.lr), [result_curves(r.result)]) for r in runs]
            note = files_note(data.name, data.files)  # a PNG pasted into a write-up says its data alone
            epochs = f"{cfg.epochs} epoch" + "s" * (cfg.epochs != 1)
            setting = (
                f"MLP {list(cfg.hidden)} on {cfg.dataset}{note} ({len(data.train):,} train / {len(data.test):,} "
                f"test), {epochs}, {batch_label(cfg.batch_size, len(data.train))}, seed {cfg.seed}"
            )
            title = f"Part 1 (b): {setting}: one network per learning rate"
            parent.log_figure(lambda p: lr_sweep_figure(series, p, title), "figures/mlp_lr_sweep.png")
            from mlhw.tables import headline, mlp_sweep_table

            rows = [  # one seed: the reproduction's table of the same rates, n = 1 (tables/mlp_lr_sweep.md, .csv)
                r.result.final | {"lr": r.job.config.lr, "diverged": float(r.result.diverged_epoch is not None)}
                for r in runs
            ]
            table = mlp_sweep_table(rows)
            table.title += f", {setting}"  # tables/mlp_lr_sweep.md, copied alone, says what it ran on too
            parent.log_result_table(table)
            if best := headline(table):  # the parent's own number: the best rate's (MLflow's sweep convention)
                parent.log_metrics({best[0]: best[1]}, step=0)
                parent.set_tags({"mlhw.best": best[2]})
    sizes = f"{len(data.train):,} train / {len(data.test):,} test"
    pools = (len(source.base(cfg.dataset).train), len(source.base(cfg.dataset).test))  # (read already)
    _show(
        runs,
        part,
        cfg,
        as_json,
        store,
        parent,
        sizes,
        files_note(data.name, data.files),
        data.files,
        len(data.train),
        pools,
    )


def reference_line(cfg: MLPConfig, test_acc: float, files: str = "", pools: tuple[int, int] | None = None) -> str:
    """One line beside the write-up's 93.97% for a run at Part 1 (c)'s settings on MNIST (the config defaults, as
    REPORT.md decides it: mlhw.findings.base.off_reference), '' for any other run: its number is not comparable.
    `pools`: the dataset's training and test pool sizes; a subset size equal to its pool draws nothing (mlhw.data.
    subset), so `--train-size 50000 --test-size 10000`, the assignment's sizes typed out, trained the same network to
    the same 94.36% as the default and was not set beside the write-up."""
    from mlhw.data import NOT_OFFICIAL
    from mlhw.findings.base import off_reference
    from mlhw.reference import MLP_FULL_TEST_ACC
    from mlhw.tables import pct

    if pools is not None:
        whole = {k: None for k, n in zip(("train_size", "test_size"), pools) if getattr(cfg, k) == n}
        cfg = cfg.model_copy(update=whole)
    if off_reference([cfg.model_dump(mode="json")], "mlp"):
        return ""
    if files == NOT_OFFICIAL:
        return (
            f"Part 1 (c)'s settings, but not the official MNIST files: the write-up's {pct(MLP_FULL_TEST_ACC)} does "
            f"not apply; this run: {pct(test_acc)}"
        )
    return f"Part 1 (c): the write-up reported {pct(MLP_FULL_TEST_ACC)} test accuracy; this run: {pct(test_acc)}"


def _show(
    runs, part, cfg, as_json, store, parent, sizes: str, note: str = "", files: str = "", n_train=None, pools=None
) -> None:
    import pandas as pd

    from mlhw.labels import batch_label, data_note
    from mlhw.tables import pct, to_rich

    rows = []
    for r in runs:
        f = r.result.final
        rows.append(
            [
                f"{r.job.config.lr:g}",
                loss_text(f["train_loss"]),
                pct(f["train_acc"]),  # percentages, as the reproduction's tables and REPORT.md show them
                pct(f["test_acc"]),
                fmt(r.result.diverged_epoch),
                f"{r.result.seconds:.2f}",
                r.run_id[:8],
            ]
        )
        if as_json:
            emit_json(
                {
                    "part": part,
                    "lr": r.job.config.lr,
                    "train_loss": f["train_loss"],
                    "train_acc": f["train_acc"],
                    "test_acc": f["test_acc"],
                    "diverged_epoch": r.result.diverged_epoch,
                    "seconds": r.result.seconds,
                    "run_id": r.run_id,
                    "dataset": cfg.dataset,
                }
            )
    table = to_rich(
        pd.DataFrame(rows, columns=["lr", "train loss", "train acc", "test acc", "diverged at", "train s", "run id"]),
        f"{part}: MLP {list(cfg.hidden)} on {data_note(cfg, network=False)}{note}, "
        f"{batch_label(cfg.batch_size, n_train)}; {sizes}",
        caption=(
            "train s: the SGD steps of all rates at once (trained together, one batched computation), without the "
            "epochs' evaluation"
            if len(runs) > 1 and len({r.result.seconds for r in runs}) == 1
            else "train s: the SGD steps only, without each epoch's evaluation on the whole training and test sets"
        ),
    )
    console = err if as_json else out
    console.print(table)
    if parent is None and (line := reference_line(cfg, runs[0].result.final["test_acc"], files, pools)):
        console.print(line, highlight=False, soft_wrap=True)  # on stderr with --json: stdout stays JSON lines
    if parent is not None:
        where = store.local_file(parent.run_id, "figures/mlp_lr_sweep.png")
        console.print(
            f"figure: artifact figures/mlp_lr_sweep.png of MLflow run {parent.run_id[:8]}"
            + (f", on disk: {where}" if where else ""),
            highlight=False,
            soft_wrap=True,
        )
    console.print(tracking_hint(store), highlight=False, soft_wrap=True)


TRAIN_EXAMPLES = examples(
    ("Part (c) on the embedded digits: lr 0.1, batch 10, 30 epochs", "mlhw mlp train"),
    (
        "Part (c) as the assignment ran it: MNIST from DIR, 50,000 train / 10,000 test",
        "mlhw mlp train --dataset mnist --data-dir DIR",
    ),
    (
        "Part (a): 10,000 train / 5,000 test images of MNIST, run as part (a)",
        "mlhw mlp train --dataset mnist --data-dir DIR --part mlp.a \\\n  --train-size 10000 --test-size 5000",
    ),
    ("Two hidden layers in float64, 5 epochs", "mlhw mlp train --hidden 100,40 --dtype float64 --epochs 5"),
)


@app.command(epilog=TRAIN_EXAMPLES)
@handles_errors
def train(
    dataset: Dataset = None,
    train_size: TrainSize = None,
    test_size: TestSize = None,
    hidden: Hidden = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Annotated[Optional[float], _opt("Learning rate.", "lr")] = None,
    seed: Seed = None,
    dtype: Dtype = None,
    device: Device = "auto",
    data_dir: MnistDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    part: Annotated[  # the command's own option, as `cnn compare --part` is, not in the Tracking panel
        Literal["mlp.a", "mlp.b", "mlp.c"],
        typer.Option(help="The assignment part the run stands for: its name and its mlhw.part tag (no setting)."),
    ] = "mlp.c",
    as_json: Json = False,
):
    """Train one network (part (c) by default: lr 0.1, batch 10, 30 epochs) and log it to MLflow."""
    cfg = _config(dataset, train_size, test_size, hidden, epochs, batch_size, lr, seed, dtype)
    _run(cfg, [cfg.lr], part, data_dir, download, device, tracking_uri, experiment, as_json)


@app.command()
@handles_errors
def sweep(
    dataset: Dataset = None,
    train_size: TrainSize = None,
    test_size: TestSize = None,
    lrs: Annotated[
        Optional[str],
        typer.Option(
            help="Learning rates, comma-separated; each starts from the same fresh network and sees the same data "
            "order.",
            rich_help_panel=TRAIN,
            show_default=",".join(f"{x:g}" for x in MLP_SWEEP_LRS),
        ),
    ] = None,
    hidden: Hidden = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    seed: Seed = None,
    dtype: Dtype = None,
    device: Device = "auto",
    data_dir: MnistDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Part (b): train one network per learning rate, all rates in one batched computation.

    Logs a parent run with one child run per rate; the parent holds the write-up's Figure 2 (training
    accuracy, training loss, test accuracy per epoch) as an artifact. Rates that diverge are recorded
    with a [bold]mlhw.diverged_epoch[/bold] tag, not treated as errors. Writes nothing under results/
    (that is `mlhw reproduce`'s). The paper setting: [bold]--dataset mnist --data-dir DIR --train-size 10000
    --test-size 5000[/bold].
    """
    rates = MLP_SWEEP_LRS if lrs is None else parse_floats(lrs, "--lrs")
    from pydantic import TypeAdapter, ValidationError

    from mlhw.config import Rate
    from mlhw.errors import message
    from mlhw.experiments import first_repeat

    for r in rates:  # each rate as MLPConfig's lr takes it; the error names the list: "--lrs '0.1,-2': -2: ..."
        try:
            TypeAdapter(Rate).validate_python(r)
        except ValidationError as e:
            raise MLHWError(f"--lrs {lrs!r}: {r:g}: {message(e.errors()[0])}") from None
    if (again := first_repeat(rates)) is not None:  # the same run twice: two FINISHED runs of one identity
        raise MLHWError(f"--lrs {lrs!r}: {again:g} is listed twice")
    cfg = _config(dataset, train_size, test_size, hidden, epochs, batch_size, rates[0], seed, dtype)
    _run(cfg, list(rates), "mlp.b", data_dir, download, device, tracking_uri, experiment, as_json, sweep=True)
