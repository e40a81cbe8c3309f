"""`mlhw cnn`: Part 2, AlexNet on CIFAR-10 (SGD vs Adam, learning rate, BatchNorm + Dropout)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlhw.cli.common import (
    DATA,
    TRAIN,
    DataDir,
    Device,
    Download,
    Experiment,
    Json,
    ResultsDir,
    TrackingUri,
    emit_json,
    err,
    fmt,
    handles_errors,
    out,
    progress,
)
from mlhw.config import CNNConfig, build
from mlhw.errors import MLHWError

app = typer.Typer(
    no_args_is_help=True,
    help="Part 2: the assignment's AlexNet (58,325,066 parameters at 227 px) "
    "on CIFAR-10, or a half-width version on the embedded digits.",
)

Dataset = Annotated[
    str,
    typer.Option(
        help="digits (embedded; half-width model at 67 px) or cifar10 (the paper "
        "model at 227 px; needs --data-dir or network).",
        rich_help_panel=DATA,
    ),
]
Width = Annotated[
    Optional[float],
    typer.Option(
        help="Multiplier of channels and hidden units.",
        show_default="1 for cifar10, 0.5 for digits",
        rich_help_panel=TRAIN,
    ),
]
ImageSize = Annotated[
    Optional[int],
    typer.Option(
        help="Input side in pixels (bilinear resize on the device; the topology needs >= 67).",
        show_default="227 for cifar10, 67 for digits",
        rich_help_panel=TRAIN,
    ),
]
TrainFraction = Annotated[
    Optional[float],
    typer.Option(
        help="Fraction of the training pool used (the reference runs: 0.1 of 45,000).",
        show_default="0.1 for cifar10, 1 for digits",
        rich_help_panel=DATA,
    ),
]
Epochs = Annotated[int, typer.Option(help="Epochs.", rich_help_panel=TRAIN)]
BatchSize = Annotated[int, typer.Option(help="Mini-batch size.", rich_help_panel=TRAIN)]
SeedOpt = Annotated[int, typer.Option(help="Seed of initialisation, dropout and data order.", rich_help_panel=TRAIN)]
Precision = Annotated[
    str,
    typer.Option(help="auto (bf16 autocast where the hardware has native bf16), bf16 or fp32.", rich_help_panel=TRAIN),
]
Compile = Annotated[bool, typer.Option("--compile", help="torch.compile the model.", rich_help_panel=TRAIN)]


def _config(dataset, width, image_size, train_fraction, **fields) -> CNNConfig:
    from mlhw.runs import cnn_defaults

    if dataset not in ("digits", "cifar10"):
        raise MLHWError(f"--dataset: Input should be 'digits' or 'cifar10' (got {dataset!r})")
    d = cnn_defaults(dataset)
    return build(
        CNNConfig,
        "--",
        dataset=dataset,
        width=d["width"] if width is None else width,
        image_size=d["image_size"] if image_size is None else image_size,
        train_fraction=d["train_fraction"] if train_fraction is None else train_fraction,
        **fields,
    )


def _prepare(cfg, device, precision, data_dir, download, results_dir, tracking_uri, experiment):
    """Everything that can fail on bad input, before any run or display exists."""
    from mlhw.cnn import build_model, resolve_precision
    from mlhw.device import resolve_device
    from mlhw.runs import Runtime, load_cnn_data
    from mlhw.tracking import Tracker

    runtime = Runtime(device, data_dir, download, results_dir)
    dev = resolve_device(device)
    resolve_precision(precision, dev)
    data = load_cnn_data(cfg, runtime)
    build_model(cfg, data)  # a too-small image size fails here, naming the minimum
    return runtime, dev, data, Tracker(tracking_uri, experiment)


def _epoch_bar(bar, cfg):
    task = bar.add_task("", total=cfg.epochs, info="")

    def on_epoch(epoch, row):
        bar.update(
            task,
            completed=epoch,
            info=f"epoch {epoch}: loss {row['train_loss']:.3f} val "
            f"{row['val_acc']:.3f} {row['images_per_s']:.0f} img/s",
        )

    return task, on_epoch


@app.command()
@handles_errors
def train(
    optimizer: Annotated[str, typer.Option(help="sgd (plain, --momentum 0) or adam.", rich_help_panel=TRAIN)] = "adam",
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=TRAIN)] = 5e-5,
    momentum: Annotated[float, typer.Option(help="SGD momentum.", rich_help_panel=TRAIN)] = 0.0,
    batchnorm: Annotated[
        bool, typer.Option("--batchnorm/--no-batchnorm", help="BatchNorm after every conv.", rich_help_panel=TRAIN)
    ] = True,
    dropout: Annotated[
        bool,
        typer.Option(
            "--dropout/--no-dropout", help="Dropout(0.5) before the hidden Linear layers.", rich_help_panel=TRAIN
        ),
    ] = True,
    dataset: Dataset = "digits",
    epochs: Epochs = 10,
    batch_size: BatchSize = 64,
    width: Width = None,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = None,
    seed: SeedOpt = 0,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    data_dir: DataDir = "data",
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
    as_json: Json = False,
):
    """Train one AlexNet variant (default: Adam 5e-5 with BatchNorm + Dropout) and log it to MLflow.

    The paper setting is one flag away: [bold]--dataset cifar10 --data-dir DIR[/bold] (on a GPU).
    """
    cfg = _config(
        dataset,
        width,
        image_size,
        train_fraction,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        batchnorm=batchnorm,
        dropout=dropout,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    runtime, dev, data, tracker = _prepare(
        cfg, device, precision, data_dir, download, results_dir, tracking_uri, experiment
    )
    from mlhw.runs import run_cnn

    with progress() as bar:
        task, on_epoch = _epoch_bar(bar, cfg)
        bar.update(task, description=f"{cfg.optimizer} lr={cfg.lr:g}")
        run = run_cnn(cfg, data, dev, tracker, "cnn", None, None, precision, compile, on_epoch)
    res = run.result
    record = {
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "batchnorm": cfg.batchnorm,
        "dropout": cfg.dropout,
        **{k: res.history[-1][k] for k in ("train_loss", "val_acc")},
        "test_acc": res.test_acc,
        "diverged_epoch": res.diverged_epoch,
        "parameters": res.parameters,
        "seconds": res.seconds,
        "precision": res.precision,
        "dataset": data.name,
        "run_id": run.run_id,
    }
    (err if as_json else out).print(
        f"{data.name}: train {len(data.train)} / val {len(data.val)} / test {len(data.test)}, "
        f"{res.parameters:,} parameters, {res.precision}: final train loss {fmt(record['train_loss'])}, "
        f"val acc {fmt(record['val_acc'])}, test acc {fmt(res.test_acc)}"
        + (f", diverged at epoch {res.diverged_epoch}" if res.diverged_epoch else "")
        + f" (run {run.run_id[:8]})"
    )
    if as_json:
        emit_json(record)


@app.command()
@handles_errors
def compare(
    part: Annotated[
        str,
        typer.Option(
            help="a: SGD 0.005 vs Adam 5e-5; b: Adam 0.005 vs Adam 5e-5; c: Adam 5e-5 "
            "with vs without BatchNorm + Dropout; all: a, b and c."
        ),
    ] = "all",
    dataset: Dataset = "digits",
    epochs: Epochs = 10,
    batch_size: BatchSize = 64,
    width: Width = None,
    image_size: ImageSize = None,
    train_fraction: TrainFraction = None,
    seed: SeedOpt = 0,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    data_dir: DataDir = "data",
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = "mlhw",
    results_dir: ResultsDir = "results",
    as_json: Json = False,
):
    """Run the assignment's comparisons and print the seed-style tables.

    Each variant runs once even when several parts share it (Adam 5e-5 with BatchNorm + Dropout
    belongs to a, b and c). The learning curves of each part go to results/<dataset>/figures/.
    """
    from mlhw.reference import CNN_PARTS, variants_for

    parts = list(CNN_PARTS) if part == "all" else [part]
    if any(p not in CNN_PARTS for p in parts):
        raise MLHWError(f"--part {part!r}: use a, b, c or all")
    cfg = _config(dataset, width, image_size, train_fraction, epochs=epochs, batch_size=batch_size, seed=seed)
    runtime, dev, data, tracker = _prepare(
        cfg, device, precision, data_dir, download, results_dir, tracking_uri, experiment
    )
    from mlhw.runs import run_cnn_compare, summary_row
    from mlhw.tables import to_rich

    names = variants_for(parts)
    with progress() as bar:
        overall = bar.add_task("variants", total=len(names), info="")
        task, on_epoch = _epoch_bar(bar, cfg)

        def on_variant(v, c):
            bar.update(overall, completed=names.index(v), info=v)
            bar.reset(task, total=cfg.epochs, description=v)

        runs, tables, figures = run_cnn_compare(
            cfg, parts, data, dev, tracker, runtime, precision, compile, on_variant, on_epoch
        )
        bar.update(overall, completed=len(names), info="done")
    console = err if as_json else out
    for p in parts:
        console.print(to_rich(tables[p], f"Part 2 ({p}): {CNN_PARTS[p][0]} on {data.name}, {cfg.epochs} epochs"))
    for f in figures:
        console.print(f"figure: {f}")
    if as_json:
        for v, r in runs.items():
            emit_json({"variant": v, **summary_row(r), "run_id": r.run_id, "dataset": data.name})
