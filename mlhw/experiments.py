"""experiments.yaml: suites and profiles, validated on load, expanded into a list of runs.

Nothing runs on an invalid file: every error names the file, the key path and the bad value, e.g.
`experiments.yaml: profiles.ci.suites.mlp_full.base.lr: Input should be greater than 0 (got -1)`.

Precedence, lowest first: the suite's base < the profile's defaults < the profile's override of the
suite < `--set`. A grid is the cartesian product of its lists; `seeds` multiplies it once more. A grid (or a CNN
variant, or `seeds`) sets its field in every run, so a `--set` that no run takes is refused.
"""

from __future__ import annotations

import collections.abc
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mlhw.config import KINDS, user_fields
from mlhw.errors import (
    MLHWError,
    as_written,
    float_beyond_range,
    format_validation_error,
    path_errors,
    refuse_empty,
    yaml_error,
)
from mlhw.errors import message as _message
from mlhw.layout import PARTIAL_SUFFIX
from mlhw.reference import CNN_VARIANTS, canonical_variant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuiteOverride(_Strict):
    base: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    # checked by _check_layers, as --set's are: pydantic's list[int] read ["8", 9.0, true] as seeds 8, 9 and 1
    seeds: Any = None

    @field_validator("grid")
    @classmethod
    def _a_grid_varies_something(cls, value):
        if not value:  # `grid: {}` ran as no grid, where `grid: {lr: []}` is refused: a grid left half-written
            raise ValueError("empty grid: give a field and its list of values (grid: {lr: [0.01, 0.1]}), or no grid")
        return value


# the parts of the assignment a suite of each kind can be (its runs' mlhw.part tag: the UI's filter)
PARTS = {
    "mlp": ("mlp.a", "mlp.b", "mlp.c"),
    "cnn": ("cnn.a", "cnn.b", "cnn.c"),
    "svm_multiclass": ("svm.q1",),
    "svm_soft": ("svm.q3",),
    "theory": ("theory",),
}


class SuiteSpec(SuiteOverride):
    kind: Literal["mlp", "cnn", "svm_multiclass", "svm_soft", "theory"]
    part: str
    description: str = ""

    @model_validator(mode="after")
    def _part_of_its_kind(self):
        if self.part not in PARTS[self.kind]:
            raise ValueError(f"part {self.part!r}: a suite of kind {self.kind} is one of {', '.join(PARTS[self.kind])}")
        return self


class ProfileSpec(_Strict):
    description: str = ""
    # the worker processes `mlhw reproduce` uses for this profile when --jobs is not given (executors.auto_jobs for
    # auto): a profile of runs that take seconds says 1, since each worker's start-up costs more than it saves
    jobs: int | str = "auto"
    defaults: dict[str, Any] = {}
    suites: dict[str, SuiteOverride] = {}

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value):
        if isinstance(value, str) and value.strip().lower() == "auto":  # as --jobs reads it
            return "auto"
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError("a number of worker processes (1 or more) or auto")


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# a suite's name is a file's, tables/<suite>.csv (an added suite's table), and the first part of --set SUITE.KEY
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


class ExperimentsFile(_Strict):
    version: Literal[1] = 1
    suites: dict[str, SuiteSpec]
    profiles: dict[str, ProfileSpec]


@dataclass
class RunSpec:
    """One run of the plan: its suite, its validated config and a short label."""

    suite: str
    kind: str
    part: str
    config: Any
    label: str
    variant: str | None = None
    where: dict[str, str] = field(default_factory=dict)  # field -> where its value was set, for error messages

    def culprit(self, key: str) -> str:
        return self.where.get(key, f"suites.{self.suite}.base.{key}")


FILE = "experiments.yaml"
# the project's experiments.yaml as the wheel ships it (pyproject.toml's force-include): installed from the wheel
# (`pip install`, `uv tool install`), mlhw had no experiments.yaml beside it, and its first command, `mlhw reproduce`,
# failed in any folder but a checkout of the repository
INSTALLED_FILE = Path(__file__).with_name(FILE)


def default_file() -> str:
    """The experiments file `mlhw reproduce` reads without --file: experiments.yaml in the working folder (a checkout's,
    or the user's own), else the copy installed with mlhw; else experiments.yaml, which load_file says is missing.
    A link here whose file is gone is the user's file too (load_file says it is missing): it ran the installed copy's
    profiles in its place, its report written where the user's was expected."""
    try:
        if Path(FILE).exists() or Path(FILE).is_symlink() or not INSTALLED_FILE.is_file():
            return FILE
    except OSError:  # a working folder that cannot be searched: load_file names it
        return FILE
    return str(INSTALLED_FILE)


# the committed baselines (results/<profile>/tables/*.csv and check.yaml) as the wheel ships them, beside that copy:
# installed, a first reproduction in a new folder was checked against nothing, and `mlhw check` then against the
# report it had just written (a check that cannot fail)
BASELINES = Path(__file__).with_name("baselines")


def shipped_baseline(file: str | Path, profile: str) -> Path | None:
    """The baseline shipped with mlhw for `profile`, where `file` is the experiments file shipped beside it (a user's
    own file may define the profile otherwise: it is checked against nothing, as in a new checkout); else None."""
    try:
        if Path(file).resolve() != INSTALLED_FILE.resolve() or not (BASELINES / profile / "tables").is_dir():
            return None
    except OSError:
        return None
    return BASELINES / profile


def file_words(path: str) -> str:
    """How a hint names the experiments file default_file gave: a user of the installed copy has no file here."""
    return f"{FILE} here" if path == FILE else f"the {FILE} installed with mlhw"


def load_file(path: str | Path = "experiments.yaml") -> ExperimentsFile:
    refuse_empty("--file", path, "experiments.yaml")  # (Path('') is '.': "'.: is a directory", --file unnamed)
    path = Path(path)
    with path_errors(f"--file {path}", path):
        if path.is_dir():
            raise MLHWError(f"{path}: is a directory, not an experiments file (pass --file the YAML file itself)")
        if path.exists() and not path.is_file():  # a FIFO would block the read, a device has no YAML
            raise MLHWError(f"{path}: not a regular file (pass --file the YAML file itself)")
        if not path.is_file():
            raise MLHWError(f"{path}: no such file (run from the project folder, or pass --file)")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise MLHWError(f"{path}: expected a mapping with 'suites' and 'profiles'")
    try:
        spec = ExperimentsFile.model_validate(raw)
    except ValidationError as err:
        raise MLHWError(f"{path}: {format_validation_error(err, model=ExperimentsFile)}") from None
    # a profile runs every suite: none made a reproduction of 0 runs, exit 0, and a report of nothing ("Datasets: -.")
    if not spec.suites:
        raise MLHWError(
            f"{path}: suites: no suite (got {{}}): a profile runs every suite of the file, so it would run nothing"
        )
    if not spec.profiles:  # --profile was "unknown" in a list of none
        raise MLHWError(f"{path}: profiles: no profile (got {{}}): --profile names one of them")
    for pname in spec.profiles:  # a folder's name: '../../x' wrote outside --results-dir, '' into results/-partial/
        if not PROFILE_NAME.fullmatch(pname):
            raise MLHWError(
                f"{path}: profiles: the name {as_written(pname)} is not a folder name for results/<profile>/ "
                "(letters, digits, '_', '-' and '.', starting with a letter or digit)"
            )
        if pname.endswith(PARTIAL_SUFFIX):  # results/ci-partial/ is profile ci's partial report: never a baseline
            raise MLHWError(
                f"{path}: profiles: the name {as_written(pname)} ends in {PARTIAL_SUFFIX!r}, the folder of a partial "
                f"report (results/<profile>{PARTIAL_SUFFIX}/): its report would never be checked, and the partial "
                f"reports of a profile {pname.removesuffix(PARTIAL_SUFFIX)!r} would replace it; name it otherwise"
            )
    for sname in spec.suites:  # '../../escape' wrote its table outside results/<profile>/tables/
        if not SUITE_NAME.fullmatch(sname):
            raise MLHWError(
                f"{path}: suites: the name {as_written(sname)} is not a file name for tables/<suite>.csv (letters, "
                "digits, '_' and '-', starting with a letter or digit; '.' separates --set SUITE.KEY)"
            )
    for pname, prof in spec.profiles.items():
        for sname in prof.suites:
            if sname not in spec.suites:
                raise MLHWError(
                    f"{path}: profiles.{pname}.suites.{sname}: unknown suite (suites: {', '.join(spec.suites)})"
                )
    for sname, suite in spec.suites.items():  # every suite's base on its own, even where a profile overrides it
        _expand_suite(sname, suite, ProfileSpec(), "(none)", [], str(path), base_only=True)
    # and every profile in full, not only the one chosen today
    by_profile = {pname: expand(spec, pname, file=str(path)) for pname in spec.profiles}
    _check_unread_file_values(spec, by_profile, str(path))
    return spec


def read_yaml(path: Path, error: type[MLHWError] = MLHWError):
    """A YAML file of mlhw's (experiments.yaml, check.yaml), read with UniqueKeyLoader; each way it cannot be read
    is one line naming it, as `error`."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise error(f"{path}: cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise error(yaml_error(path, err)) from None
    except RecursionError:
        raise error(f"{path}: not valid YAML for mlhw ({TOO_DEEP})") from None


# a YAML file nested deeper than Python's recursion limit (about a thousand levels) stopped PyYAML with a traceback
TOO_DEEP = "nested too deeply: lists or mappings inside each other some thousand levels down"


class SafeValuesLoader(yaml.SafeLoader):
    """YAML's safe loader, where a scalar that its tag cannot make (a date of month 13, `!!int abc`, an integer of
    over 4,300 digits: Python's ValueError, or AttributeError for `!!timestamp x`) is a YAML error at its line, not a
    traceback."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, AttributeError, TypeError, OverflowError) as err:
            what = node.tag.rsplit(":", 1)[-1]
            shown = as_written(node.value) if isinstance(node.value, str) else "it"
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{shown} is no {what} ({str(err).splitlines()[0] if str(err) else type(err).__name__})",
                node.start_mark,
            ) from None

    def construct_yaml_float(self, node):
        """A float as written: `lr: 1e-400` is refused at its line, not read as 0 and refused as 'got 0'. Its
        underscores go first, as PyYAML drops them: `1_e-400` or `1.5_e-400` is no number to float(), which passed it,
        and PyYAML read it as 0."""
        if why := float_beyond_range(node.value.replace("_", "")):
            raise yaml.constructor.ConstructorError(None, None, f"{node.value} is {why}", node.start_mark)
        return super().construct_yaml_float(node)


SafeValuesLoader.add_constructor("tag:yaml.org,2002:float", SafeValuesLoader.construct_yaml_float)


class UniqueKeyLoader(SafeValuesLoader):
    """YAML's safe loader, refusing a key that appears twice in one mapping (YAML keeps the last silently), and an
    alias inside the value its anchor names (`&a [1, *a]`: PyYAML builds a list that holds itself, and the first
    message to show it, as_written, recursed until a RecursionError traceback)."""

    def compose_node(self, parent, index):
        inside = self.__dict__.setdefault("_anchors_open", [])
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in inside:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"the alias *{event.anchor} is inside the value &{event.anchor} names (a value without end)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        inside.append(getattr(event, "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            inside.pop()

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):  # `!!set [1]`: the base class's error at its line (the loop below
            return super().construct_mapping(node, deep)  # unpacked a sequence's items: a TypeError traceback)
        seen = {}  # key -> the line it was first given on: the message names both places
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, then keys of its own: merged by the base
                continue  # class (its keys may be overridden; two of the mapping's own may not be the same)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, collections.abc.Hashable):  # `[a, b]: 1`, `{a: 1}: 2`: the base class's error,
                break  # at its line ('found unhashable key'); `key in seen` raised TypeError, a traceback
            if key in seen:  # "(line 9)" of the error at line 9 named the second place twice, never the first
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


# YAML 1.2's floats without a dot (5e-5, 1E3): PyYAML follows YAML 1.1 and reads them as strings, which a config
# refuses as numbers (`lr: 5e-5` is how a learning rate is written); check.yaml read `absolute_floor: 1e-9` as text
SafeValuesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_set(items: list[str]) -> list[tuple[list[str], Any, str]]:
    """`--set key=value`: the value is read as YAML, so 2 is an int, 0.1 a float, [0,1] a list."""
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise MLHWError(f"--set {item!r}: expected KEY=VALUE, e.g. epochs=2 or mlp_full.lr=0.05")
        try:
            parsed = yaml.load(value, Loader=UniqueKeyLoader)
        except (yaml.constructor.ConstructorError, yaml.composer.ComposerError) as err:  # 1e-400, !!int abc, &a [*a]
            raise MLHWError(f"--set {as_written(item)}: {err.problem}") from None
        except yaml.YAMLError:
            raise MLHWError(f"--set {as_written(item)}: the value is not valid YAML") from None
        except RecursionError:
            raise MLHWError(f"--set {as_written(item)}: the value is not valid YAML for mlhw ({TOO_DEEP})") from None
        out.append((key.strip().split("."), parsed, f"--set {key.strip()}"))
    return out


def expand(
    spec: ExperimentsFile,
    profile: str,
    only: list[str] | None = None,
    sets: list[str] = (),
    file: str = "experiments.yaml",
) -> list[RunSpec]:
    """The profile's runs, every config validated. Raises MLHWError naming the culprit."""
    if profile not in spec.profiles:
        raise MLHWError(f"--profile {profile!r}: unknown profile in {file} (profiles: {', '.join(spec.profiles)})")
    for name in only or []:
        if name not in spec.suites:
            raise MLHWError(f"--only {name!r}: unknown suite in {file} (suites: {', '.join(spec.suites)})")
    prof = spec.profiles[profile]
    chosen = [s for s in spec.suites if not only or s in only]
    overrides = parse_set(list(sets))
    _check_global_keys(spec, prof, profile, chosen, overrides, file)
    runs: list[RunSpec] = []
    for name in chosen:
        runs += _expand_suite(name, spec.suites[name], prof, profile, overrides, file)
    for path, value, where in overrides:  # a --set that no run takes: the report would still list it as applied
        if not any(where in r.where.values() for r in runs):
            if path[0] in spec.suites and path[0] not in chosen:
                raise MLHWError(f"{where}: suite {path[0]} is not among the suites run ({', '.join(chosen)}: --only)")
            field = path[-1]
            suite = path[0] if path[0] in spec.suites else "SUITE"  # SUITE.lr=... names its suite: the way out too
            reached = [r for r in runs if suite == "SUITE" or r.suite == suite]
            if len({r.suite for r in reached}) == 1:  # a bare key with one suite run (--only): name it
                suite = reached[0].suite
            raise _changes_no_run(where, field, value, reached, suite, "it reaches")
    return runs


def _changes_no_run(culprit: str, field: str, value, reached: list[RunSpec], suite: str, who: str) -> MLHWError:
    """The error for a value no run takes (a --set, or a file's base value; `who`: which runs it reached): none
    of them reads the field (Adam's momentum, the exact Q1's steps: nothing to set), or every one takes it from
    elsewhere (a grid, a variant), with the way that works (_set_hint)."""
    having = [r for r in reached if field in type(r.config).model_fields]
    why = {r.config.unused(r.config.model_dump()).get(field) for r in having}
    if why and None not in why:
        return MLHWError(f"{culprit}: changes no run: no run {who} reads {field} ({'; '.join(sorted(why))})")
    origins = {r.where.get(field) for r in reached}
    origin = origins.pop() if len(origins) == 1 and None not in origins else "elsewhere"
    if culprit.startswith("--set") and origin.startswith("--set"):  # two --sets of one field: not a grid's doing
        return MLHWError(
            f"{culprit}: changes no run: every run {who} takes {field} from {origin} (the last --set of a field "
            "counts): give it once"
        )
    hint = _set_hint(field, suite, value, reached)
    if not culprit.startswith("--set"):  # a file's value: the way is in the file too
        hint = hint.replace("use --set ", "set ").replace(f"{suite}.", "", 1)
    return MLHWError(f"{culprit}: changes no run: every run {who} takes {field} from {origin}; {hint}")


def _set_hint(field: str, suite: str, value, reached: list[RunSpec]) -> str:
    """The --set that does what one that changed no run meant ('SUITE' when the key named no suite)."""
    if field == "seed":
        return f"use --set {suite}.seeds=[...]"
    by_variant = {r.suite for r in reached if r.variant is not None and field in CNN_VARIANTS.get(r.variant, {})}
    if by_variant:  # a grid of the field is refused beside variants that set it
        return (
            f"the variants of {', '.join(sorted(by_variant))} set it: use --set {suite}.grid.variant=[...] "
            f"(variants: {', '.join(CNN_VARIANTS)})"
        )
    if suite != "SUITE":
        values = value if isinstance(value, list) else [value]
        return f"use --set {suite}.grid.{field}=[{', '.join(map(str, values))}]"
    return f"use --set SUITE.grid.{field}=[...]" + (
        " or a CNN variant" if any(r.kind == "cnn" for r in reached) else ""
    )


def _fields(kind: str) -> set[str]:
    return user_fields(kind)


def _bare_keys(fields: set[str]) -> set[str]:
    """The keys a bare `--set KEY=...` may name for suites with these fields: the fields, and `seeds` where
    there is a seed (theory has none)."""
    return fields | ({"seeds"} if "seed" in fields else set())


def _check_global_keys(spec, prof, profile, chosen, overrides, file) -> None:
    """A profile default must be a field of at least one of the file's suites (the file is wrong otherwise,
    whatever --only chose: `--only theory` failed on `defaults: {dataset: digits}`); an unscoped --set must be a
    field of at least one chosen suite."""
    every = set().union(*(_fields(s.kind) for s in spec.suites.values()))
    for key in prof.defaults:
        if key not in every:
            raise MLHWError(f"{file}: profiles.{profile}.defaults.{key}: unknown key (no suite has it)")
    known = set().union(*(_fields(spec.suites[s].kind) for s in chosen)) if chosen else set()
    for path, _, where in overrides:
        if path[0] in spec.suites:
            continue
        if len(path) == 1 and chosen and path[0] in _bare_keys(every) - _bare_keys(known):
            # a field of the file's other suites: not unknown, only not in any chosen one (--only theory)
            raise MLHWError(
                f"{where}: no chosen suite ({', '.join(chosen)}) has {path[0]!r}; the suites that do: "
                + ", ".join(s for s in spec.suites if path[0] in _bare_keys(_fields(spec.suites[s].kind)))
            )
        if len(path) > 1 and path[0] not in _bare_keys(known):  # SUITE.FIELD with a suite the file lacks
            raise MLHWError(f"{where}: unknown suite {path[0]!r} (the suites of {file}: {', '.join(spec.suites)})")
        if len(path) != 1 or path[0] not in _bare_keys(known):
            raise MLHWError(
                f"{where}: unknown key {'.'.join(path)!r} (a field such as epochs, or SUITE.FIELD, "
                f"SUITE.seeds, SUITE.grid.FIELD)"
            )


@dataclass
class _Layers:
    """A suite's settings once its layers (suite, profile, --set) are applied, each with where it was set."""

    fields: set[str]
    base: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    grid_origin: dict[str, str] = field(default_factory=dict)
    seeds: list | None = None
    seeds_origin: str = ""

    def put_seeds(self, seeds: Any, where: str, file) -> None:
        """A layer's seeds, checked on their own (as its values are): a later layer's seeds do not hide them."""
        culprit = _named(where, file)
        if "seed" not in self.fields:
            raise MLHWError(f"{culprit}: unknown key: this suite's runs take no seed (got {as_written(seeds)})")
        if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds):  # no bool, no 9.0
            raise MLHWError(f"{culprit}: expected a non-empty list of integer seeds (got {as_written(seeds)})")
        if (again := first_repeat(seeds)) is not None:  # one run, not two: the table's n would be wrong
            raise MLHWError(f"{culprit}: seed {again} is listed twice (got {as_written(seeds)})")
        self.seeds, self.seeds_origin = seeds, where

    def put(self, name: str, kind: str, values: dict, where: str, file, only_known: bool = False) -> None:
        for k, v in values.items():
            if k not in self.fields:
                if only_known:
                    continue
                raise MLHWError(
                    f"{file}: {where}.{k}: unknown key ({kind} fields: {', '.join(sorted(self.fields))})"
                    if not where.startswith("--set")
                    else f"{where}: unknown key {k!r} for suite {name}"
                )
            self.base[k], self.origin[k] = v, f"{where}.{k}" if not where.startswith("--set") else where

    def put_grid(self, kind: str, values: dict, where: str, file) -> None:
        for k, v in values.items():
            at = _named(where if where.startswith("--set") else f"{where}.{k}", file)  # --set names its key
            if k not in self.fields and not (k == "variant" and kind == "cnn"):
                raise MLHWError(f"{at}: unknown key ({kind} fields: {', '.join(sorted(self.fields))})")
            if k == "seed":  # beside a seeds list, each of its runs took the list's seed: the grid's collapsed
                raise MLHWError(f"{at}: seeds are not a grid field: a suite's seeds are its `seeds` list (SUITE.seeds)")
            if not isinstance(v, list):
                raise MLHWError(f"{at}: a grid is a list of values (got {as_written(v)}; one value: [{as_written(v)}])")
            if not v:
                raise MLHWError(f"{at}: empty grid (give a non-empty list)")
            self.grid[k], self.grid_origin[k] = v, where if where.startswith("--set") else f"{where}.{k}"


def _expand_suite(
    name: str, suite: SuiteSpec, prof: ProfileSpec, profile: str, overrides, file, base_only: bool = False
) -> list[RunSpec]:
    model = KINDS[suite.kind]
    layers = _Layers(_fields(suite.kind))
    if "seeds" in suite.model_fields_set:  # `seeds: null` too: written, and no list (it ran as no seeds list)
        layers.put_seeds(suite.seeds, f"suites.{name}.seeds", file)
    layers.put(name, suite.kind, suite.base, f"suites.{name}.base", file)
    layers.put_grid(suite.kind, suite.grid, f"suites.{name}.grid", file)
    if base_only:  # each field of the suite's own base on its own: a bad value is found even if overridden
        for k, v in suite.base.items():
            context = {"dataset": suite.base["dataset"]} if k != "dataset" and "dataset" in suite.base else {}
            _validate(model, context, k, v, f"{file}: suites.{name}.base.{k}")
        return []
    _apply_profile_and_set(layers, name, suite.kind, prof, profile, overrides, file)
    _check_layers(layers, model, file, name)
    _check_size(layers, name, profile, file)
    runs = _product(layers, name, suite, model, file)
    _check_file_values_reach_a_run(layers, name, runs, file)
    return runs


def _check_file_values_reach_a_run(layers: _Layers, name: str, runs: list[RunSpec], file) -> None:
    """A value of a suite's or a profile's suite `base` that every run takes from its own layer's grid or variants
    (`base: {lr: 0.1}` beside `grid: {lr: [...]}`) changes nothing in any reproduction: refused, as a --set that
    changes no run is (expand), rather than dropped in silence; so is a profile's value that the suite's own grid
    replaces. A value that a later layer replaces (a profile's grid under the suite's value, a --set) is that
    layer's doing, and not refused: the file stays valid for every profile and every --set. A profile's suite value
    (base or grid) that no run reads (`momentum` beside Adam) is refused unless a --set chose what makes it unread;
    a suite's own, or a profile's defaults, where no profile reads them (_check_unread_file_values)."""
    for k, origin in layers.origin.items():
        layer = origin.rpartition(".base.")[0]  # 'suites.m' or 'profiles.p.suites.m'; '' for a --set or defaults
        if not layer:
            continue
        # the grids that apply wherever this value does: its own layer's, and the suite's own under a profile's
        # (and their seeds lists, which set the seed of every run: `base: {seed: 3}` beside `seeds: [8, 9]`)
        layers_here = dict.fromkeys((layer, f"suites.{name}"))
        grids = tuple(_named(f"{g}.grid.", file) for g in layers_here)
        grids += tuple(_named(f"{g}.seeds", file) for g in layers_here)
        culprit, taken_from = _named(origin, file), {r.where.get(k, "") for r in runs}
        if culprit not in taken_from and all(t.startswith(grids) for t in taken_from):
            raise _changes_no_run(culprit, k, layers.base[k], runs, name, f"of {name}")
        if layer.startswith("profiles.") and _unread(runs, k, layers.base[k], layer, file):
            raise _changes_no_run(culprit, k, layers.base[k], runs, name, f"of {name}")
    for k, origin in layers.grid_origin.items():  # a grid of one value is a value: `grid: {momentum: [0.9]}`
        layer = origin.rpartition(".grid.")[0]
        if layer.startswith("profiles.") and _unread(runs, k, layers.grid[k], layer, file):
            raise _changes_no_run(_named(origin, file), k, layers.grid[k], runs, name, f"of {name}")


def _layer_rank(origin: str | None, file) -> int:
    """Which layer set a value, lowest first: the config's default (None), a suite's own, a profile's defaults, a
    profile's suite, a --set. `origin` as a run's `where` names it (with the file) or as a layer's path."""
    if origin is None:
        return 0
    origin = origin.removeprefix(f"{file}: ")
    if origin.startswith("--set"):
        return 4
    if origin.startswith("profiles."):
        return 3 if ".suites." in origin else 2
    return 1


def _unread(runs: list[RunSpec], field: str, value, layer: str, file) -> bool:
    """Whether `value` (one, or a grid's list) of `field`, set at `layer`, is read by none of `runs` (those that have
    the field), by a choice of that layer or one under it. A value equal to the field's default is no mistake (as
    in build: `steps: 2000` beside the exact method writes out what every run has)."""
    having = [r for r in runs if field in type(r.config).model_fields]
    values = value if isinstance(value, list) else [value]
    if not having or all(v == type(r.config).model_fields[field].default for r in having for v in values):
        return False
    return all(_unread_by_own_layers(r, field, layer, file) for r in having)


def _unread_by_own_layers(run: RunSpec, field: str, layer: str, file) -> bool:
    """Whether the run does not read `field` by a choice of `layer` or a layer under it (the suite's own, the
    config's default): not by a later layer's (a profile's choice above a suite's value, a --set)."""
    rule = type(run.config).UNREAD_WHEN.get(field)
    if rule is None or field not in run.config.unused(run.config.model_dump()):
        return False
    return _layer_rank(run.where.get(rule[0]), file) <= _layer_rank(layer, file)  # where: None for the default


def _check_unread_file_values(spec: ExperimentsFile, by_profile: dict[str, list[RunSpec]], file: str) -> None:
    """A suite's own value (base, or a grid of one value) that no run of any profile reads, by the suite's own
    choice (`momentum: 0.9` where its runs are Adam: the default optimizer, or its own variants), is refused rather
    than dropped in silence. One profile that reads it (a profile choosing SGD) keeps it; so does one where a
    profile chose what leaves it unread (Adam over the suite's SGD): that is the profile's doing. A profile's
    `defaults` value is refused where no run of that profile reads it."""
    for name, suite in spec.suites.items():
        per_profile = [[r for r in runs if r.suite == name] for runs in by_profile.values()]
        values = [("base", k, v) for k, v in suite.base.items()]
        values += [("grid", k, v) for k, v in suite.grid.items() if k != "variant"]
        for where, k, v in values:
            if per_profile and all(runs and _unread(runs, k, v, f"suites.{name}", file) for runs in per_profile):
                raise _changes_no_run(
                    _named(f"suites.{name}.{where}.{k}", file), k, v, per_profile[0], name, f"of {name}"
                )
    for pname, prof in spec.profiles.items():
        for k, v in prof.defaults.items():
            if _unread(by_profile[pname], k, v, f"profiles.{pname}.defaults", file):
                raise _changes_no_run(
                    _named(f"profiles.{pname}.defaults.{k}", file), k, v, by_profile[pname], "SUITE", f"of {pname}"
                )


def _apply_profile_and_set(layers: _Layers, name, kind, prof: ProfileSpec, profile, overrides, file) -> None:
    """The layers above the suite's own, lowest first: profile defaults, the profile's suite, then --set."""
    over = prof.suites.get(name, SuiteOverride())
    layers.put(name, kind, prof.defaults, f"profiles.{profile}.defaults", file, only_known=True)
    layers.put(name, kind, over.base, f"profiles.{profile}.suites.{name}.base", file)
    layers.put_grid(kind, over.grid, f"profiles.{profile}.suites.{name}.grid", file)
    if "seeds" in over.model_fields_set:
        layers.put_seeds(over.seeds, f"profiles.{profile}.suites.{name}.seeds", file)
    for path, value, where in overrides:
        if path[0] == name:  # SUITE.FIELD, SUITE.seeds, SUITE.grid.FIELD
            path = path[1:]
        elif len(path) != 1 or path[0] not in _bare_keys(layers.fields):
            continue  # another suite's key, or a field this suite does not have (theory has no seed)
        if path == ["seeds"]:
            layers.put_seeds(value, where, file)
        elif len(path) == 2 and path[0] == "grid":
            layers.put_grid(kind, {path[1]: value}, where, file)
        elif len(path) == 1:
            layers.put(name, kind, {path[0]: value}, where, file)
        else:
            raise MLHWError(f"{where}: unknown key path {'.'.join(path)!r}")


def _check_layers(layers: _Layers, model, file, name: str) -> None:
    """Every value on its own (one that a grid or a variant replaces is still checked), seeds, repeats, variants."""
    base = layers.base
    context = {"dataset": base["dataset"]} if "dataset" in base else {}
    for k, v in base.items():
        if k != "dataset":
            _validate(model, context, k, v, _for_suite(_named(layers.origin[k], file), name, k, v, model))
    if "variant" in layers.grid:  # any spelling of a rate names its variant: adam-5e-5 is adam-5e-05
        named = [canonical_variant(v) for v in layers.grid["variant"]]
        for v, key in zip(layers.grid["variant"], named):
            if key is None:
                raise MLHWError(
                    f"{_named(layers.grid_origin['variant'], file)}: unknown variant {v!r} "
                    f"(variants: {', '.join(CNN_VARIANTS)})"
                )
        layers.grid["variant"] = named
        for k in layers.grid:  # one grid of a variant's field and of variants: which one sets it hung on key order
            if k != "variant" and any(k in CNN_VARIANTS[v] for v in named):
                raise MLHWError(
                    f"{_named(layers.grid_origin[k], file)}: the grid's variants set {k} too (a variant is an "
                    f"optimizer, lr, BatchNorm and Dropout): grid one or the other"
                )
    # a value twice is one run, not two: the table's n would be wrong (seeds: put_seeds)
    for k, values in layers.grid.items():
        if (again := first_repeat(values)) is not None:
            raise MLHWError(
                f"{_named(layers.grid_origin[k], file)}: {as_written(again)} is listed twice (got {as_written(values)})"
            )


# The most runs one suite may make. A grid is a product: two lists of 100 pasted into one suite made 10,000 runs, and
# `reproduce` planned them (seconds of validation at every load, as every profile is expanded) and set out to train
# them, with no word but the plan's count. The shipped profiles' largest suite makes 18; a study larger than this is
# split into suites, each a table row group and an MLflow parent of its own.
MAX_SUITE_RUNS = 1000


def _check_size(layers: _Layers, name: str, profile: str, file) -> None:
    """A suite whose grid x seeds would make more than MAX_SUITE_RUNS runs is refused before its configs are built,
    naming a --set among its lists, else the longest list (the likeliest mistake), every factor and the profile (every
    profile of the file is expanded at its load: the one that made too many need not be the one asked for)."""
    factors = [(len(v), k, layers.grid_origin[k]) for k, v in layers.grid.items()]
    if layers.seeds is not None:
        factors.append((len(layers.seeds), "seeds", layers.seeds_origin))
    total = 1
    for n, _, _ in factors:
        total *= n
    if total <= MAX_SUITE_RUNS:
        return
    # a --set that took it over the limit is the change just made; else the longest list
    _, _, culprit = max(factors, key=lambda f: (f[2].startswith("--set"), f[0]))
    sizes = " x ".join(
        (f"{n} seed{'s' if n != 1 else ''}" if k == "seeds" else f"{n} value{'s' if n != 1 else ''} of {k}")
        for n, k, _ in factors
    )
    raise MLHWError(
        f"{_named(culprit, file)}: suite {name} would make {total:,} runs in profile {profile} ({sizes}), more than "
        f"the {MAX_SUITE_RUNS:,} a suite may make: shorten the lists, or split the study into suites of "
        f"{MAX_SUITE_RUNS:,} runs at most"
    )


def _product(layers: _Layers, name: str, suite: SuiteSpec, model, file) -> list[RunSpec]:
    """One run per combination of the grid's values and per seed, each config validated whole."""
    runs, made = [], {}
    grid, keys, seeds = layers.grid, list(layers.grid), layers.seeds
    for combo in itertools.product(*(grid[k] for k in keys)):
        for seed in seeds if seeds is not None else [None]:
            values, where = dict(layers.base), dict(layers.origin)
            variant = None
            for k, v in zip(keys, combo):
                if k == "variant":
                    variant = v
                    values.update(CNN_VARIANTS[v])
                    where.update({f: layers.grid_origin[k] for f in CNN_VARIANTS[v]})
                else:
                    values[k], where[k] = v, layers.grid_origin[k]
            if seed is not None:
                values["seed"], where["seed"] = seed, layers.seeds_origin
            try:
                cfg = model(**values)
            except ValidationError as err:
                e = err.errors()[0]
                k = str(e["loc"][0]) if e.get("loc") else "?"
                got = e.get("input")
                culprit = _for_suite(_named(where.get(k, f"suites.{name}.base.{k}"), file), name, k, got, model)
                raise MLHWError(
                    f"{culprit}: {_message(e)}" + ("" if isinstance(got, dict) else f" (got {as_written(got)})")
                ) from None
            same = made.setdefault(cfg.model_dump_json(), combo)
            if same is not combo:  # 0.1 and "0.1", 40 and [40]: listed as two values, one run (n would count it twice)
                k, a, b = next((k, a, b) for k, a, b in zip(keys, same, combo) if a != b)
                if (why := model.unused(values).get(k)) is not None:  # a grid of momentum over Adam runs
                    raise MLHWError(
                        f"{_named(layers.grid_origin[k], file)}: some runs of {name} do not read {k} ({why}): "
                        f"its values {as_written(a)} and {as_written(b)} would make one of them twice; set {k} "
                        "to one value (it reaches only the runs that read it), or grid it in a suite whose runs all "
                        "read it"
                    )
                raise MLHWError(
                    f"{_named(layers.grid_origin[k], file)}: {as_written(a)} and {as_written(b)} are one value, "
                    "listed twice"
                )
            label = ", ".join(
                [_describe(k, v) for k, v in zip(keys, combo)] + ([f"seed {seed}"] if seed is not None else [])
            )
            for k in model.unused(values):  # a value no run of these settings reads: the config keeps the default
                where.pop(k, None)
            named = {k: _named(v, file) for k, v in where.items()}
            runs.append(RunSpec(name, suite.kind, suite.part, cfg, label, variant, named))
    return runs


def first_repeat(values):
    """The first value of a list that an earlier one equals (None if all differ): a seed, grid value or rate
    listed twice is one run, not two."""
    return next((v for i, v in enumerate(values) if v in values[:i]), None)


def _for_suite(culprit: str, name: str, key: str, value, model) -> str:
    """A bare `--set KEY` reaches every suite with the field, and so does a profile's `defaults:` entry: where
    another kind of suite would take the value (`dataset: mnist` suits Part 1, not the CNN suites), the error names
    the suite that refused it and the way to set one suite (`defaults: {dataset: cifar10}` read "must be 'digits' or
    'mnist'", with no word of which suite, nor of the CNN suites that take it)."""
    if culprit.startswith("--set ") and "." not in culprit.split(" ", 1)[1]:
        hint = f"SUITE.{key} sets one suite"
    elif f".defaults.{key}" in culprit and ": profiles." in culprit:
        profile = culprit.rpartition(f".defaults.{key}")[0].partition(": profiles.")[2]
        hint = f"profiles.{profile}.suites.SUITE.base sets one suite"
    else:
        return culprit
    for other in KINDS.values():
        if other is model or key not in other.model_fields:
            continue
        try:
            other(**{key: value})
        except ValidationError:
            continue
        return f"{culprit} (in suite {name}; {hint})"
    return culprit


def _named(origin: str, file) -> str:
    """Where a value was set, as an error names it: `--set KEY` as typed, or `FILE: key.path`."""
    return origin if origin.startswith("--set") else f"{file}: {origin}"


def _validate(model, context: dict, key: str, value, culprit: str) -> None:
    """Validate one field (with its dataset as context); only errors about that field count."""
    try:
        model(**context, **{key: value})
    except ValidationError as err:
        for e in err.errors():
            if e.get("loc") and str(e["loc"][0]) == key:
                got = e.get("input")
                shown = "" if isinstance(got, dict) else f" (got {as_written(got)})"
                raise MLHWError(f"{culprit}: {_message(e)}{shown}") from None


def _describe(key: str, value) -> str:
    """A grid value in the assignment's words: a variant's title, lr=0.1, C=1."""
    from mlhw.reference import CNN_VARIANT_TITLES

    if key == "variant":
        return CNN_VARIANT_TITLES.get(value, value)
    return f"{key}={value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else f"{key}={value}"
