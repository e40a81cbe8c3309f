"""Run configurations: one pydantic model per kind of run, the one source of truth for a run's definition.

A config holds what defines a result: every default (including the per-dataset presets of Part 2) and
every constraint (finite positive rates, seeds in numpy's range, AlexNet's minimum input size) lives
here. The CLI and experiments.yaml only override fields; nothing else repeats a default.

Where the data lives, which device runs it and where it is tracked are runtime options, not config.
`identity(cfg, fingerprint)` is the one identity of a run: every command and `reproduce` use it. It covers
the code that computes the run too (`code_digest`): a run of other code is not taken as done.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from mlhw.errors import MLHWError, as_written, format_validation_error
from mlhw.topology import MIN_IMAGE_SIZE, MIN_WIDTH

# A learning rate or step size: finite and > 0 (inf and nan are refused).
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# A seed both numpy (RandomState: 0 <= seed < 2**32) and torch accept.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Dataset = Literal["digits", "mnist", "cifar10"]


def _base_types(annotation) -> set:
    """The plain types a field's annotation comes down to (int for `PositiveInt | None`, {int} for a tuple of
    them); a Literal's values count as their own types, so a field of names is not taken for a number."""
    if annotation is type(None):
        return set()
    if get_origin(annotation) is Literal:
        return {type(a) for a in get_args(annotation)}
    args = get_args(annotation)
    if not args:
        return {annotation} if isinstance(annotation, type) else set()
    if get_origin(annotation) is Annotated:
        return _base_types(args[0])
    return set().union(*(_base_types(a) for a in args if a is not Ellipsis))


def _numeric(text: str) -> bool:
    """A numeral as one writes it ('5', '0.1', '5e-5'): quoted, it is a string. (YAML's unquoted inf and nan are
    strings too, spelled .inf and .nan there: pydantic's own message says what is wrong with them.)"""
    return re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*", text) is not None


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = ""  # set by each subclass; part of the identity, never set by users

    @field_validator("*", mode="before")
    @classmethod
    def _types_as_written(cls, v: Any, info) -> Any:
        """A value of the wrong type is refused, not converted: pydantic would read YAML's `epochs: true` as 1
        epoch, `epochs: "5"` or `C: ["1"]` (quoted) as numbers, and `bias: 1` as true."""
        values = v if isinstance(v, list | tuple) else [v]
        kinds = _base_types(cls.model_fields[info.field_name].annotation)
        if any(isinstance(x, bool) for x in values) and bool not in kinds and kinds & {int, float}:
            raise ValueError("must be a number, not a boolean")  # a text field's (dtype: false): pydantic's words
        if kinds == {bool} and not isinstance(v, bool):
            raise ValueError("must be true or false")
        if kinds and kinds <= {int, float} and any(isinstance(x, str) and _numeric(x) for x in values):
            raise ValueError("must be a number, not a string: write it without quotes")  # any other: pydantic's words
        return v

    def to_params(self) -> dict[str, Any]:
        """The run's MLflow params: what it reads. A field it does not read (the exact Q1's lr and steps) is left
        out, and a subset size of None, the whole split, is 'all' (the UI showed lr=1.0, steps=2000 and 'None')."""
        values = self.model_dump(mode="json", exclude={"kind"})
        unread = type(self).unused(values)
        return {
            k: ("all" if v is None and k.endswith("_size") else v)
            for k, v in values.items()
            if k not in unread and (v is not None or k.endswith("_size"))
        }

    # field -> (the field that decides whether a run reads it, that field's value with which it does not, why)
    UNREAD_WHEN: ClassVar[dict[str, tuple[str, str, str]]] = {}

    @classmethod
    def unused(cls, values: dict) -> dict[str, str]:
        """The fields that a run of these values does not read, each with why: such a field keeps its default, so
        that a value nothing reads neither shows in the run's params nor makes a second identity of one run."""
        return {
            k: why
            for k, (decider, off, why) in cls.UNREAD_WHEN.items()
            if (values.get(decider) or cls.model_fields[decider].default) == off
        }

    @model_validator(mode="before")
    @classmethod
    def _drop_unused(cls, values: Any) -> Any:
        """An unused field's value is dropped only when it is one the field takes: a bad one (momentum 7) is kept,
        so that the field's own check refuses it (experiments.yaml is checked whole, read or not)."""
        if isinstance(values, dict):
            unused = cls.unused(values)
            values = {k: v for k, v in values.items() if k not in unused or not cls._takes(k, v)}
        return values

    @classmethod
    def _takes(cls, name: str, value: Any) -> bool:
        from pydantic import TypeAdapter

        info = cls.model_fields[name]
        if isinstance(value, bool):  # YAML's true is no number (see _types_as_written)
            return False
        try:
            TypeAdapter(Annotated[info.annotation, *info.metadata]).validate_python(value)
        except ValidationError:
            return False
        return True


def identity_version(cfg: _Config) -> int:
    """Bumped, per kind of run, when the same config and dataset come to mean another computation, so that the
    runs of the old one are not taken as done. Only those: a bump reruns every run it covers (AlexNet's are
    GPU-hours). 2 (2026-11-27): a run with a subset (its test subset is drawn after seeding again, as the course's
    loader does: mlhw.data.subset); theory and the soft SVM (Q3(d)'s dual solved over alpha and beta, new checks).
    3 (2026-11-27): theory (Q3(b)'s check that L has no minimum unless sum a_i y_i = 0)."""
    if cfg.kind == "theory":
        return 3
    if cfg.kind == "svm_soft":
        return 2
    if getattr(cfg, "train_size", None) is not None or getattr(cfg, "test_size", None) is not None:
        return 2
    return 1


# Where each kind of run's numbers are computed: its entry module, and every mlhw module that one imports, at any
# depth (core_modules). An edit of one makes that kind's runs new runs: a student who broke the backprop got "up to
# date" and the old results. Found from the imports, not listed by hand: a hand list left mlp.py out of theory's,
# whose backprop check runs mlp.Network, and the SVMs' design matrix was built outside every listed module.
CORE_ENTRY = {"mlp": "mlp", "cnn": "cnn", "svm_multiclass": "svm", "svm_soft": "svm", "theory": "theory"}
# imported by core modules, computing no number: a config's values are in the identity already; errors holds
# exception classes; fingerprint_cache keeps dataset fingerprints between processes
NOT_NUMERIC = frozenset({"config", "errors", "fingerprint_cache"})


class _NoMessages(ast.NodeTransformer):
    """Blanks the strings of a raise statement: an error's wording computes nothing, and rewording one in data.py
    made every run, AlexNet's GPU-hours included, a new run."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.Constant:
        return ast.Constant("")

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def _as_code(tree: ast.Module) -> ast.Module:
    """A syntax tree without what computes nothing: docstrings and the messages of raise statements."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        elif isinstance(node, ast.Raise) and node.exc is not None:
            node.exc = _NoMessages().visit(node.exc)
    return tree


def source_digest(source: str) -> str:
    """A digest of a Python source as code (_as_code): comments, docstrings, formatting and error messages do not
    count, and any change to what the code computes does."""
    return _tree_digest(ast.parse(source))


def _tree_digest(tree: ast.Module) -> str:
    """source_digest of one parsed module (its tree is changed)."""
    return hashlib.sha256(ast.dump(_as_code(tree)).encode()).hexdigest()[:12]


def _mlhw_imports(tree: ast.Module) -> frozenset[str]:
    """The mlhw modules a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mlhw":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlhw."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("mlhw.")}
    return frozenset(found)


@functools.cache
def _module_code(module: str) -> tuple[str, frozenset[str]]:
    """One of mlhw's modules' source_digest and mlhw imports (each file read and parsed once a process); ('', {})
    where it cannot be read."""
    try:
        tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
        imports = _mlhw_imports(tree)  # before _as_code changes the tree
        return _tree_digest(tree), imports
    except (OSError, SyntaxError, ValueError):
        return "", frozenset()


def _module_digest(module: str) -> str:
    return _module_code(module)[0]


def core_modules(kind: str) -> tuple[str, ...]:
    """The modules that compute a kind of run's numbers: CORE_ENTRY's and what it imports, but NOT_NUMERIC."""
    todo, found = [CORE_ENTRY[kind]] if kind in CORE_ENTRY else [], set()
    while todo:
        module = todo.pop()
        if module not in found and module not in NOT_NUMERIC:
            found.add(module)
            todo += _module_code(module)[1]
    return tuple(sorted(found))


def code_digest(kind: str) -> str:
    """The digest of the code that computes a kind of run (core_modules), from mlhw's source files; '' where
    they cannot be read (an install without sources: the config and the data alone identify its runs)."""
    digests = {m: _module_digest(m) for m in core_modules(kind)}
    parts = "|".join(f"{m}:{d}" for m, d in digests.items())
    return hashlib.sha256(parts.encode()).hexdigest()[:12] if digests and all(digests.values()) else ""


def identity(cfg: _Config, fingerprint: str) -> str:
    """The one identity of a run: its resolved config, the fingerprint of the dataset it reads and the code that
    computes it (code_digest).

    A run's subsets and splits are functions of its config and the dataset, so the dataset's own
    fingerprint is enough. `reproduce` skips a run whose identity has a FINISHED run in the store.
    """
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True) + "|" + fingerprint
    if (version := identity_version(cfg)) > 1:
        blob += f"|v{version}"
    if code := code_digest(cfg.kind):
        blob += f"|code {code}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build(model: type[_Config], prefix: str = "--", **values) -> _Config:
    """Validate values into a config (None = the config's default); a bad value becomes a one-line
    MLHWError naming the option or key, e.g. `--lr: must be finite and > 0 (got inf)`. An option the run would
    not read (`--momentum 0.9` with Adam) is refused, not dropped: the user asked for something that cannot be."""
    given = {k: v for k, v in values.items() if v is not None}
    for k, why in model.unused(given).items():
        if k in given and given[k] != model.model_fields[k].default:
            name = f"{prefix}{k.replace('_', '-') if prefix == '--' else k}"
            raise MLHWError(f"{name} {as_written(given[k])}: not used here ({why})")
    try:
        return model(**given)
    except ValidationError as err:
        raise MLHWError(format_validation_error(err, prefix)) from None


class MLPConfig(_Config):
    """Part 1: the hand-written backprop MLP (defaults: part (c) on the embedded digits)."""

    kind: Literal["mlp"] = "mlp"
    dataset: Literal["digits", "mnist"] = "digits"
    train_size: PositiveInt | None = Field(None, description="subset of the training pool (None = all)")
    test_size: PositiveInt | None = Field(None, description="subset of the test set (None = all)")
    hidden: tuple[PositiveInt, ...] = Field((40,), min_length=1)  # no hidden layer is no MLP: one at least
    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: PositiveInt = 10
    lr: Rate = 0.1
    seed: Seed = 8
    dtype: Literal["float32", "float64"] = "float32"

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_width(cls, v: Any) -> Any:
        """`hidden: 40` in YAML (or --set) is one hidden layer, as `--hidden 40` is on the command line."""
        return (v,) if isinstance(v, int) and not isinstance(v, bool) else v

    def batch_key(self) -> str:
        """Runs that differ only in the seed and the learning rate train together as one batched
        computation (mlhw.mlp.train_mlp_groups): equal keys, one unit of work."""
        return json.dumps(self.model_dump(mode="json", exclude={"lr", "seed"}), sort_keys=True)


class MulticlassSVMConfig(_Config):
    """Q1: minimise the multiclass hinge objective on every class of a dataset."""

    kind: Literal["svm_multiclass"] = "svm_multiclass"
    dataset: Literal["digits", "mnist"] = "digits"
    train_size: PositiveInt | None = None
    test_size: PositiveInt | None = None
    bias: bool = True  # a constant feature, so that each w_j has an offset
    method: Literal["exact", "subgradient"] = "exact"
    steps: PositiveInt = 2000  # subgradient steps
    lr: Rate = 1.0  # subgradient step size
    seed: Seed = 8

    UNREAD_WHEN = {
        "steps": ("method", "exact", "the exact method takes no steps; method subgradient does"),
        "lr": ("method", "exact", "the exact method takes no step size; method subgradient does"),
    }


# C=1e15 solves digits 3 vs 8 exactly; C=1e300 overflowed to an objective of inf with a "converged" solver
MAX_C = 1e15
# Below 1e-5 the optimum (w near 0, every sample inside the margin: 49.6% training error on digits 3 vs 8 from 1e-5
# down) sinks under the solvers' absolute tolerances: C=1e-6 failed Q3(d)'s check (beta = 1 from the general QP),
# C=1e-10 counted 0 support vectors, and C=1e-300 a dual above its primal, each beside "converged: yes"
MIN_C = 1e-5


class SoftSVMConfig(_Config):
    """Q3: binary soft SVM with an l2 penalty on the slacks, one class against another."""

    kind: Literal["svm_soft"] = "svm_soft"
    dataset: Literal["digits", "mnist"] = "digits"
    classes: tuple[int, int] = (3, 8)
    C: Rate = 1.0

    @field_validator("C")
    @classmethod
    def _c_in_float64(cls, v):
        if v > MAX_C:
            raise ValueError(f"must be <= {MAX_C:g}: beyond it C x slack^2 overflows float64 (the objective read inf)")
        if v < MIN_C:
            raise ValueError(
                f"must be >= {MIN_C:g}: below it w is near 0, every sample a margin violator, and the optimum under "
                "the solvers' tolerances (their checks fail falsely)"
            )
        return v

    bias: Literal["free", "regularized", "none"] = "free"
    train_size: PositiveInt | None = None
    test_size: PositiveInt | None = None
    seed: Seed = 8

    @property
    def absent_residuals(self) -> frozenset[str]:
        """The KKT residuals of mlhw.svm.soft_report that this formulation has no constraint for (the report holds 0
        for them): sum alpha_i y_i = 0 is a free bias's constraint, and without a bias there is no b to recover."""
        return frozenset(
            ({"equality_residual"} if self.bias != "free" else set())
            | ({"bias_residual"} if self.bias == "none" else set())
        )

    @field_validator("classes")
    @classmethod
    def _two_different(cls, v):
        if v[0] == v[1]:
            raise ValueError("needs two different classes")
        if not all(0 <= c <= 9 for c in v):
            raise ValueError("classes are digits 0..9")
        return v


# Part 2's presets per dataset: the paper model (width 1, 227 px, 10% of the 45,000-image pool: the
# reference runs' 4,500 images) on CIFAR-10; on digits the same topology at half width and its minimum
# input size, on the whole (small) pool, so that it runs on a CPU in seconds.
CNN_PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {"width": 1.0, "image_size": 227, "train_fraction": 0.1},
    "digits": {"width": 0.5, "image_size": MIN_IMAGE_SIZE, "train_fraction": 1.0},
}


# Part 2's learning rate per optimizer when none is given: the assignment's (a) pair, SGD 0.005 and Adam 5e-5
# (Adam's 5e-5 would barely move plain SGD).
CNN_DEFAULT_LR: dict[str, float] = {"sgd": 0.005, "adam": 5e-5}


class CNNConfig(_Config):
    """Part 2: one AlexNet variant. width, image_size and train_fraction default to the dataset's preset
    (CNN_PRESETS); width 1 and image_size 227 are the paper's model exactly."""

    kind: Literal["cnn"] = "cnn"
    dataset: Literal["digits", "cifar10"] = "digits"
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: Rate = Field(...)  # CNN_DEFAULT_LR[optimizer] when not given
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    batchnorm: bool = True
    dropout: bool = True
    epochs: int = Field(10, ge=1, le=100_000)
    batch_size: PositiveInt = 64
    width: float = Field(..., gt=0, le=16, allow_inf_nan=False)
    image_size: int = Field(..., ge=MIN_IMAGE_SIZE, le=1024)
    train_fraction: float = Field(..., gt=0.0, le=1.0)
    seed: Seed = 0

    @field_validator("width")
    @classmethod
    def _a_channel_each(cls, v):
        if v < MIN_WIDTH:
            raise ValueError(
                f"must be >= 1/96 ({MIN_WIDTH:.4g}): narrower, AlexNet's 96-channel layer keeps less than one channel"
            )
        return v

    UNREAD_WHEN = {"momentum": ("optimizer", "adam", "Adam has no momentum; optimizer sgd reads it")}

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, values: Any) -> Any:
        if isinstance(values, dict):
            # an unknown dataset takes digits' sizes: its one error is the dataset's, not three "Field required"
            preset = CNN_PRESETS.get(values.get("dataset", "digits"), CNN_PRESETS["digits"])
            lr = CNN_DEFAULT_LR.get(values.get("optimizer") or "adam", CNN_DEFAULT_LR["adam"])
            # only absent keys: a null given is refused as MLPConfig's are (build() drops the options not given)
            values = {**preset, "lr": lr, **values}
        return values


class TheoryConfig(_Config):
    """Q1-Q4 checks; `digits` adds the checks on the embedded digits to the generated data."""

    kind: Literal["theory"] = "theory"
    digits: bool = True

    @property
    def dataset(self) -> str | None:
        return "digits" if self.digits else None


KINDS: dict[str, type[_Config]] = {
    "mlp": MLPConfig,
    "cnn": CNNConfig,
    "svm_multiclass": MulticlassSVMConfig,
    "svm_soft": SoftSVMConfig,
    "theory": TheoryConfig,
}


def user_fields(kind: str) -> set[str]:
    """The fields a user may set for a kind of run (everything but `kind`)."""
    return set(KINDS[kind].model_fields) - {"kind"}


def default_of(model: type[_Config], name: str) -> str:
    """A field's default as --help shows it (presets: per dataset)."""
    if model is CNNConfig and name in CNN_PRESETS["digits"]:
        return ", ".join(f"{p[name]:g} for {d}" for d, p in CNN_PRESETS.items())
    if model is CNNConfig and name == "lr":
        return ", ".join(f"{lr:g} for {o}" for o, lr in CNN_DEFAULT_LR.items())
    value = model.model_fields[name].default
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
