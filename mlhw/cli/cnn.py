"""`mlhw cnn`: Part 2, AlexNet on CIFAR-10 (SGD vs Adam, learning rate, BatchNorm + Dropout)."""

from __future__ import annotations

import contextlib
import functools
from typing import Annotated, Literal, Optional

import typer

from mlhw.cli.common import (
    DATA,
    MODEL,
    TRAIN,
    CifarDir,
    Device,
    Download,
    Experiment,
    Json,
    Precision,
    TrackingUri,
    config_option,
    emit_json,
    err,
    examples,
    handles_errors,
    loss_text,
    out,
    prepare,
    progress,
    tracking_hint,
)
from mlhw.config import CNNConfig, build

app = typer.Typer(
    no_args_is_help=True,
    help="Part 2: the assignment's AlexNet (58,325,066 parameters at 227 px) on CIFAR-10, or a half-width version "
    "on the embedded digits.",
)


_opt = functools.partial(config_option, CNNConfig)


Dataset = Annotated[
    Optional[str],
    _opt(
        "digits (embedded; half-width model at 67 px) or cifar10 (the paper model at "
        "227 px; needs --data-dir or network).",
        "dataset",
        DATA,
    ),
]
# the network's shape in a panel of its own: beside --batchnorm/--no-batchnorm, at 80 columns the Training panel
# had no room for --precision's '<auto|bf16|fp16|fp32>' ('<auto|bf16|fp16|fp3' / '2>')
Width = Annotated[Optional[float], _opt("Multiplier of channels and hidden units.", "width", MODEL)]
ImageSize = Annotated[
    Optional[int],
    _opt("Input side in pixels (bilinear resize on the device; the topology needs >= 67).", "image_size", MODEL),
]
TrainFraction = Annotated[
    Optional[float],
    _opt("Fraction of the training pool used (the reference runs: 0.1 of 45,000).", "train_fraction", DATA),
]
Epochs = Annotated[Optional[int], _opt("Epochs.", "epochs")]
BatchSize = Annotated[Optional[int], _opt("Mini-batch size.", "batch_size")]
SeedOpt = Annotated[Optional[int], _opt("Seed of initialisation, dropout and data order.", "seed")]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the network for the full batches (the last, partial one runs the eager modules). On a "
        "GPU the compiled step is captured in the CUDA graph: +23% img/s on an H200 (23,489 against 19,095), after "
        "25-30 s of compilation in the first epoch (its img/s with it): worth it for runs of a few million images "
        "(~60 epochs of 45,000), not for the paper's runs of seconds. On a 2-core CPU no faster, after ~30 s of "
        "compilation. The run's tag mlhw.compiled says it.",
        rich_help_panel=TRAIN,
    ),
]


def _config(**fields) -> CNNConfig:
    return build(CNNConfig, "--", **fields)


def _check_precision(precision, dev) -> None:
    from mlhw.cnn import resolve_precision

    resolve_precision(precision, dev)


def _epoch_bar(bar, epochs):
    from mlhw.tables import num_or_inf, pct

    task = bar.add_task("", total=epochs, info="", unit="epoch")

    def on_epoch(epoch, row):
        bar.update(
            task,
            completed=epoch,
            # as the summary and the tables give them: "val acc 11.54%", not "val 0.115"
            info=f"loss {num_or_inf(row['train_loss'], 3)} val acc {pct(row['val_acc'])} "
            f"{row.get('images_per_s', 0):.0f} img/s",
        )

    return task, on_epoch


TRAIN_EXAMPLES = examples(
    ("One variant on the embedded digits: Adam 5e-5 with BatchNorm + Dropout", "mlhw cnn train"),
    ("Part (a)'s SGD variant (its rate: 0.005)", "mlhw cnn train --optimizer sgd"),
    ("Part (c)'s variant without BatchNorm and Dropout", "mlhw cnn train --no-batchnorm --no-dropout"),
    (
        "The paper model on CIFAR-10 from DIR: 227 px, 4,500 training images (a GPU)",
        "mlhw cnn train --dataset cifar10 --data-dir DIR",
    ),
)


@app.command(epilog=TRAIN_EXAMPLES)
@handles_errors
def train(
    dataset: Dataset = None,  # first: every command's help shows its Data panel first
    # then the network's shape (Model), then how it is trained (Training), as in every command's help
    width: Width = None,
    image_size: ImageSize = None,
    batchnorm: Annotated[
        Optional[bool],
        typer.Option(
            "--batchnorm/--no-batchnorm",
            help="BatchNorm after every conv.",
            rich_help_panel=MODEL,
            show_default="batchnorm",
        ),
    ] = None,
    dropout: Annotated[
        Optional[bool],
        typer.Option(
            "--dropout/--no-dropout",
            help="Dropout(0.5) before the hidden Linear layers.",
            rich_help_panel=MODEL,
            show_default="dropout",
        ),
    ] = None,
    optimizer: Annotated[Optional[str], _opt("sgd (plain, --momentum 0) or adam.", "optimizer")] = None,
    lr: Annotated[Optional[float], _opt("Learning rate.", "lr")] = None,
    momentum: Annotated[Optional[float], _opt("SGD momentum.", "momentum")] = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    train_fraction: TrainFraction = None,
    seed: SeedOpt = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    data_dir: CifarDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Train one AlexNet variant (default: Adam 5e-5 with BatchNorm + Dropout) and log it to MLflow."""
    from mlhw.data import files_note
    from mlhw.device import resolve_device
    from mlhw.labels import batch_label, cnn_title, data_note, names_batch, run_name
    from mlhw.runs import run_cnn
    from mlhw.tables import pct

    cfg = _config(
        dataset=dataset,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        batchnorm=batchnorm,
        dropout=dropout,
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        image_size=image_size,
        train_fraction=train_fraction,
        seed=seed,
    )
    dev = resolve_device(device)
    _check_precision(precision, dev)
    name = run_name("cnn", cnn_title(cfg.optimizer, cfg.lr, cfg.batchnorm, cfg.dropout), cfg)
    source, store, job = prepare(
        cfg, name, "cnn", "mlhw cnn train", data_dir, download, tracking_uri, experiment, device=dev
    )
    with progress() as bar:
        task, on_epoch = _epoch_bar(bar, cfg.epochs)
        bar.update(task, description=cnn_title(cfg.optimizer, cfg.lr, cfg.batchnorm, cfg.dropout))
        run = run_cnn(job, store, source, dev, None, on_epoch, precision, compile)
    res, data = run.result, source.for_config(cfg)
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
    console = err if as_json else out
    on, whole = data_note(cfg), ""
    if cfg.batch_size >= len(data.train):  # legal full-batch training, but a typo's look-alike: said, the batch once
        whole = (  # a batch the title names (data_note): 'batch 117' was said twice
            "the whole training split in each batch: one step an epoch, "
            if names_batch(cfg)
            else f"{batch_label(cfg.batch_size, len(data.train), 'split')}, "
        )
    console.print(
        # what it trained, as `mlp train`'s title says it: the line read 'digits: train 1,167 / ...', the optimizer,
        # rate, epochs, batch and seed left to stderr's progress line (gone from a log of stdout)
        f"{cnn_title(cfg.optimizer, cfg.lr, cfg.batchnorm, cfg.dropout)} on {on}, seed {cfg.seed}"
        f"{files_note(data.name, data.files)}: "
        f"train {len(data.train):,} / val {len(data.val):,} / test {len(data.test):,}, "
        + whole
        + f"{res.parameters:,} parameters, {res.precision}: final train loss {loss_text(record['train_loss'])}, "
        f"val acc {pct(record['val_acc'])}, test acc {pct(res.test_acc)}"
        + (f", diverged at epoch {res.diverged_epoch}" if res.diverged_epoch else "")
        + f" (run {run.run_id[:8]})",
        highlight=False,
        soft_wrap=True,  # one line in a log too: rich cut it at the pipe's 160 columns, '(run …)' on a line alone
    )
    if line := _reference_line(cfg, data.files):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(tracking_hint(store), highlight=False, soft_wrap=True)
    if as_json:
        emit_json(record)


def _reference_line(cfg: CNNConfig, files: str) -> str:
    """The write-up's single run of this variant, for a run at its setting (as `mlp train` says the write-up's 93.97%
    beside Part 1 (c)); '' for any other run or variant: its numbers are not comparable."""
    from mlhw.labels import variant_title
    from mlhw.reference import CNN_REFERENCE, CNN_TEST_NORMALISATION_NOTE, CNN_VARIANT_FIELDS, CNN_VARIANTS
    from mlhw.tables import fixed, pct

    mine = {k: getattr(cfg, k) for k in CNN_VARIANT_FIELDS}
    variant = next((v for v, fields in CNN_VARIANTS.items() if fields == mine), None)
    if variant is None or reference_gap(cfg, files):
        return ""
    ref = CNN_REFERENCE[variant]
    loss = "not reported" if ref["train_loss"] is None else fixed(ref["train_loss"])  # (the plain run's: a dash read)
    return (
        f"the write-up's single run of {variant_title(variant)}: final train loss {loss}, "
        f"val acc {pct(ref['val_acc'])}, test acc {pct(ref['test_acc'])}. {CNN_TEST_NORMALISATION_NOTE}"
    )


@app.command()
@handles_errors
def compare(
    part: Annotated[
        Literal["a", "b", "c", "all"],
        typer.Option(
            help="a: SGD 0.005 vs Adam 5e-5; b: Adam 0.005 vs Adam 5e-5; c: Adam 5e-5 with "
            "vs without BatchNorm + Dropout; all: a, b and c."
        ),
    ] = "all",
    dataset: Dataset = None,
    width: Width = None,  # the Model panel before the Training panel, as in `cnn train`
    image_size: ImageSize = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    train_fraction: TrainFraction = None,
    seed: SeedOpt = None,
    device: Device = "auto",
    precision: Precision = "auto",
    compile: Compile = False,
    data_dir: CifarDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Run the assignment's comparisons (one seed) and print tables like the write-up's.

    Each variant runs once even when several parts share it (Adam 5e-5 with BatchNorm + Dropout
    belongs to a, b and c), as children of one parent run that holds each part's table and learning
    curves as artifacts. Writes nothing under results/ (that is `mlhw reproduce`'s, over several seeds).
    """
    from mlhw.data import files_note
    from mlhw.device import resolve_device
    from mlhw.labels import run_name, variant_title
    from mlhw.lifecycle import standard_tags, tracked_run
    from mlhw.plots import cnn_curves_figure
    from mlhw.reference import (
        CNN_PART_SUITES,
        CNN_PARTS,
        CNN_TEST_NORMALISATION_NOTE,
        CNN_VARIANT_FIELDS,
        CNN_VARIANTS,
        variants_for,
    )
    from mlhw.report import result_curves
    from mlhw.runs import run_cnn
    from mlhw.tables import SUITE_TABLES, cnn_table, headline, to_rich

    parts = list(CNN_PARTS) if part == "all" else [part]
    base = _config(
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        image_size=image_size,
        train_fraction=train_fraction,
        seed=seed,
    )
    dev = resolve_device(device)
    _check_precision(precision, dev)
    names = variants_for(parts)
    source, store, base_job = prepare(
        base, "", "cnn.compare", "mlhw cnn compare", data_dir, download, tracking_uri, experiment, device=dev
    )
    data = source.for_config(base)
    note = files_note(data.name, data.files)  # '' for the official files and digits
    off = reference_gap(base, data.files)  # the write-up's numbers beside its own setting only, as REPORT.md's
    runs, tables = {}, {}
    with contextlib.ExitStack() as stack, progress() as bar:
        # the parts it ran, as its name says them: "Part 2: the assignment's comparisons" over a --part a alone read
        # as all three
        what = "; ".join(f"({p}) {CNN_PARTS[p][0]}" for p in parts)
        tags = standard_tags("mlhw cnn compare", f"Part 2: {what}; one seed") | {
            "mlhw.kind": "cnn-compare",
            "mlhw.part": "cnn." + "".join(parts),
            "mlhw.dataset": data.name,  # as its runs': a filter on tags.`mlhw.dataset` missed the parent
        }
        parent = stack.enter_context(
            tracked_run(
                store,
                run_name("cnn." + "".join(parts), f"compare of {len(names)} variants", base),
                # a variant's own settings are its child's: the parent's optimizer=adam beside an SGD child misled
                {k: v for k, v in base.to_params().items() if k not in CNN_VARIANT_FIELDS} | {"variants": names},
                tags,
            )
        )
        overall = bar.add_task("variants", total=len(names), info="", unit="variant")
        task, on_epoch = _epoch_bar(bar, base.epochs)
        for i, v in enumerate(names):
            cfg = base.model_copy(update=CNN_VARIANTS[v])
            letters = [p for p in parts if v in CNN_PARTS[p][1]]  # the parts it serves
            served = [f"cnn.{p}" for p in letters]
            job = type(base_job)(
                cfg,
                source.identity(cfg),
                # the parts it serves, as its parent's name says them: cnn.a beside cnn.abc (a plain "cnn" read as a
                # stray `cnn train` run among its siblings)
                run_name("cnn." + "".join(letters), variant_title(v), cfg),
                {"mlhw.part": served[0], "mlhw.parts": ",".join(served), "mlhw.variant": v},
                f"Part 2 ({', '.join(letters)}): {variant_title(v)}",
                "mlhw cnn compare",
                parent.run_id,
            )
            bar.update(overall, completed=i, info=f"now {variant_title(v)}")  # (i done: not "variant 1 is Adam")
            # as `cnn train` names it; rich's reset keeps the fields it is not given: the last variant's "loss ..."
            bar.reset(task, total=cfg.epochs, description=variant_title(v), info="", unit="epoch")
            runs[v] = run_cnn(job, store, source, dev, None, on_epoch, precision, compile)
        bar.update(overall, completed=len(names), info="done")
        bests = []  # each part's best variant by val_acc (one shared variant is the same run in each)
        for p in parts:
            _, pair = CNN_PARTS[p]
            rows = [_summary(runs[v]) | {"variant": v} for v in pair]
            table = cnn_table(CNN_PART_SUITES[p], rows, reference=not off)
            table.title += f" on {data.name}{note}"  # its .md's heading, as the reproduction's tables say it
            tables[p] = table.display
            parent.log_result_table(table)  # named as `reproduce` names it: tables/sgd_vs_adam.md and .csv
            if best := headline(table):
                bests.append(best)
            # flagged from the epoch a run diverged at, as the report's figures are
            series = [(variant_title(v), [result_curves(runs[v].result)]) for v in pair]
            figure_title = _compare_title(p, note, base)
            parent.log_figure(
                lambda f, s=series, t=figure_title: cnn_curves_figure(s, f, t), f"figures/{table.name}.png"
            )
        if bests:  # the parent's own number, as `mlp sweep`'s and the suite parents' (its UI charts were empty)
            metric, value, which = max(bests, key=lambda b: b[1])
            parent.log_metrics({metric: value}, step=0)
            parent.set_tags({"mlhw.best": which})
    console = err if as_json else out
    for p in parts:
        console.print(to_rich(tables[p], _compare_title(p, note, base)))
    if not off:
        console.print(
            f"reference: the write-up's single runs. {CNN_TEST_NORMALISATION_NOTE}", highlight=False, soft_wrap=True
        )
    elif data.name == "cifar10":  # digits says so in the title; on CIFAR-10 the settings (or files) that differ
        console.print(
            f"no reference column: not the write-up's setting ({'; '.join(off)})", highlight=False, soft_wrap=True
        )
    where = store.local_file(parent.run_id, f"figures/{SUITE_TABLES[CNN_PART_SUITES[parts[0]]]}.png")
    console.print(
        f"tables and figures: artifacts of MLflow run {parent.run_id[:8]}"
        + (f", on disk in {where.parent.parent}" if where else ""),
        highlight=False,
        soft_wrap=True,
    )
    console.print(tracking_hint(store), highlight=False, soft_wrap=True)
    if as_json:
        for v, r in runs.items():
            emit_json({"variant": v, **_summary(r), "run_id": r.run_id, "dataset": data.name})


def reference_gap(cfg: CNNConfig, files: str) -> list[str]:
    """How a comparison's setting differs from the write-up's (CIFAR-10's official files, 10 epochs, batch 64, the
    paper model on 10% of the pool): empty where its tables may set the write-up's numbers beside their own, as
    REPORT.md decides it (mlhw.findings.base.off_reference). `cnn compare` never showed them, even there."""
    from mlhw.findings import base

    return base.off_reference([cfg.model_dump(mode="json") | {"dataset_files": files}], "cnn")


def _compare_title(part: str, note: str, cfg) -> str:
    """One title for a part's table on the console and its figure: the table said '2 epochs', the figure 'seed 0'.
    Every setting other than the dataset's preset is named, as in the runs' names (mlhw.labels.data_note): a
    `--batch-size 32` or `--width 0.125` comparison was titled as the default one. `note`: the files' (as `mlp train`
    places it, last)."""
    from mlhw.labels import data_note
    from mlhw.reference import CNN_PARTS

    return f"Part 2 ({part}): {CNN_PARTS[part][0]} on {data_note(cfg)}, seed {cfg.seed}{note}"


def _summary(run) -> dict:
    final, cfg = run.result.history[-1], run.job.config
    return {
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "batchnorm": cfg.batchnorm,
        "train_loss": final["train_loss"],
        "val_acc": final["val_acc"],
        "test_acc": run.result.test_acc,
        "diverged_epoch": run.result.diverged_epoch,
        "precision": run.result.precision,
    }
