"""`mlhw mlp`: Part 1, the hand-written backprop MLP (train one configuration, sweep learning rates)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from mlhw.cli.common import (
    DATA,
    TRAIN,
    DataDir,
    Device,
    Download,
    Experiment,
    Json,
    ResultsDir,
    Seed,
    TrackingUri,
    emit_json,
    err,
    fmt,
    handles_errors,
    out,
    parse_floats,
    progress,
)
from mlhw.config import MLPConfig, build

app = typer.Typer(
    no_args_is_help=True,
    help="Part 1: a [784, 40, 10] ReLU network with hand-written "
    "backprop and mini-batch SGD (defaults run on the embedded digits).",
)

Dataset = Annotated[
    str, typer.Option(help="digits (embedded, 8x8) or mnist (needs --data-dir or network).", rich_help_panel=DATA)
]
TrainSize = Annotated[
    Optional[int],
    typer.Option(
        help="Training subset drawn with np.random.seed(seed) + choice (default: the whole pool).", rich_help_panel=DATA
    ),
]
TestSize = Annotated[
    Optional[int], typer.Option(help="Test subset, drawn after the training subset.", rich_help_panel=DATA)
]
Epochs = Annotated[int, typer.Option(help="Epochs of SGD.", rich_help_panel=TRAIN)]
BatchSize = Annotated[int, typer.Option(help="Mini-batch size.", rich_help_panel=TRAIN)]
Hidden = Annotated[
    str, typer.Option(help="Hidden layer widths, comma-separated (e.g. 40 or 100,40).", rich_help_panel=TRAIN)
]
Dtype = Annotated[str, typer.Option(help="float32 or float64.", rich_help_panel=TRAIN)]


def _config(dataset, train_size, test_size, hidden, epochs, batch_size, lr, seed, dtype) -> MLPConfig:
    widths = [int(w) for w in parse_floats(hidden, "--hidden")]
    return build(
        MLPConfig,
        "--",
        dataset=dataset,
        train_size=train_size,
        test_size=test_size,
        hidden=tuple(widths),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        dtype=dtype,
    )


def _run(cfg: MLPConfig, lrs, part, data_dir, download, device, tracking_uri, experiment, results_dir, as_json):
    from mlhw.device import resolve_device
    from mlhw.runs import Runtime, load_data, run_mlp
    from mlhw.tracking import Tracker

    # Everything that can fail on bad input happens before any run or progress display exists.
    runtime = Runtime(device, data_dir, download, results_dir)
    dev = resolve_device(device)
    data = load_data(cfg.dataset, runtime, cfg.train_size, cfg.test_size, cfg.seed)
    tracker = Tracker(tracking_uri, experiment)
    with progress() as bar:
        label = f"{part} {'sweep' if lrs and len(lrs) > 1 else 'lr=' + format(cfg.lr, 'g')}"
        task = bar.add_task(label, total=cfg.epochs, info="")

        def on_epoch(epoch, rows):
            best = max(rows, key=lambda r: r["test_acc"] if r["test_acc"] == r["test_acc"] else -1)
            bar.update(task, completed=epoch, info=f"best test acc {best['test_acc']:.4f}")

        runs, figure = run_mlp(cfg, data, dev, tracker, runtime, lrs, part, on_epoch)
    table = Table(title=f"{part}: MLP {list(cfg.hidden)} on {cfg.dataset}, {cfg.epochs} epochs, batch {cfg.batch_size}")
    for col in ("lr", "train loss", "train acc", "test acc", "diverged at", "seconds", "run id"):
        table.add_column(col, justify="right")
    for r in runs:
        f = r.result.final
        table.add_row(
            f"{r.config.lr:g}",
            fmt(f["train_loss"]),
            fmt(f["train_acc"]),
            fmt(f["test_acc"]),
            fmt(r.result.diverged_epoch),
            f"{r.result.seconds:.2f}",
            r.run_id[:8],
        )
        if as_json:
            emit_json(
                {
                    "part": part,
                    "lr": r.config.lr,
                    "train_loss": f["train_loss"],
                    "train_acc": f["train_acc"],
                    "test_acc": f["test_acc"],
                    "diverged_epoch": r.result.diverged_epoch,
                    "seconds": r.result.seconds,
                    "run_id": r.run_id,
                    "dataset": cfg.dataset,
                }
            )
    (err if as_json else out).print(table)
    if figure is not None:
        (err if as_json else out).print(f"figure: {figure}")
    (err if as_json else out).print(
        f"tracking: {tracker.uri} (experiment {experiment!r}); `mlflow ui --backend-store-uri {tracker.uri}` to browse"
    )


@app.command()
@handles_errors
def train(
    dataset: Dataset = "digits",
    train_size: TrainSize = None,
    test_size: TestSize = None,
    hidden: Hidden = "40",
    epochs: Epochs = 30,
    batch_size: BatchSize = 10,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=TRAIN)] = 0.1,
    seed: Seed = 8,
    dtype: Dtype = "float32",
    device: Device = "auto",
    data_dir: DataDir = "data",
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
    part: Annotated[str, typer.Option(help="Tag of the assignment part.", rich_help_panel="Tracking")] = "mlp.c",
    as_json: Json = False,
):
    """Train one network (part (c) by default: lr 0.1, batch 10, 30 epochs) and log it to MLflow.

    The paper setting: [bold]--dataset mnist --data-dir DIR[/bold] (50,000 train / 10,000 test).
    Part (a): add [bold]--train-size 10000 --test-size 5000 --part mlp.a[/bold].
    """
    cfg = _config(dataset, train_size, test_size, hidden, epochs, batch_size, lr, seed, dtype)
    _run(cfg, None, part, data_dir, download, device, tracking_uri, experiment, results_dir, as_json)


@app.command()
@handles_errors
def sweep(
    lrs: Annotated[
        str,
        typer.Option(
            help="Learning rates, comma-separated; each starts from the same "
            "fresh network and sees the same data order.",
            rich_help_panel=TRAIN,
        ),
    ] = "0.001,0.01,0.1,1,10,100",
    dataset: Dataset = "digits",
    train_size: TrainSize = None,
    test_size: TestSize = None,
    hidden: Hidden = "40",
    epochs: Epochs = 30,
    batch_size: BatchSize = 10,
    seed: Seed = 8,
    dtype: Dtype = "float32",
    device: Device = "auto",
    data_dir: DataDir = "data",
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
    as_json: Json = False,
):
    """Part (b): train one network per learning rate, all rates in one batched computation.

    Logs a parent run with one child run per rate and draws the seed's Figure 2 (training
    accuracy, training loss, test accuracy per epoch). Rates that diverge (NaN/inf loss, e.g.
    10 and 100) are recorded with a [bold]diverged[/bold] tag, not treated as errors.
    The paper setting: [bold]--dataset mnist --train-size 10000 --test-size 5000[/bold].
    """
    rates = parse_floats(lrs, "--lrs")
    cfg = _config(dataset, train_size, test_size, hidden, epochs, batch_size, rates[0], seed, dtype)
    for r in rates:
        build(MLPConfig, "--lrs ", lr=r)
    _run(cfg, rates, "mlp.b", data_dir, download, device, tracking_uri, experiment, results_dir, as_json)
