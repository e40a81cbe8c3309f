"""The one owner of `results/<profile>/`: tables (Markdown, CSV, LaTeX), figures and REPORT.md, compiled
from the tracking store alone, so that the report describes what was logged, whichever process or machine
ran it, and can be rebuilt with no dataset on disk.

What a report covers is a set of suites, each a list of `Entry` (label, identity, variant, config): the
plan of a `reproduce`, or the `plan.json` that each suite's parent run holds (`mlhw tables`). The folder
is replaced as a whole (built beside it, then renamed), so a reader never sees half a report. An overridden
reproduction (--set), or one of some suites (--only) whose store lacks the others' runs, writes
`results/<profile>-partial/`, never the profile's own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

import mlhw
from mlhw import tables as T
from mlhw.check import self_check_failures
from mlhw.claims import STALE_SECONDS, by_identity
from mlhw.config import CNN_PRESETS
from mlhw.data import NOT_OFFICIAL, files_note
from mlhw.labels import cnn_title
from mlhw.layout import (
    FIGURES,
    OLD,
    REPORT,
    REPORT_HEADING,
    TABLES,
    TOKEN,
    moved_aside,
    profile_folder,
    put_back,
    swapped,
    umask,
)
from mlhw.lifecycle import (
    CPU_THREADS_TAG,
    TOGETHER_TAG,
    git_commit,
    logged_value,
    metric_key,
    process_token,
    stamp_seconds,
    token_gone,
)
from mlhw.reference import CNN_TEST_NORMALISATION_NOTE, CNN_VARIANT_FIELDS, MLP_FULL_TEST_ACC
from mlhw.store import Store, experiment_words, folder_lock, resolve_uri, signals_deferred

SUITE_ORDER = [
    "mlp_lr_sweep",
    "mlp_full",
    "cnn_optimizers",
    "cnn_adam_lr",
    "cnn_batchnorm",
    "svm_multiclass",
    "svm_soft",
    "theory",
]


@dataclass
class Entry:
    """One run of a suite, as planned: enough to find it in the store and to describe it."""

    suite: str
    label: str
    identity: str
    config: dict
    variant: str | None = None


@dataclass
class Scope:
    """What a report covers and how it was made."""

    profile: str
    entries: list[Entry]
    descriptions: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    only: list[str] = field(default_factory=list)
    description: str = ""
    expected: list[str] = field(default_factory=list)  # the profile's suites: those missing are named
    notes: list[str] = field(default_factory=list)  # what the reader should know of the runs chosen (stderr)

    @property
    def partial(self) -> bool:
        return bool(self.overrides or self.only)

    def folder(self, results_dir: str | Path) -> Path:
        """A partial report goes beside the profile's, never over it: --set changes what a run is, and --only
        covers some suites (unless the store holds the others' runs: the report then takes them and is whole,
        `only` is empty)."""
        return profile_folder(results_dir, self.profile, self.partial)

    def suites(self) -> list[str]:
        present = dict.fromkeys(e.suite for e in self.entries)
        return [s for s in SUITE_ORDER if s in present] + [s for s in present if s not in SUITE_ORDER]

    def to_json(self, suite: str) -> str:
        return json.dumps([asdict(e) for e in self.entries if e.suite == suite], indent=1)


# --- records: finished runs read back from the store ----------------------------------------------------


def record(entry: Entry, run, store: Store) -> dict:
    """One finished run as a flat dict: its config, final metrics, history, identity and timing."""
    metrics = {metric_key(k): logged_value(v) for k, v in run.data.metrics.items()}
    tags = run.data.tags
    out = (
        entry.config
        | metrics
        | {
            "suite": entry.suite,
            "label": entry.label,
            "variant": entry.variant,
            "run_id": run.info.run_id,
            "diverged_epoch": int(tags["mlhw.diverged_epoch"]) if "mlhw.diverged_epoch" in tags else None,
            "seconds": ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000,
            "start": run.info.start_time,
            "end": run.info.end_time or run.info.start_time,
            "together": tags.get(TOGETHER_TAG),
            "parent": tags.get("mlflow.parentRunId"),  # the parent run that holds it in the UI
        }
    )
    out["diverged"] = 0.0 if out["diverged_epoch"] is None else 1.0
    out["device"] = tags.get("mlhw.device")
    out["commit"] = tags.get("mlflow.source.git.commit")  # the mlhw that made it (another than the report's: said)
    out["cpu_threads"] = tags.get(CPU_THREADS_TAG)  # a CPU-trained MLP or AlexNet run's torch threads
    out["sizes"] = json.loads(tags["mlhw.dataset_sizes"]) if "mlhw.dataset_sizes" in tags else None
    out["dataset_files"] = tags.get("mlhw.dataset_files")  # official or not (mlhw.data.OFFICIAL); None: not known
    out["method"] = tags.get("mlhw.solution_method", entry.config.get("method"))
    if "mlhw.checks_failed" in tags:  # a theory run: how many of its claims do not hold
        out["checks_failed"] = int(tags["mlhw.checks_failed"])
    if "classes" in entry.config:
        out["classes"] = "vs".join(str(k) for k in entry.config["classes"])
    if entry.config.get("kind") == "cnn":
        out["precision"] = run.data.params.get("precision")  # the one it trained in (mlhw.device.select_precision)
    if entry.config.get("kind") in ("mlp", "cnn"):
        out["history"] = _history(store, run.info.run_id)
    return out


def _history(store: Store, run_id: str) -> list[dict]:
    text = store.download_text_if_any(run_id, "history.csv")
    if text is None:  # an older run without the artifact: no curves, the tables still hold
        return []
    return pd.read_csv(io.StringIO(text)).to_dict("records")  # NaN: a non-finite value that was logged (divergence)


def collect(
    scope: Scope, store: Store, stale_after: float = STALE_SECONDS
) -> tuple[dict[str, list[dict]], list[Entry]]:
    """suite -> records of its finished runs; and the entries that are not finished."""
    settled = by_identity(store, stale_after)
    done: dict[str, list[dict]] = {}
    missing = []
    cache: dict[str, dict] = {}
    for e in scope.entries:
        found = settled.get(e.identity)
        if found is None or found.status != "FINISHED":
            missing.append(e)
            continue
        if e.identity not in cache:
            cache[e.identity] = record(e, found.run, store)
        done.setdefault(e.suite, []).append(cache[e.identity] | {"suite": e.suite, "label": e.label})
    return done, missing


# --- tables and figures -------------------------------------------------------------------------------------


def build_tables(
    done: dict[str, list[dict]], store: Store, descriptions: dict[str, str] | None = None
) -> list[T.ResultTable]:
    """The result tables; the write-up's numbers sit beside runs made at the assignment's settings only. A suite
    added to experiments.yaml gets a table of its own after them (`T.table_of`), titled with its description."""
    from mlhw.findings import off_reference

    out = []
    if done.get("mlp_lr_sweep"):
        out.append(T.mlp_sweep_table(done["mlp_lr_sweep"]))
    if done.get("mlp_full"):
        at_reference = not off_reference(done["mlp_full"], "mlp")
        out.append(T.mlp_full_table(done["mlp_full"], MLP_FULL_TEST_ACC if at_reference else None))
    for suite in T.CNN_TABLE_NAMES:
        if done.get(suite):
            out.append(T.cnn_table(suite, done[suite], reference=not off_reference(done[suite], "cnn")))
    if done.get("svm_multiclass") or done.get("svm_soft"):
        out.append(T.svm_table(done.get("svm_multiclass", []), done.get("svm_soft", [])))
    added = [s for s in done if s not in T.SUITE_TABLES and done[s]]
    added = [s for s in added if T.table_of(s, done[s][0].get("kind"), len(done[s])) == s]
    for suite in added:
        recs, about = done[suite], (descriptions or {}).get(suite)
        if recs[0].get("kind") in ("mlp", "cnn"):
            out.append(T.added_suite_table(suite, recs, about))
        elif recs[0].get("kind") in ("svm_multiclass", "svm_soft"):
            out.append(T.added_svm_table(suite, recs, about))
    for t in out:  # a table pasted into a write-up says what it ran on (the SVM's rows say it per row)
        datasets = datasets_named(done.get(_suite_of(t.name), []))
        if datasets and t.like != "svm":
            t.title += f" on {', '.join(datasets)}"
    if done.get("theory"):
        out.append(T.theory_table(_theory_rows(store, done["theory"][0])))
    for suite in [s for s in added if done[s][0].get("kind") == "theory"]:
        out.append(T.added_theory_table(suite, _theory_rows(store, done[suite][0]), (descriptions or {}).get(suite)))
    return out


def _theory_rows(store: Store, record: dict) -> list[dict]:
    """A theory run's checks, as it logged them (theory.csv)."""
    text = store.download_text(record["run_id"], "theory.csv")
    return pd.read_csv(io.StringIO(text)).to_dict("records")


def datasets_named(records) -> list[str]:
    """The datasets of `records`, each as a report names it: 'mnist', or 'mnist (not the official MNIST files)' when
    its runs read other files than the official ones ('..., 2 of 5 runs)' when only some did)."""
    out = []
    for name in sorted({str(r["dataset"]) for r in records if r.get("dataset")}):
        files = [r.get("dataset_files") for r in records if str(r.get("dataset")) == name]
        other = files.count(NOT_OFFICIAL)
        note = files_note(name, NOT_OFFICIAL) if other else ""
        if other and other < len(files):
            note = f"{note[:-1]}: {other} of {len(files)} runs)"
        out.append(name + note)
    return out


def _suite_of(table: str) -> str:
    return next((s for s, t in T.SUITE_TABLES.items() if t == table), table)


def curves(record: dict, first_epoch: int = 0) -> list[dict]:
    """A run's per-epoch rows for a figure, flagged `diverged` from the epoch the run diverged at."""
    at = record.get("diverged_epoch")
    return [
        h | ({"diverged": True} if at is not None and h["epoch"] >= at else {})
        for h in record.get("history") or []
        if h["epoch"] >= first_epoch
    ]


def result_curves(result) -> list[dict]:
    """`curves` of a result in hand (an MLP or CNN result of a single command: its history and divergence)."""
    return curves({"history": result.history, "diverged_epoch": result.diverged_epoch})


def _setting_of(records: list[dict], by: list[str]):
    """A run's setting of the fields besides the seed and `by` in which its suite's runs differ ('hidden=[80]';
    '' when only seeds do): a figure's curve is the mean over seeds of one setting, as a table's row is."""
    extra = T.varying_fields(records, by)
    return lambda r: ", ".join(f"{f}={T.shown_value(r.get(f))}" for f in extra)


def figure_specs(done: dict[str, list[dict]]) -> list[tuple[str, str, str, object]]:
    """(suite, file name, caption, draw(path)) for Figure 2 and each CNN part: mean over seeds with a band."""
    from mlhw.labels import WITH_BN_DROPOUT, lr_label, variant_title
    from mlhw.plots import cnn_curves_figure, lr_sweep_figure
    from mlhw.reference import CNN_PART_SUITES, CNN_VARIANTS

    specs = []
    if done.get("mlp_lr_sweep"):
        recs = done["mlp_lr_sweep"]
        setting = _setting_of(recs, ["lr"])  # a grid beside lr's: a curve per setting, as the table has a row
        series = [
            (
                lr_label(lr) + (f", {k}" if k else ""),
                [curves(r) for r in recs if r["lr"] == lr and setting(r) == k and r.get("history")],
            )
            for lr in sorted({r["lr"] for r in recs})
            for k in dict.fromkeys(setting(r) for r in recs if r["lr"] == lr)
        ]
        # the datasets as the tables name them: files of MNIST's format that are not the official ones say so; the
        # caption under the figure in REPORT.md too, as each table's heading does
        on = ", ".join(datasets_named(recs))
        title = f"Part 1 (b) on {on}{_figure_setting(recs, ('train', 'test'))}: one network per learning rate"
        specs.append(
            (
                "mlp_lr_sweep",
                "mlp_lr_sweep.png",
                f"Part 1 (b) on {on}: training accuracy, training loss and test accuracy per epoch",
                lambda p, s=series, t=title: lr_sweep_figure(s, p, t),
            )
        )
    for suite, (name, title) in T.CNN_TABLE_NAMES.items():
        recs = done.get(suite)
        if not recs:
            continue
        variants = list(dict.fromkeys(r["variant"] for r in recs))
        setting = _setting_of(recs, ["variant"])
        # in Part 2 (c)'s figure both curves say what they compare: "Adam lr=5e-5" alone read as either
        with_bn = WITH_BN_DROPOUT if suite == CNN_PART_SUITES["c"] else ""
        series = [
            (
                variant_title(v)
                + (with_bn if CNN_VARIANTS.get(v, {}).get("batchnorm", True) else "")
                + (f", {k}" if k else ""),
                [curves(r, 1) for r in recs if r["variant"] == v and setting(r) == k and r.get("history")],
            )
            for v in variants
            for k in dict.fromkeys(setting(r) for r in recs if r["variant"] == v)
        ]
        full = f"{title} on {', '.join(datasets_named(recs))}"
        titled = full + _figure_setting(recs, ("train", "val"))
        specs.append(
            (
                suite,
                f"{name}.png",
                f"{full}: training loss and validation accuracy per epoch",
                lambda p, s=series, t=titled: cnn_curves_figure(s, p, t),
            )
        )
    for suite, recs in done.items():  # an added MLP or AlexNet suite: its kind's figure, a curve per table row
        if suite in T.SUITE_TABLES or not _draws_figure(suite, recs):
            continue
        kind = recs[0]["kind"]
        keys = T.grid_fields(recs)
        name = lambda r, keys=keys: _curve_label(r, keys)  # noqa: E731
        series = [
            (label, [curves(r, 1 if kind == "cnn" else 0) for r in recs if name(r) == label and r.get("history")])
            for label in dict.fromkeys(name(r) for r in recs)
        ]
        full = f"{suite} on {', '.join(datasets_named(recs))}"
        if kind == "mlp":
            caption = f"{full}: training accuracy, training loss and test accuracy per epoch"
            draw = lambda p, s=series, t=full: lr_sweep_figure(s, p, t)  # noqa: E731
        else:
            caption = f"{full}: training loss and validation accuracy per epoch"
            draw = lambda p, s=series, t=full: cnn_curves_figure(s, p, t)  # noqa: E731
        specs.append((suite, f"{suite}.png", caption, draw))
    return specs


def _draws_figure(suite: str, recs: list[dict]) -> bool:
    """Whether figure_specs draws a figure of `suite`: Part 1 (b)'s sweep, each CNN part, an added MLP or AlexNet
    suite with a table of its own (not mlp_full, the SVMs, theory)."""
    if not recs:
        return False
    if suite in T.SUITE_TABLES:
        return suite == "mlp_lr_sweep" or suite in T.CNN_TABLE_NAMES
    kind = recs[0].get("kind")
    return kind in ("mlp", "cnn") and T.table_of(suite, kind, len(recs)) == suite


def _figure_setting(recs: list[dict], splits: tuple[str, ...]) -> str:
    """' (300 train / 100 test, 3 epochs)': what a figure's runs trained on and for how long, where all of them
    share it. A figure is opened alone (in the UI, pasted into a write-up): the ci profile's 3-epoch sweep on 300
    images was titled as the digits profile's 30 epochs on 1,297."""
    parts = []
    sizes = {
        " / ".join(f"{s[k]:,} {k}" for k in splits if k in s) for r in recs if isinstance(s := r.get("sizes"), dict)
    }
    if len(sizes) == 1 and (shown := sizes.pop()):
        parts.append(shown)
    if len(epochs := {r.get("epochs") for r in recs}) == 1 and isinstance(n := epochs.pop(), int):
        parts.append(f"{n} epoch" + "s" * (n != 1))
    return f" ({', '.join(parts)})" if parts else ""


def _curve_label(r: dict, keys: list[str]) -> str:
    """An added suite's curve, named as its table's row: 'lr=0.001', 'Adam lr=5e-5, batch_size=32' (a variant in the
    assignment's words), or the dataset where only seeds differ."""
    return T.setting_label(r, keys) if keys else str(r.get("dataset"))


# --- the folder ---------------------------------------------------------------------------------------------


COMPILED_TAG = "mlhw.compiled_at"  # on a suite parent: when a report was last compiled from it (a utc_stamp)
# a suite parent's tags that say which reproduction it belongs to (written by `reproduce`, read here)
PARTIAL_TAG = "mlhw.partial"  # "true": --set, or an --only whose report lacks other suites; else "false"
PROFILE_SUITES_TAG = "mlhw.profile_suites"  # every suite of its profile, as JSON
PROFILE_DESCRIPTION_TAG = "mlhw.profile_description"
OVERRIDES_TAG = "mlhw.overrides"  # --only and --set, as JSON; absent when neither was given
STAMP = ".mlhw-plan"  # in a report folder: the files it wrote; stamped: suite -> its key (plan.suite_key)


def changed_files(folder: Path, keys: dict[str, str], profile_suites: list[str]) -> list[str] | None:
    """None: the folder holds no complete report (nothing missing when it was made) of these very suites, or it
    holds a suite the profile no longer has (its tables would stay). Else the files of that report that are gone
    or differ from what was written (a table edited by hand, a figure deleted): [] when it is whole, as written."""
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    suites, files = (stamp.get("suites"), stamp.get("files")) if isinstance(stamp, dict) else (None, None)
    if (
        not isinstance(suites, dict)
        or not isinstance(files, dict)
        or REPORT not in files
        or stamp.get("sound") is not True
    ):
        return None  # an older stamp (suites only; or before reports that fail their own checks went unstamped)
    if not all(suites.get(s) == k for s, k in keys.items()) or not set(suites) <= set(profile_suites):
        return None
    return [f for f, digest in files.items() if not (folder / f).is_file() or _digest(folder / f) != digest]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_findings(scope: Scope, done: dict) -> list | None:
    """The report's answers to the assignment's questions (mlhw.findings), from its records; None where it holds
    no MLP or CNN runs (the SVMs and theory answer in their tables)."""
    from mlhw import findings as F

    if not any(s in done for s in MLP_SUITES + tuple(T.CNN_TABLE_NAMES)):
        return None
    # a partial report (--only) answers what it ran: a question of a suite it did not choose is not "not
    # reproduced" (Part 2 (b) said "No runs of adam-0.005, adam-5e-05" though Adam 5e-5 ran in (a))
    whole = bool(scope.expected) and not scope.only
    return F.build_findings(done, include_missing=whole)


def write_report(
    scope: Scope, store: Store, results_dir: str | Path, device: str = "-", findings=None, stamp: dict | None = None
) -> tuple[list[T.ResultTable], Path, dict, list | None]:
    """Compile scope's tables, figures and REPORT.md into results/<profile>[-partial]/, replacing the folder
    as a whole. Returns the tables, the report's path, the records (suite -> runs) it was made from and its
    findings (report_findings; for the terminal: building them takes ~0.6 s on the digits profile, once)."""
    from mlhw import findings as F

    done, missing = collect(scope, store)
    tables = build_tables(done, store, scope.descriptions)
    found = report_findings(scope, done) if findings is None else None
    if found is not None:
        findings = F.to_markdown(found, heading="")
    shown = scope.folder(results_dir)
    # results/<profile> a link (to another disk, a shared folder): the report goes where it points; the swap below
    # replaced the link itself with a folder, and the report never reached its target
    final = swapped(shown)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(final)
    token = process_token()  # (a name near the 255 bytes a file name may have is built under the plain one)
    named = token is not None and len(os.fsencode(final.name)) < 200
    tmp = Path(
        tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{BUILDING}-{token}." if named else f".{final.name}.")
    )
    try:
        os.chmod(tmp, 0o755 & ~umask())  # mkdtemp's 0700 made a folder like any other: the umask's, as plots.save
        for t in tables:
            _write_table(t, tmp / TABLES)
        figures = []
        for _, name, caption, draw in figure_specs(done):
            (tmp / FIGURES).mkdir(exist_ok=True)
            draw(tmp / FIGURES / name)
            figures.append((caption, name))
        text = report_text(scope, store, tables, figures, done, missing, device, findings)
        _write(tmp / REPORT, text)
        # every report lists the files it wrote (a rebuild replaces those, and keeps a user's own). A complete,
        # sound report of this plan is stamped besides: the next reproduce of it has nothing to do while every file
        # is as written (a table edited or a figure deleted: it is compiled again); one with missing runs, a failing
        # theory claim or SVM is not, so every reproduce compiles it again and exits 1 again
        files = {p.relative_to(tmp).as_posix(): _digest(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        record: dict = {"files": files}
        if stamp and not missing and not self_check_failures(done):
            record |= {"suites": stamp, "sound": True}  # (older stamps lack "sound": compiled again)
        _write(tmp / STAMP, json.dumps(record, indent=1, sort_keys=True) + "\n")
        try:  # Ctrl-C between _replace's two renames left no results/<profile>/ at all, the old one hidden
            with signals_deferred():
                _replace(tmp, final)
        except KeyboardInterrupt as stop:  # held until the swap was done: the folder is the new one
            stop.replaced = final
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tables, shown / REPORT, done, found


# the folder a report is built in, beside its final place, names the process that builds it: one that SIGKILL (or the
# OOM killer) stopped half-way was left there for ever (`.ci.4vtshyij/`, half its tables and figures), one more at
# each such stop, hidden from `ls` and not from `git status`. A power cut's or a reboot's stays: the token names the
# boot (lifecycle._machine), so after a new boot it reads as another machine's, and is left alone
BUILDING = "mlhw-building"


def remove_abandoned(final: Path) -> list[Path]:
    """Remove the folders that a report of `final` was being built in by a process now gone (known for sure: this
    machine's; another's, on a shared folder, is left alone, as is one still building), and the old reports that
    such a process's swap had moved aside: put back where the report is missing (layout.put_back), removed where
    it is not. Returns those removed (a report put back is not among them)."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.{BUILDING}-{TOKEN}\.[a-z0-9_]+")
    removed = []
    try:
        found = list(final.parent.iterdir())
    except OSError:
        return removed
    for path in found:
        if (m := pattern.fullmatch(path.name)) and path.is_dir() and not path.is_symlink() and token_gone(m[1]):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    put_back(final)
    for path, token in moved_aside(final):
        if token_gone(token):
            with folder_lock(final.parent):  # (a live swap of this folder holds it between its renames)
                # looked at again under the lock: a swap killed since put_back looked left no report in place, and
                # this was its only copy (the next put_back takes it)
                if not (final.exists() or final.is_symlink()):
                    continue
                _remove(path)
            removed.append(path)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")  # committed, read on other machines: never the locale's
    # 0644 less the umask, as the figures beside it (plots.save): under umask 077 REPORT.md and the tables were
    # made readable by everyone, in a folder of figures and subfolders that were not
    os.chmod(path, 0o644 & ~umask())


def _write_table(t: T.ResultTable, folder: Path) -> None:
    for ext, text in T.table_files(t).items():
        _write(folder / f"{t.name}.{ext}", text)


def carry_policy(policy: Path, folder: Path) -> bool:
    """Copy a baseline's check.yaml into a report's folder that has none: the baseline shipped with mlhw, which a
    first reproduction in a new folder was checked against; the next reproduction and `mlhw check` are then gated by
    its tolerances and chaotic rows, as a checkout's are. Not one of the report's own files (its stamp does not list
    it): later reports carry it over. False where it was not copied (one is there, or the folder cannot take it)."""
    from mlhw.check_policy import POLICY_FILE

    final = swapped(folder)  # results/<profile> a link: the folder it points to, locked where _replace swaps it
    try:
        with folder_lock(final.parent):
            target = final / POLICY_FILE
            if target.exists():
                return False
            shutil.copyfile(policy, target)
    except OSError:  # the report is written and checked: only the next checks' tolerances are lost
        return False
    return True


def _replace(new: Path, final: Path) -> None:
    """Swap the finished folder into place; the old one is removed only once the new one is there.
    Files that are not the report's own (a committed baseline's check.yaml, a user's notes or extra figure) are
    carried over: only what an earlier report wrote is replaced (`mlhw tables` deleted notes.md)."""
    # one swap at a time in the folder: two reports of one profile written at once (two reproductions, or `tables`
    # beside one) raced between the renames, and one found its folder gone or the other's in its way (exit 1)
    with folder_lock(final.parent):
        _swap(new, final)


def _swap(new: Path, final: Path) -> None:
    if final.is_dir():
        own = _report_files(final)
        for path in sorted(final.rglob("*")):
            rel = path.relative_to(final).as_posix()
            if (path.is_file() or path.is_symlink()) and rel not in own and not (new / rel).exists():
                (new / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, new / rel, follow_symlinks=False)  # a user's link stays a link
    old = None
    if final.exists() or final.is_symlink():
        # named after its process, as the build folder: a SIGKILL between the two renames left the report only here,
        # hidden, for ever (`.ci.old-4242/`); the next report puts it back (remove_abandoned). A name too long for
        # the token (a file name is at most 255 bytes; it takes ~37) is moved aside under the pid, as before: not put
        # back after such a kill, but its swap does not fail (ENAMETOOLONG for a profile name of 218-242 bytes)
        token = process_token()
        old = final.with_name(f".{final.name}.{OLD}-{token}")
        if token is None or len(os.fsencode(old.name)) > 255:
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        _remove(old)


def _report_files(folder: Path) -> set[str]:
    """The files an earlier report wrote in its folder: the list it left (.mlhw-plan), and without one (a folder
    from an mlhw that wrote none, or none for a partial or unsound report) the report's own kinds: REPORT.md,
    tables/*.md|csv|tex, figures/*.png."""
    try:
        files = json.loads((folder / STAMP).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        files = None
    own = {STAMP, REPORT}
    if isinstance(files, dict):
        return own | set(files)
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if len(rel.parts) == 2 and (
            (rel.parts[0] == TABLES and path.suffix in (".md", ".csv", ".tex"))
            or (rel.parts[0] == FIGURES and path.suffix == ".png")
        ):
            own.add(rel.as_posix())
    return own


def run_link(store: Store, run_id: str) -> str:
    url = store.run_url(run_id)
    return f"[{run_id[:8]}]({url})" if url else f"`{run_id[:8]}`"


def full_report(profile: str) -> str:
    """A link from a partial report (<results>/<profile>-partial/) to the profile's full one, relative: it was
    `results/<profile>/REPORT.md` whatever --results-dir the reports are in."""
    return f"[`../{profile}/REPORT.md`](../{profile}/REPORT.md)"


def report_text(scope: Scope, store: Store, tables, figures, done, missing, device, findings=None) -> str:
    import platform as _p

    records = {r["run_id"]: r for recs in done.values() for r in recs}
    if device in ("-", "", None):  # mlhw tables: the devices the runs recorded
        device = ", ".join(sorted({r["device"] for r in records.values() if r.get("device")})) or "-"
    datasets = sorted({r.get("dataset") for r in records.values() if r.get("dataset")})
    named = datasets_named(records.values())
    lines = [REPORT_HEADING.format(profile=scope.profile) + (" (partial)" if scope.partial else ""), ""]
    if scope.description and scope.partial:  # the profile's words ("every suite") are not this report's
        about = scope.description.strip()
        about += "" if about.endswith((".", "!", "?")) else "."
        lines += [f"The profile `{scope.profile}`: {about} This report holds part of it.", ""]
    elif scope.description:
        lines += [scope.description, ""]
    if scope.partial:
        lines += [
            "**A partial or overridden reproduction**: "
            + "; ".join(
                ([f"only {', '.join(scope.only)}"] if scope.only else []) + [f"`--set {s}`" for s in scope.overrides]
            )
            + f". The profile's full report is {full_report(scope.profile)}, beside this report's folder.",
            "",
        ]
    lines += [
        f"Datasets: {', '.join(named) or '-'}."
        + (
            " These runs used scikit-learn's 8x8 digits, not MNIST/CIFAR-10: the numbers are not the assignment's."
            if datasets == ["digits"]
            else ""
        )
        + (
            " Files that are not the official ones (synthetic, or changed) give no result of the assignment: "
            "their numbers measure the pipeline, not the models."
            if any(r.get("dataset_files") == NOT_OFFICIAL for r in records.values())
            else ""
        ),
        "",
    ]
    absent = [s for s in scope.expected if s not in done]
    if absent:
        why = (
            f"not part of this reproduction; the full profile's report is {full_report(scope.profile)}"
            if scope.partial
            else "no finished runs in the store"
        )
        see = "; see the Findings for the write-up's reference numbers where they exist" if findings else ""
        lines += [f"**Not reproduced here**: {', '.join(absent)} ({why}{see}).", ""]
    if findings:
        lines += ["## Findings", "", findings, ""]
    lines += settings_lines(scope, done)
    if scope.profile == "paper" and not any(s in done for s in T.CNN_TABLE_NAMES):
        lines += [
            "## Part 2: the write-up's reference (not reproduced here)",
            "",
            "CIFAR-10 was not available where this report was made: Part 2's baseline is the write-up's own "
            "table (CIFAR-10, 10 epochs, one run each), with an independent solution's validation accuracy.",
            "",
            T.to_markdown(T.reference_table()),
            "The write-up's table gives the run without BN/Dropout the loss 2.2486, the Adam lr 0.005 run's: a copy, "
            "left out here. " + CNN_TEST_NORMALISATION_NOTE,
            "",
        ]
    for t in tables:
        lines += [
            f"## {t.title}",
            "",
            T.to_markdown(t.display),
            f"(CSV: `tables/{t.name}.csv`, LaTeX: `tables/{t.name}.tex`)",
            "",
        ]
        if t.like in T.TABLE_NOTES:
            lines += [T.TABLE_NOTES[t.like], ""]
    if figures:
        lines += ["## Figures", ""]
        for caption, name in figures:
            lines += [_figure_line(caption, name), "", f"*{caption}*", ""]
    import mlflow

    spans = group_spans(records.values())
    total = sum(r["seconds"] for r in records.values() if not r.get("together")) + sum(spans.values())
    lines += [
        "## Environment",
        "",
        f"- mlhw {mlhw.__version__}, git commit `{git_commit() or 'unknown'}`" + made_by(records.values()),
        f"- Python {platform.python_version()}, mlflow {mlflow.__version__}",
        f"- device: {device}; machine: {_p.machine()}, {_p.processor() or _p.system()}",
        *threads_line(records.values()),
        f"- compiled {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} from {len(records)} "
        f"run{'s' * (len(records) != 1)}; total run time "
        f"{total:.1f} s (the runs' durations summed, whichever process ran them"
        + ("; runs trained together counted once)" if spans else ")"),
        f"- tracking store: `{store.uri}`, experiment `{store.experiment_name}`"
        + ("" if store.run_url("x") else " (`mlhw ui` opens it; run ids below)"),
        "",
        "## Runs",
        "",
        "| suite | run | seconds | MLflow run |",
        "|---|---|---|---|",
    ]
    for suite in scope.suites():
        for r in done.get(suite, []):
            g = r.get("together")
            others = int(g.rsplit("/", 1)[1]) - 1 if g else 0
            secs = f"{spans[g]:.1f} (one computation with {others} other{'s' * (others != 1)})" if g else None
            secs = secs or f"{r['seconds']:.1f}"
            label = r["label"] or T.Q1_METHODS.get(r.get("method"), "its one run")  # (the column was empty)
            lines.append(f"| {r['suite']} | {label} | {secs} | {run_link(store, r['run_id'])} |")
    if missing:
        lines += ["", missing_sentence(missing)]
    return "\n".join(lines) + "\n"


def made_by(records) -> str:
    """The commits of mlhw that made the runs, where any is not the one compiling the report (runs reused from an
    older checkout on the same store, or a classmate's clone on a shared server): the Environment named the
    compiling commit alone, as if it had made every run. '' where they all are (or none says)."""
    counts: dict[str, int] = {}
    for r in records:
        if r.get("commit"):
            counts[r["commit"]] = counts.get(r["commit"], 0) + 1
    if not counts or set(counts) == {git_commit()}:
        return ""
    each = ", ".join(f"`{c}` ({n} run{'s' * (n != 1)})" for c, n in sorted(counts.items(), key=lambda x: -x[1]))
    return f" (compiling the report); the runs were made by git commit {each}"


def threads_line(records) -> list[str]:
    """The Environment's line on the CPU threads the MLP and AlexNet runs trained on (tag mlhw.cpu_threads), where
    the runs say it: on a CPU a run's numbers depend on it (AlexNet's by more than noise), and `--jobs N` gives each
    worker its share of the cores, so a reader comparing two reports needs it (a review found Adam lr 0.005's
    78.85% and 71.54% on one machine, under --jobs 1 and --jobs auto). [] where no run says it."""
    counts: dict[int, int] = {}
    for r in records:
        if str(r.get("cpu_threads") or "").isdigit():
            counts[int(r["cpu_threads"])] = counts.get(int(r["cpu_threads"]), 0) + 1
    if not counts:
        return []
    each = ", ".join(f"{t} ({n} run{'s' * (n != 1)})" for t, n in sorted(counts.items()))
    return [
        f"- CPU threads of the processes that trained the MLP and AlexNet runs on the CPU: {each} (tag "
        "`mlhw.cpu_threads`; `--jobs N` gives each worker its share of the cores, `--executor ray` each task one, "
        "and AlexNet's numbers move with it)"
    ]


def _figure_line(caption: str, name: str) -> str:
    return f"![{caption}]({FIGURES}/{name})"


def report_in_run(text: str, specs, suite: str, parent_links: dict[str, str]) -> str:
    """REPORT.md as a suite's parent run logs it. MLflow's viewer shows no images: each figure read as a raw
    "[caption](figures/x.png)" line, and three of the four are another parent's artifacts. Each figure line says
    where the figure is instead: this run's artifacts, or the parent run of its suite (`parent_links`: suite ->
    the UI's link to that run). `specs`: figure_specs's (suite, file name, caption, draw)."""
    for s, name, caption, _ in specs:
        if s == suite:
            where = "this run's artifacts"
        elif s in parent_links:
            where = f"the artifacts of [{s}'s parent run]({parent_links[s]})"
        else:
            where = f"the artifacts of {s}'s parent run"
        text = text.replace(_figure_line(caption, name), f"Figure `{FIGURES}/{name}`: in {where}.")
    return text


def missing_sentence(missing: list[Entry]) -> str:
    """The runs not finished, each once (a run shared by suites is one run, as the plan counts it) with the suites
    it serves: '**1 planned run is not finished** ...: Adam lr=5e-5 (cnn_optimizers, cnn_adam_lr)'."""
    suites: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for e in missing:
        suites.setdefault(e.identity, []).append(e.suite)
        labels.setdefault(e.identity, e.label)
    n = len(suites)
    runs = ", ".join(
        f"{labels[i]} ({', '.join(s)})" if len(s) > 1 else f"{s[0]} {labels[i]}" for i, s in suites.items()
    )
    verb = "run is" if n == 1 else "runs are"
    return f"**{n} planned {verb} not finished** and missing from the tables: {runs}"


MLP_SUITES = ("mlp_lr_sweep", "mlp_full")
SVM_SUITES = ("svm_multiclass", "svm_soft")
SETTINGS_SKIPPED = ("kind", "dataset", "train_size", "test_size", "seed")  # shown apart, or the kind itself


def settings_lines(scope: Scope, done: dict[str, list[dict]]) -> list[str]:
    """## Settings: what each suite ran (its data and sizes, the settings its runs share, what varies between them,
    the seeds), the runs two suites share, and what ± means. A reader of the numbers needs these: the same
    table on digits and on MNIST means different things."""
    lines = ["## Settings", ""]
    owner: dict[str, str] = {}
    shared: dict[tuple[str, str], int] = {}
    for suite in scope.suites():
        recs = done.get(suite, [])
        if not recs:
            continue
        # the planned configs (a record also holds the run's metrics, some of the same name: Q1's `steps`)
        configs = [e.config for e in scope.entries if e.suite == suite] or [{}]
        what = scope.descriptions.get(suite)
        why = T.untabled_reason(suite, configs[0].get("kind"), len(recs))
        untabled = f" No table shows this suite ({why})." if why else ""
        lines.append(f"- **{suite}**" + (f" ({what})" if what else "") + _suite_settings(configs, recs) + untabled)
        for r in recs:
            first = owner.setdefault(r["run_id"], suite)
            if first != suite:
                shared[(first, suite)] = shared.get((first, suite), 0) + 1
    return lines + ["", " ".join(_settings_notes(scope, done, shared)), ""]


def _suite_settings(configs: list[dict], recs: list[dict]) -> str:
    """': digits, 300 train / 100 test; hidden 40, epochs 3, ...; lr: 0.01, 0.1, 100; seed 8.' (or '.')"""
    keys = [k for k in configs[0] if k not in SETTINGS_SKIPPED and k in recs[0]]
    kind = configs[0].get("kind")
    if kind == "theory":  # its table's `data` column says what each check ran on
        keys = []
    if all(c.get("method") == "exact" for c in configs):  # Q1's exact method takes no steps and no rate
        keys = [k for k in keys if k not in ("steps", "lr")]
    if kind == "cnn":  # the pairs that ran, not a grid of optimizer x lr x batchnorm
        keys = [k for k in keys if k not in CNN_VARIANT_FIELDS]  # named as variants, not a grid
        if not any(c.get("optimizer") == "sgd" for c in configs):
            keys = [k for k in keys if k != "momentum"]  # Adam has none
    two_classes = "classes" in configs[0]
    if two_classes and all(r.get("classes") and "n_train" in r for r in recs):
        keys = [k for k in keys if k != "classes"]  # the data part names them: 'digits 3 vs 8, 264 train / ...'
    # a field only some runs read is told from those runs alone: Adam's momentum (always 0) is no second value
    among = {"momentum": [c for c in configs if c.get("optimizer") == "sgd"]} if kind == "cnn" else {}
    same = [k for k in keys if all(c.get(k) == among.get(k, configs)[0].get(k) for c in among.get(k, configs))]
    varies = [k for k in keys if k not in same]
    splits = ("train", "val", "test") if kind == "cnn" else ("train", "test")  # the MLP uses no val
    parts = [" or ".join(dict.fromkeys(_data_of(r, splits, two_classes) for r in recs if r.get("dataset")))]
    if kind == "cnn":
        variants = dict.fromkeys(cnn_title(c["optimizer"], c["lr"], c["batchnorm"], c["dropout"]) for c in configs)
        parts.append(("variants " if len(variants) > 1 else "variant ") + " vs ".join(variants))
    named = {"momentum": "SGD momentum"}  # what reads it
    parts.append(", ".join(f"{named.get(k, k)} {_setting(k, among.get(k, configs)[0][k])}" for k in same))
    parts += [
        f"{named.get(k, k)}: " + ", ".join(dict.fromkeys(_setting(k, c.get(k)) for c in among.get(k, configs)))
        for k in varies
    ]
    seeds = list(dict.fromkeys(r["seed"] for r in recs if r.get("seed") is not None))
    if seeds and any("seed" in c for c in configs):
        parts.append("seed" + "s" * (len(seeds) > 1) + " " + ", ".join(map(str, seeds)))
    body = "; ".join(p for p in parts if p)
    return f": {body}." if body else "."


def _settings_notes(scope: Scope, done: dict[str, list[dict]], shared: dict[tuple[str, str], int]) -> list[str]:
    """What a reader of the tables needs beside the settings: (a) is (b)'s lr 0.1 row, AlexNet's size, why the
    SVMs stay on digits, the runs two suites share, what ± (and a figure's band) means."""
    notes = []
    if scope.overrides:  # 'Part 1 (c): the full run, lr 0.1' beside 'lr 0.5' read as a contradiction
        notes.append(
            f"The suites' descriptions are as the profile's file writes them; this reproduction's "
            f"{' '.join(f'`--set {o}`' for o in scope.overrides)} changed its runs, and the settings above are theirs."
        )
    rates = {r.get("lr") for r in done.get("mlp_lr_sweep", [])}
    if 0.1 in rates:
        notes.append(
            "Part 1 (a), the skeleton's run (in the assignment: lr 0.1, batch 10, 30 epochs, 10,000 / 5,000 MNIST "
            "images), is Part 1 (b)'s lr 0.1 row."
        )
    paper = CNN_PRESETS["cifar10"]
    cnn = [e.config for e in scope.entries if e.suite in T.CNN_TABLE_NAMES and e.suite in done]  # reported runs
    small = {
        (c.get("width"), c.get("image_size"))
        for c in cnn
        if (c.get("width"), c.get("image_size")) != (paper["width"], paper["image_size"])
    }
    for width, px in sorted(small):
        notes.append(
            f"AlexNet here is {width:g} of the paper's width at {px} px (the assignment's: width 1 at 227 px, "
            f"58 million parameters): the same layers, narrower and on smaller images."
        )
    fractions = {c.get("train_fraction") for c in cnn} - {paper["train_fraction"], None}
    cnn_sizes = [r.get("sizes") or {} for suite in T.CNN_TABLE_NAMES for r in done.get(suite, [])]
    trains, vals = {z.get("train") for z in cnn_sizes} - {None}, {z.get("val") for z in cnn_sizes} - {None}
    for fraction in sorted(fractions):  # digits' whole pool where CIFAR-10 takes 10%: say why, and what it costs
        share = "its whole training pool" if fraction == 1 else f"{100 * fraction:g}% of its training pool"
        pool = f", {min(trains):,} images," if len(trains) == 1 else ""
        per = (
            f"; with {min(vals):,} validation images, one image is {100 / min(vals):.2f} points"
            if len(vals) == 1
            else ""
        )
        notes.append(
            f"AlexNet trains on {share} here{pool} where the assignment's CIFAR-10 runs take "
            f"{100 * paper['train_fraction']:g}% of 45,000 (4,500 images){per}."
        )
    notes += _numerics_notes(done)
    datasets = {r.get("dataset") for s in MLP_SUITES for r in done.get(s, [])}
    if "mnist" in datasets and any(r.get("dataset") == "digits" for s in SVM_SUITES for r in done.get(s, [])):
        notes.append(
            "Q1 and Q3 run on digits: Q1's claim needs linearly separable data, which MNIST is not, and its linear "
            "program on MNIST would have half a million constraints."
        )
    for (first, second), n in shared.items():
        # an added suite may have no table (T.untabled_reason): "counted in both tables" was said of it too
        tabled = [s for s in (second, first) if T.table_of(s, done[s][0].get("kind"), len(done[s]))]
        counted = (
            "counted in both tables"
            if len(tabled) == 2
            else f"counted in the table of {tabled[0]}"
            if tabled
            else "in no table"
        )
        notes.append(
            f"{second} and {first} share {n} run{'s' * (n != 1)} (the same settings: one MLflow run each, {counted})."
        )
    # the figures' spread is not the tables': lr 1's 73.12% ± 20.16% (digits) is a band from 59.68% to 96.30%. Said
    # where a figure has a band: a figure's suite over several seeds (not mlp_full, which has no figure, nor the ci
    # profile's one seed a line)
    curves = any(len({r.get("seed") for r in recs}) > 1 for suite, recs in done.items() if _draws_figure(suite, recs))
    notes.append(
        "In the tables, ± is the sample standard deviation (n - 1) over the seeds and n the number of seeds"
        + (
            "; in the figures, a line is the mean over the seeds and its shaded band their range (min to max), "
            "not ± one standard deviation"
            if curves
            else ""
        )
        + "; a seed sets the initialisation, the order of the data, Dropout's masks and any subset drawn."
    )
    return notes


def _numerics_notes(done: dict[str, list[dict]]) -> list[str]:
    """Where the runs compute otherwise than the assignment: digits' 64-pixel input, the MLP's float32 and its
    stable softmax, AlexNet's autocast. The Settings showed 'hidden 40', 'dtype float32' and the tables 'precision
    bf16' without saying that the assignment's network is [784, 40, 10], that its skeleton computes in NumPy float64
    (and overflows at large rates), or what bf16 stands for."""
    notes = []
    mlp = [r for s in MLP_SUITES for r in done.get(s, [])]
    if any(r.get("dataset") == "digits" for r in mlp):
        notes.append(
            "On digits the MLP's input layer has 64 units (8x8 images) where the assignment's [784, 40, 10] network "
            "reads 28x28 MNIST images."
        )
    if any(r.get("dtype") == "float32" for r in mlp):
        notes.append(
            "The MLP trains in float32 where the skeleton computes in NumPy float64 (`--set dtype=float64` for its "
            "precision)."
        )
    large = sorted({r["lr"] for r in mlp if isinstance(r.get("lr"), int | float) and r["lr"] >= 10})
    if large:
        notes.append(
            "The MLP's softmax subtracts each row's maximum, where the skeleton's overflows at large rates (the "
            f"assignment expects it): lr {' and '.join(f'{v:g}' for v in large)} give{'s' * (len(large) == 1)} finite, "
            "recorded losses here, "
            "a collapse to chance or a divergence, not an overflow."
        )
    cnn = {str(r["precision"]) for s in T.CNN_TABLE_NAMES for r in done.get(s, []) if r.get("precision")}
    for p in sorted(cnn - {"fp32"}):
        notes.append(
            f"AlexNet trained with {p} autocast (the tables' precision column: `--precision auto` picks it where the "
            "hardware has it natively); the assignment names no precision, and PyTorch trains in float32 unless told "
            "otherwise (`mlhw reproduce --precision fp32 --force` trains these runs in it)."
        )
    return notes


def _data_of(r: dict, splits: tuple[str, ...], two_classes: bool) -> str:
    """'digits, 1,297 train / 500 test': a run's dataset and the sizes its run logged. A two-class SVM trains on
    the part of the data in its two classes: its own n_train / n_test metrics ('digits 3 vs 8, 264 train / ...')."""
    name, sizes = r["dataset"], r.get("sizes") or {}
    if two_classes:  # the dataset's logged sizes would mislead; a run without n_train (older) names no size
        sizes = {k: int(r[f"n_{k}"]) for k in splits if isinstance(r.get(f"n_{k}"), int | float)}
        if sizes and r.get("classes"):
            name += " " + r["classes"].replace("vs", " vs ")
    if not sizes:
        return name
    return f"{name}, " + " / ".join(f"{sizes[k]:,} {k}" for k in splits if k in sizes)


def _setting(key: str, v) -> str:
    if key == "bias" and isinstance(v, str):  # the soft SVM's: 'free' is a bias outside the penalty, not none
        return {"free": "free (not penalised)", "regularized": "penalised with w"}.get(v, v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):  # hidden [100, 40] -> 100x40; classes [3, 8] -> 3 vs 8
        if not v:
            return "none"  # hidden []: no hidden layer
        return (" vs " if key == "classes" else "x").join(map(str, v))
    return str(v)


def group_spans(records) -> dict[str, float]:
    """Runs trained together (one batched MLP computation; tag mlhw.trained_together) -> the seconds from
    the first one's start to the last one's end: each run's own start..end is that span less the time its
    siblings took to be created, and their sum counted the computation once per run."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r.get("together"):
            groups.setdefault(r["together"], []).append(r)
    return {g: (max(r["end"] for r in rs) - min(r["start"] for r in rs)) / 1000 for g, rs in groups.items()}


def scope_from_store(store: Store, profile: str, suites: list[str] | None = None) -> Scope:
    """The newest full (not partial) reproduction of a profile, as its suite parent runs record it."""
    from mlhw.errors import MLHWError
    from mlhw.store import named, sqlite_path

    # no database at all (run from another folder: `cd /tmp && uv run --project DIR mlhw check`): it said "no finished
    # reproduction ...; run `mlhw reproduce` first"
    if store.experiment_id is None and store.client is None and (path := sqlite_path(store.uri)) is not None:
        raise MLHWError(
            f"{named(store.uri)}: no database at {path.absolute()}: no reproduction was logged there (run from the "
            "project folder, where `mlhw reproduce` made its mlflow.db, or pass --tracking-uri)"
        )
    if store.experiment_id is None and store.client is not None:  # the store is there, the experiment is not: it
        # said "--profile P: no finished reproduction ... (experiment 'nope'; profiles there: none)": the wrong culprit
        names = store.experiment_names()
        # in this store: without --tracking-uri it made the experiment in $MLFLOW_TRACKING_URI's or ./mlflow.db
        words = ["mlhw", "reproduce", "--profile", profile]
        words += ["--tracking-uri", store.uri] if store.uri != resolve_uri(None) else []
        words += experiment_words(store.experiment_name)
        raise MLHWError(
            f"{store.experiment_culprit()}: no such experiment in {store.uri} (experiments there: "
            f"{', '.join(names) or 'none'}); name one of them, or `{shlex.join(words)}` makes it"
        )
    parents = store.search(
        f"tags.`mlhw.kind` = 'suite' and tags.`mlhw.profile` = '{profile}' and attributes.status = 'FINISHED'"
    )
    parents = [r for r in parents if r.data.tags.get(PARTIAL_TAG) != "true"]  # newest first
    # the suites of the latest report (a parent reused by a later reproduction is tagged again): one the profile
    # has since lost is not brought back from its older parent
    latest = max(parents, key=_compiled, default=None)
    expected = json.loads(latest.data.tags.get(PROFILE_SUITES_TAG, "[]")) if latest else []
    settled = by_identity(store) if parents else {}
    chosen, older, other = _this_code(store, _candidates(parents, expected, suites), settled)
    theirs = {s for by in other.values() for s in by}
    mine = [run for suite, (run, _) in chosen.items() if suite not in theirs]
    if mine and _other_code(_planned(store, latest), settled):
        # the latest report ran other code (an older checkout run again since): its suites are that code's profile's,
        # and a suite this code's profile added was left out of the report (`mlhw check` then failed it as missing);
        # this code's latest report names this code's
        expected = json.loads(max(mine, key=_compiled).data.tags.get(PROFILE_SUITES_TAG, "[]"))
        chosen, older, other = _this_code(store, _candidates(parents, expected, suites), settled)
    entries, descriptions, about = [], {}, ""
    for suite, (run, planned) in chosen.items():
        descriptions[suite] = run.data.tags.get("mlflow.note.content", "").split("\n\n")[0]  # not the shared-runs note
        about = about or run.data.tags.get(PROFILE_DESCRIPTION_TAG, "")
        entries += planned
    # in the profile's order, as `reproduce` has them (the parents came newest first): an added suite's table,
    # figure and settings line are placed by it, and `mlhw tables` wrote them in another order than `reproduce`
    rank = {s: i for i, s in enumerate(expected)}
    entries.sort(key=lambda e: rank.get(e.suite, len(rank)))
    if not entries:
        suites_there = store.search("tags.`mlhw.kind` = 'suite'")
        there = sorted({r.data.tags.get("mlhw.profile", "") for r in suites_there} - {""})
        way = _way_on(profile, [r for r in suites_there if r.data.tags.get("mlhw.profile") == profile])
        raise MLHWError(
            f"--profile {profile}: no finished reproduction of this profile in {store.uri} "
            f"(experiment {store.experiment_name!r}; profiles there: {', '.join(there) or 'none'}); {way}"
        )
    notes = []
    if older:  # an older mlhw run after this one (another clone on a shared store, a checkout of an old commit)
        notes.append(
            f"{_suites_by(older, rank)}: the store's newest reproduction of these ran other code than this mlhw's; "
            "the newest that ran this code is taken, as `mlhw reproduce` reports it"
        )
    if other:
        notes.append(
            f"{_suites_by(other, rank)}: no reproduction in the store ran this mlhw's code; the newest is taken, of "
            f"other code (`mlhw reproduce --profile {profile}` runs this code's)"
        )
    return Scope(profile, entries, descriptions, description=about, expected=expected, notes=notes)


def _compiled(parent) -> float:
    """When a report was last compiled from a suite parent (a reproduction that reused it tags it again)."""
    return stamp_seconds(parent.data.tags.get(COMPILED_TAG)) or parent.info.start_time / 1000


def _candidates(parents: list, expected: list[str], suites: list[str] | None) -> dict[str, list]:
    """suite -> its parents, newest first: the suites of the profile's latest report (`expected`), of `suites`."""
    candidates: dict[str, list] = {}
    for run in parents:
        suite = run.data.tags.get("mlhw.suite")
        if not ((expected and suite not in expected) or (suites and suite not in suites)):
            candidates.setdefault(suite, []).append(run)
    return candidates


def _planned(store: Store, parent) -> list[Entry]:
    """A suite parent's planned runs (its plan.json)."""
    return [Entry(**e) for e in json.loads(store.download_text(parent.info.run_id, "plan.json"))]


def _this_code(store: Store, candidates: dict[str, list], settled: dict) -> tuple[dict, dict, dict]:
    """Each suite's parent for a report from the store: the newest whose runs this mlhw's code computed (tag
    mlhw.code_digest), else the newest. Identities include the code, so an older mlhw run after this one on a shared
    store made parents of other runs: `mlhw tables` rebuilt results/<profile>/ from them in silence, and `mlhw check`
    failed on a 'drift' of an old draw of the test subset, where `mlhw reproduce` found this code's runs up to date.
    Returns suite -> (its parent, its planned runs), and the suites whose newest parent ran other code, by the commit
    that made it: those that found this code's in an older parent, and those that did not."""
    chosen, older, other = {}, {}, {}
    for suite, runs in candidates.items():
        planned, mine = {}, None
        for run in runs:  # newest first: the newest of this code's ends the search (one plan read, as a rule)
            planned[run.info.run_id] = _planned(store, run)
            if not _other_code(planned[run.info.run_id], settled):
                mine = run
                break
        pick = mine or runs[0]
        chosen[suite] = (pick, planned[pick.info.run_id])
        if mine is not runs[0]:
            commit = runs[0].data.tags.get("mlflow.source.git.commit", "")[:7] or "unknown"
            (older if mine else other).setdefault(commit, []).append(suite)
    return chosen, older, other


def _other_code(entries: list[Entry], settled: dict) -> bool:
    """Whether a finished run of these entries was computed by other code than this mlhw's: its mlhw.code_digest
    differs (or is absent: runs from before mlhw tagged it). Unknown where this mlhw cannot tell its own digest."""
    from mlhw.config import code_digest

    for e in entries:
        here = code_digest(str(e.config.get("kind", "")))
        found = settled.get(e.identity)
        if here and found is not None and found.status == "FINISHED":
            if found.run.data.tags.get("mlhw.code_digest") != here:
                return True
    return False


def _suites_by(by_commit: dict[str, list[str]], rank: dict[str, int]) -> str:
    """'mlp_lr_sweep, theory (made by git commit 91682ec)', the suites in the profile's order."""
    order = lambda s: rank.get(s, len(rank))  # noqa: E731
    return "; ".join(f"{', '.join(sorted(s, key=order))} (made by git commit {c})" for c, s in by_commit.items())


def _way_on(profile: str, parents: list) -> str:
    """What to do without a finished reproduction, from what the store holds of the profile's suite parents."""
    running = sum(r.info.status == "RUNNING" for r in parents)
    stopped = sum(r.info.status in ("KILLED", "FAILED") for r in parents)
    partial = sum(r.info.status == "FINISHED" and r.data.tags.get(PARTIAL_TAG) == "true" for r in parents)
    run = f"`mlhw reproduce --profile {profile}`"
    if running:
        return (
            f"a reproduction of it is running ({running} suite run(s) RUNNING): wait for it, or if its process is "
            f"gone, {run} takes over"
        )
    if stopped:
        return f"its reproduction was stopped ({stopped} suite run(s) KILLED or FAILED): {run} goes on from there"
    if partial:
        with_set = any(
            json.loads(r.data.tags.get(OVERRIDES_TAG) or "{}").get("set")
            for r in parents
            if r.info.status == "FINISHED" and r.data.tags.get(PARTIAL_TAG) == "true"
        )
        # a --set one's runs are other runs (epochs=2): `reproduce` trains the profile's own, it does not take them
        reuse = (
            "runs made with --set are not the profile's: it trains its own"
            if with_set
            else "the runs an --only one made are not run again"
        )
        return (
            f"only partial reproductions of it (--only or --set: {partial} suite run(s)): {run} makes a full one "
            f"({reuse})"
        )
    from mlhw.experiments import default_file, file_words

    path = default_file()
    known = profiles_of(path)
    if known is not None and profile not in known:
        return f"{file_words(path)} has no profile {profile!r} either (its profiles: {', '.join(known)})"
    return f"run {run} first" + ("" if known is not None else " if your experiments file has it")


def profiles_of(path: str) -> list[str] | None:
    """The profiles of an experiments file (default_file's: the working folder's, else the copy installed with mlhw);
    None where it is absent or does not load (its own errors belong to the commands that run it)."""
    from mlhw.experiments import load_file

    try:
        return list(load_file(path).profiles)
    except Exception:  # noqa: BLE001 - only a hint depends on it
        return None
