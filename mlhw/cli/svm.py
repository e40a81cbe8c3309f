"""`mlhw svm`: the SVM theory as solvers (Q1 multiclass hinge loss, Q3 soft SVM with l2 penalty)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlhw.cli.common import (
    DATA,
    TRAIN,
    Download,
    Experiment,
    Json,
    MnistDir,
    SvmSeed,
    TrackingUri,
    config_option,
    emit_json,
    err,
    examples,
    fmt,
    handles_errors,
    out,
    parse_ints,
    prepare,
    progress,
    tracking_hint,
)
from mlhw.config import MulticlassSVMConfig, SoftSVMConfig, build, default_of
from mlhw.errors import MLHWError
from mlhw.labels import data_note, svm_variant

app = typer.Typer(
    no_args_is_help=True,
    help="Q1 and Q3 of the theory part, solved exactly on real data "
    "(the embedded digits by default) and logged to MLflow.",
)

Dataset = Annotated[Optional[str], config_option(SoftSVMConfig, "digits (embedded) or mnist.", "dataset", DATA)]
TrainSize = Annotated[Optional[int], typer.Option(help="Training subset (seeded choice).", rich_help_panel=DATA)]
TestSize = Annotated[Optional[int], typer.Option(help="Test subset (seeded choice).", rich_help_panel=DATA)]
# Q3 keeps the two --classes of the subset: --train-size 500 of MNIST trained on 94 samples, unsaid
PairTrainSize = Annotated[
    Optional[int],
    typer.Option(
        help="Training subset (seeded choice) of every class; the SVM keeps its two --classes (about a fifth).",
        rich_help_panel=DATA,
    ),
]
PairTestSize = Annotated[
    Optional[int],
    typer.Option(
        help="Test subset (seeded choice) of every class; the SVM is tested on its two --classes.", rich_help_panel=DATA
    ),
]


def _files_note(data) -> str:
    from mlhw.data import files_note

    return files_note(data.name, data.files)


def _report(title: str, rows: list[tuple[str, object]], as_json: bool, record: dict, store) -> None:
    import pandas as pd

    from mlhw.tables import to_rich

    cells = [(name, value if isinstance(value, str) else fmt(value, 6)) for name, value in rows]
    console = err if as_json else out
    console.print(to_rich(pd.DataFrame(cells, columns=["quantity", "value"]), title, header=False))
    console.print(tracking_hint(store), highlight=False, soft_wrap=True)
    if as_json:
        emit_json(record)


# Q3's yes/no results: 1.0 and 0.0 in the store (MLflow's metrics are numbers), true and false in --json
SOFT_FLAGS = ("converged", "primal_converged", "qp_dual_success")
LARGE_Q1 = 50_000  # samples x classes from which the exact Q1 says what it solves (digits 12,970; MNIST 500,000)
# samples x features from which Q3 shows its stages as they go (digits 3 vs 8: 18,525; 977 MNIST 3s and 8s: 767,922)
LARGE_Q3 = 100_000


MULTICLASS_EXAMPLES = examples(
    ("Q1 exactly, on all 10 digit classes: f* = 0 and zero training error", "mlhw svm multiclass"),
    (
        "The subgradient method, logged per step; exit 1 unless the theorem holds",
        "mlhw svm multiclass --method subgradient --steps 500 --check",
    ),
    ("Q1 on 2,000 MNIST images from DIR", "mlhw svm multiclass --dataset mnist --data-dir DIR --train-size 2000"),
)


@app.command(epilog=MULTICLASS_EXAMPLES)
@handles_errors
def multiclass(
    dataset: Dataset = None,  # first: every command's help shows its Data panel first
    train_size: TrainSize = None,
    test_size: TestSize = None,
    method: Annotated[
        Optional[str],
        config_option(
            MulticlassSVMConfig,
            "exact (certificate or LP, optimal) or subgradient (descent, logged per step).",
            "method",
        ),
    ] = None,
    bias: Annotated[
        Optional[bool],
        typer.Option(
            "--bias/--no-bias",
            help="Add a constant feature (an offset per class).",
            rich_help_panel=TRAIN,
            show_default="bias",
        ),
    ] = None,
    steps: Annotated[Optional[int], config_option(MulticlassSVMConfig, "Subgradient steps.", "steps")] = None,
    lr: Annotated[Optional[float], config_option(MulticlassSVMConfig, "Subgradient step size.", "lr")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Exit 1 unless the theorem holds: f* = 0 implies zero "
            "training error, and hinge >= 0-1 loss everywhere (a diverged subgradient run tests neither: exit 1).",
        ),
    ] = False,
    seed: SvmSeed = None,
    data_dir: MnistDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Q1: minimise f(W) = mean_i max_j (<w_j,x_i> - <w_y,x_i> + 1\\[j != y]) over all classes.

    f >= 0, so on linearly separable data a W with every margin >= 1 is optimal (f* = 0): the exact
    method looks for one (an L-BFGS softmax fit scaled to margin 1) and otherwise solves the linear
    program with HiGHS. The theorem: such a minimiser has zero training error.
    """
    cfg = build(
        MulticlassSVMConfig,
        "--",
        dataset=dataset,
        train_size=train_size,
        test_size=test_size,
        bias=bias,
        method=method,
        steps=steps,
        lr=lr,
        seed=seed,
    )
    source, store, job = prepare(
        cfg,
        # the subset sizes, the bias, the steps and the seed: runs that differ in them differ by name
        f"svm.q1 · {cfg.method} method{svm_variant(cfg)} ({data_note(cfg)})",
        "svm.q1",
        "mlhw svm multiclass",
        data_dir,
        download,
        tracking_uri,
        experiment,
    )
    data = source.for_config(cfg)
    from mlhw.runs import run_svm_multiclass
    from mlhw.tables import pct

    if cfg.method == "subgradient":
        with progress() as bar:
            task = bar.add_task("subgradient", total=cfg.steps, info="", unit="step")
            done = run_svm_multiclass(
                job,
                store,
                source,
                None,
                lambda s, r: bar.update(task, completed=s, info=f"f {r['objective']:.4g} err {r['train_error']:.4f}"),
            )
    else:
        n, k = len(data.train), data.n_classes
        if n * k > LARGE_Q1:  # it runs silent until solved: say what it is doing, and the way to a smaller one
            typer.echo(
                f"Q1 exactly on {n:,} samples x {k} classes: a W with f = 0 if there is one, else a linear program of "
                f"{n * (k - 1):,} constraints (HiGHS): minutes on a CPU (over 25 near 100,000 constraints); "
                "--train-size N solves a subset",
                err=True,
            )
            with progress() as bar:  # on a terminal, a pulsing bar and the time it has taken (HiGHS says nothing)
                task = bar.add_task("Q1 exact", total=None, info="solving", count=False)
                done = run_svm_multiclass(job, store, source)
                bar.update(task, total=1, completed=1, info=done.result["method"])
        else:
            done = run_svm_multiclass(job, store, source)
    rep = done.result | {"run_id": done.run_id}
    from mlhw.tables import Q1_METHODS
    from mlhw.theory import q1_holds

    # a diverged subgradient (f inf or nan) tests neither claim: nan > 0 is false, and it read "theorem holds: NO"
    holds = None if "diverged_step" in rep else q1_holds(rep)
    f_label = "f* = min mean hinge" if cfg.method == "exact" else f"mean hinge after {rep['steps']} steps"
    _report(
        f"Q1 multiclass hinge on {data.name}{_files_note(data)} "
        f"({len(data.train):,} train / {len(data.test):,} test, {data.n_classes} classes{svm_variant(cfg)})",
        [
            (f_label, rep["objective"]),
            ("method", Q1_METHODS.get(rep["method"], rep["method"])),  # 'certificate' alone was jargon
            ("training error", pct(rep["train_error"])),
            ("test error", pct(rep["test_error"])),
            ("samples with 0-1 > hinge", rep["bound_violations"]),
            ("seconds", f"{rep['seconds']:.2f}"),
            ("theorem holds", _holds_text(holds, rep)),
            ("run id", rep["run_id"]),
        ],
        as_json,
        {"part": "svm.q1", "dataset": data.name, **rep},
        store,
    )
    if check and not holds:
        raise typer.Exit(1)


def _classes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    values = tuple(parse_ints(text, "--classes", "two class labels, e.g. 3,8"))
    if len(values) != 2:
        raise MLHWError(f"--classes {text!r}: a binary SVM needs exactly two classes, e.g. 3,8")
    return values


SOFT_EXAMPLES = examples(
    (
        "Q3 on digits 3 vs 8, C = 1: primal, dual, duality gap, KKT, Q3(a), liblinear",
        "mlhw svm soft --classes 3,8 -C 1",
    ),
    ("Another pair, a larger C", "mlhw svm soft --classes 1,7 -C 10"),
    ("The bias folded into the features, as liblinear does", "mlhw svm soft --bias regularized"),
    (
        "On MNIST from DIR: 2,000 images drawn, the SVM keeps their 3s and 8s",
        "mlhw svm soft --dataset mnist --data-dir DIR --train-size 2000",
    ),
)


@app.command(epilog=SOFT_EXAMPLES)
@handles_errors
def soft(
    classes: Annotated[
        Optional[str],
        typer.Option(
            help="The two classes, comma-separated: the first is +1, the second -1.",
            rich_help_panel=DATA,
            show_default=",".join(map(str, SoftSVMConfig().classes)),
        ),
    ] = None,
    C: Annotated[
        Optional[float],
        typer.Option(
            "--C",
            help="Weight of the squared slacks, C/2 sum xi^2 (-C for short): from 1e-5 to 1e15 (beyond, the solvers' "
            "float64 gives out).",
            rich_help_panel=TRAIN,
            show_default=default_of(SoftSVMConfig, "C"),
        ),
    ] = None,
    # -C: an option of its own, hidden, for the help to show one name: as a second name of --C it read '--C  -C'
    C_short: Annotated[Optional[float], typer.Option("-C", hidden=True, rich_help_panel=TRAIN)] = None,
    bias: Annotated[
        Optional[str],
        config_option(
            SoftSVMConfig,
            "free (the assignment's unregularised b), regularized (b folded into the features, as liblinear does) "
            "or none.",
            "bias",
        ),
    ] = None,
    dataset: Dataset = None,
    train_size: PairTrainSize = None,
    test_size: PairTestSize = None,
    seed: SvmSeed = None,
    data_dir: MnistDir = None,
    download: Download = None,
    tracking_uri: TrackingUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
):
    """Q3: min 1/2||w||^2 + C/2 sum xi_i^2 s.t. y_i(<w,x_i> + b) >= 1 - xi_i, primal and dual.

    The primal (Newton) and the dual max g(alpha, beta), sum alpha_i y_i = 0, alpha, beta >= 0 (active set;
    the write-up's multipliers, not the bias b) are solved independently; the report gives both objectives,
    the duality gap, the KKT residuals (w = sum alpha_i y_i x_i, the bias b from the dual, xi = (alpha + beta)/C,
    beta = 0 at the optimum, complementary slackness), Q3(a) (the same optimum with xi >= 0 added) and the
    agreement with scikit-learn's liblinear on the same objective. Above 6,000 samples the dual is not solved (the
    table says so); above 1,000 samples + features Q3(a) and Q3(d) are checked on a 120-sample sub-problem.
    """
    # --C and -C both given is refused before this, by the CLI's check of an option given twice (cli/__init__.py)
    cfg = build(
        SoftSVMConfig,
        "--",
        dataset=dataset,
        classes=_classes(classes),
        C=C if C is not None else C_short,
        bias=bias,
        train_size=train_size,
        test_size=test_size,
        seed=seed,
    )
    name = f"svm.q3 · {cfg.classes[0]} vs {cfg.classes[1]}, C={cfg.C:g}{svm_variant(cfg)} ({data_note(cfg)})"
    source, store, job = prepare(cfg, name, "svm.q3", "mlhw svm soft", data_dir, download, tracking_uri, experiment)
    data = source.for_config(cfg)
    import numpy as np

    from mlhw.runs import run_svm_soft
    from mlhw.svm import soft_failure, soft_skipped, soft_stages
    from mlhw.tables import pct

    n, q = int(np.isin(data.train.y, cfg.classes).sum()), data.train.x[0].size + (cfg.bias != "none")
    if n * q > LARGE_Q3:  # minutes on a CPU at MNIST's size: the stages as they go, not silence
        stages = soft_stages(n, q)
        with progress() as bar:
            task = bar.add_task("Q3 soft SVM", total=len(stages), info="", unit="stage")
            done = run_svm_soft(
                job, store, source, on_stage=lambda i, what: bar.update(task, completed=i, info=f"now {what}")
            )
            bar.update(task, completed=len(stages), info="done")
    else:
        done = run_svm_soft(job, store, source)
    rep = done.result | {"run_id": done.run_id}
    rows = [("training samples (its two classes)", rep["n_train"])]
    rows += [("test samples", rep["n_test"])] if "n_test" in rep else []
    rows += [("primal objective (Newton)", rep["primal_objective"])]
    if "dual_objective" in rep:
        rows += [
            ("dual objective (active set)", rep["dual_objective"]),
            ("duality gap (relative)", rep["duality_gap"]),
            ("|w - sum alpha_i y_i x_i| / |w|", rep["w_residual"]),
        ]
        if cfg.bias != "none":  # the dual's b: the multiplier of sum alpha_i y_i = 0, or the bias feature's weight
            rows += [("|b (Newton) - b (from the dual)|", rep["bias_residual"])]
        rows += [
            ("max |xi - alpha/C| (beta = 0: Q3(d))", rep["xi_residual"]),
            # the constraint of a free bias alone: with another the run logs 0 for it, which read as a check passed
            (
                "sum alpha_i y_i (free bias: 0)",
                rep["equality_residual"] if cfg.bias == "free" else f"- (bias {cfg.bias}: no such constraint)",
            ),
            ("Newton and the active set converged", _converged_text(rep)),
            ("complementary slackness", rep["complementary_slackness"]),
            ("support vectors", rep["support_vectors"]),
        ]
    elif (skipped := soft_skipped(rep["n_train"])) is not None:
        rows += [
            ("Newton converged", "yes" if rep["primal_converged"] else "NO"),
            ("dual, duality gap, KKT residuals", skipped),
        ]
    if "qp_dual_max_beta" in rep:
        rows += [(f"Q3(d): max beta / max(1, max alpha), general QP (n={rep['qp_dual_n']})", rep["qp_dual_max_beta"])]
        rows += [
            (f"Q3(d): its max g vs the active set's (n={rep['qp_dual_n']}), rel. diff", rep["qp_dual_vs_active_set"])
        ]
    if "q3a_relative_difference" in rep:
        on = "" if rep.get("qp_n", rep["n_train"]) == rep["n_train"] else f" (n={rep['qp_n']})"
        rows += [(f"Q3(a): optimum with xi >= 0, rel. diff{on}", rep["q3a_relative_difference"])]
        # the two QPs above against Newton: they could agree with each other and both stop short
        rows += [(f"Q3(a): the QP's optimum vs Newton's, rel. diff{on}", rep["qp_vs_newton_relative_difference"])]
    rows += [
        (LIBLINEAR_ROWS[cfg.bias], rep["liblinear_relative_difference"]),
        ("residuals within tolerance", _q3_verdict(rep, cfg.bias)),
        ("training error", pct(rep["train_error"])),
        ("test error", pct(rep["test_error"])),
        ("run id", rep["run_id"]),
    ]
    _report(
        f"Q3 soft SVM on {data.name}{_files_note(data)}: {cfg.classes[0]} vs {cfg.classes[1]}, "
        f"C = {cfg.C:g}, bias {cfg.bias}",
        rows,
        as_json,
        {"part": "svm.q3", "dataset": data.name, **rep} | {k: bool(rep[k]) for k in SOFT_FLAGS if k in rep},
        store,
    )
    why = soft_failure(rep)  # its numbers are not an optimum: a script must not take them as one
    if why:
        typer.echo(f"error: {why}", err=True)
        raise typer.Exit(1)


# liblinear penalises its bias: a free bias is compared on the bias-penalised variant of the problem, both sides
# (runs.run_svm_soft's liblinear_formulation); the row read "liblinear (regularized bias)" there and "(none bias)"
LIBLINEAR_ROWS = {
    "free": "liblinear, on this problem with b penalised, rel. diff",
    "regularized": "liblinear (b penalised), rel. diff",
    "none": "liblinear (no bias), rel. diff",
}


# Each residual the table shows, with the tolerance `mlhw theory` holds it to (theory.check_q3), so that the table
# says what it verified and against what: a column of 1e-15s beside one 9e-10 left the reader to judge them.
# Spelt here (the solvers are not imported to start the CLI); a test holds each to theory.check_q3's and svm's
Q3_TOLERANCES = (
    ("duality gap", "duality_gap", 1e-8),  # svm.GAP_TOLERANCE, the exit code's rule (theory: 1e-10 on its data)
    ("w", "w_residual", 1e-8),
    ("b", "bias_residual", 1e-8),
    ("xi", "xi_residual", 1e-8),
    ("sum alpha_i y_i", "equality_residual", 1e-8),
    ("slackness", "complementary_slackness", 1e-8),
    ("Q3(a)", "q3a_relative_difference", 1e-8),
    ("Q3(a) vs Newton", "qp_vs_newton_relative_difference", 1e-8),
    ("Q3(d) vs active set", "qp_dual_vs_active_set", 1e-8),
    ("beta", "qp_dual_max_beta", 1e-6),
    ("liblinear", "liblinear_relative_difference", 1e-6),
)


def _q3_verdict(rep: dict, bias: str = "free") -> str:
    """'yes' when every residual the run computed is within its tolerance; else 'NO: ...' naming the first that is
    not (NaN fails). A residual the run did not compute (no dual above 6,000 samples) is not judged, and a 'yes'
    names what it judged: it said 'all within 1e-8' with the gap and the KKT residuals skipped. A residual the
    formulation has none of (SoftSVMConfig.absent_residuals: sum alpha_i y_i without a free bias) is neither judged
    nor missed. The tolerances are read from Q3_TOLERANCES (the 'yes' spelt them again)."""
    applicable = [
        (name, key, tol) for name, key, tol in Q3_TOLERANCES if key not in SoftSVMConfig(bias=bias).absent_residuals
    ]
    judged = [(name, key, tol) for name, key, tol in applicable if key in rep]
    for name, key, tol in judged:
        if not abs(rep[key]) <= tol:
            return f"NO: {name} {abs(rep[key]):.1e} > {tol:g}"
    by_tol: dict[float, list[str]] = {}
    for name, _, tol in judged:
        by_tol.setdefault(tol, []).append(name)
    if not by_tol:
        return "-"
    main, *others = sorted(by_tol, key=lambda t: -len(by_tol[t]))
    first = "all" if len(judged) == len(applicable) else ", ".join(by_tol[main])

    def short(t: float) -> str:  # 1e-8, as README and the row wrote it
        return f"{t:g}".replace("e-0", "e-")

    rest = "; ".join(f"{', '.join(by_tol[t])}: {short(t)}" for t in others)
    return f"yes: {first} within {short(main)}" + (f" ({rest})" if rest else "")


def _converged_text(rep: dict) -> str:
    """Both solvers' own stopping tests; 'yes' beside a failing gap read as a certificate (C = 1e15 on 4 samples:
    both stopped, Newton 3% above the optimum, where float64 cannot resolve its Hessian)."""
    from mlhw.svm import GAP_TOLERANCE

    if not rep["converged"]:
        return "NO"
    return "yes" if abs(rep["duality_gap"]) <= GAP_TOLERANCE else "each by its own test, yet they disagree: the gap"


def _holds_text(holds: bool | None, rep: dict) -> str:
    """'yes' says which of Q1's claims this run could test: with f > 0 the premise of 'f = 0 => zero training
    error' never arises, so the bound (0-1 loss <= hinge, sample by sample) is what was checked. None: diverged."""
    if holds is None:
        return f"not tested: the subgradient method diverged at step {rep['diverged_step']} (a smaller --lr)"
    if not holds:
        return "NO"
    if rep["objective"] <= 0:
        return "yes (f = 0 and zero training error; 0-1 <= hinge)"
    return "yes (f > 0: only 0-1 <= hinge, sample by sample, applies)"
