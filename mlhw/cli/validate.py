"""`mlhw reproduce`'s one validation pass: everything that can fail on bad input (the file and every config, --set,
the device and precision, the data, the results folder, the tracking store, --jobs / --executor / --ray-address)
fails here, in one line naming the culprit, before any run exists."""

from __future__ import annotations

import collections
import re
import shlex

from mlhw.cli.common import err
from mlhw.layout import TABLES, profile_folder, table_file


def validate(
    file,
    profile,
    only,
    sets,
    device,
    data_dir,
    download,
    results_dir,
    tracking_uri,
    experiment,
    stale_after,
    dry_run,
    force=False,
    on_work=None,
    data_dir_given=False,
    precision="auto",
):
    """Everything that can fail on bad input, before any run exists: the file and every config, the device,
    the data (read and checked), the results folder and the tracking store. Returns (spec, source, store, plan,
    baseline): the experiments file, the data source, the store, the plan, and the committed results the
    reproduction is gated against (`_baseline`; None where there are none, or --set changes the runs).
    `on_work(configs, profile_jobs)` is called as soon as it is known that runs will train (a new store: at once;
    else once the plan is made): --jobs N starts its workers there, beside the checks left. `data_dir_given`:
    --data-dir was given on the command line (MLHW_DATA_DIR, any command's, is not refused where no run reads it)."""
    from mlhw.errors import DataNotFound, MLHWError
    from mlhw.experiments import expand, load_file
    from mlhw.layout import check_writable
    from mlhw.plan import make_plan
    from mlhw.runs import DataSource
    from mlhw.store import Store

    spec = load_file(file)
    specs = expand(spec, profile, only, sets or [], file)
    if sets and len(kept := _sets_that_change(spec, profile, only, sets, file, specs)) < len(sets):
        sets, specs = kept, expand(spec, profile, only, kept, file)
    _check_device(device, present=False)
    _check_precision(precision, device, present=False)
    check_writable(results_dir, profile)  # a dry run too: it said `report: /proc/x/digits/` of a run refused
    source = DataSource(data_dir, False if dry_run else download, device)  # (refuses an empty --data-dir)
    if data_dir_given or download:
        # the runs that would read the folder: the chosen suites', and with --only (no --set) the other suites' too,
        # whose done runs the report is made of (a download is for the chosen suites' alone)
        others = [s for s in expand(spec, profile, None, [], file) if s.suite not in only] if only and not sets else []
        given = data_dir if data_dir_given else None
        _refuse_unread_data_options(spec, profile, specs, others, given, download, file, only or [], sets or [])
    store = Store(tracking_uri, experiment, create=False)  # read only: nothing is created before the checks end
    if not dry_run:
        store.check_artifacts_writable()
    # the committed results this reproduction is checked against, read now: a broken check.yaml or table stops it
    # before --jobs N's workers start (2.5 s to the error on the 2-core CPU instead of 6.7 s)
    restore_report(profile_folder(results_dir, profile), dry_run)
    committed = _committed(profile_folder(results_dir, profile), sets, file, profile)
    if (
        on_work is not None
        and not dry_run
        and store.experiment_id is None
        and download is not True  # --download fetches even files that are here: the parent's alone
        and _files_present(specs, data_dir)
    ):
        # an experiment (or a database) that does not exist yet: every planned run will train, known before the data
        # are read and checked and the plan made, where the workers start otherwise (2.5 s of the paper profile's
        # start-up on this project's 2-core CPU, the fingerprint cache empty, as on a fresh machine). Not where a
        # dataset is absent: its download is the parent's alone.
        _no_gpu_driver_for(device)
        on_work([s.config for s in specs], spec.profiles[profile].jobs)
    # the files read and checked (labels, sizes, dtypes; unchanged files are not read again); a dry run lists
    # the runs of an absent dataset without identities
    missing = _unreadable(specs, data_dir, False if dry_run else download, DataNotFound if dry_run else ())
    descriptions = {s: spec.suites[s].description for s in spec.suites}
    plan = make_plan(specs, store, source, profile, stale_after, descriptions, sets or [], only or [], missing)
    plan.jobs = spec.profiles[profile].jobs  # --jobs where it is not given (_Workers)
    if on_work is not None and not dry_run and (plan.pending() or force):
        _no_gpu_driver_for(device)
        on_work([p.spec.config for p in (plan.entries if force else plan.pending())], plan.jobs)
    # only what will run: a done run's sizes fitted its data, and checking them would read every dataset on a
    # no-op reproduce (the fingerprint cache spares that read)
    _check_data([p.spec for p in plan.pending()], source, missing)
    # something will train: the device must be here (a no-op spares torch's import; a dry run trains nothing, and
    # plans a GPU reproduction on a laptop)
    if not dry_run and (plan.pending() or force):
        _check_device(device)
        _check_precision(precision, device)
    plan.all_suites = list(spec.suites)  # a profile runs every suite; its `suites` only override them
    plan.description = spec.profiles[profile].description
    if only and not sets:  # the report stays whole: the other suites' done runs, found by identity, not run
        full = expand(spec, profile, None, [], file)
        rest = [s for s in full if s.suite not in only]
        # never a download, and never an error, for runs that will not run: an absent or broken dataset's
        # suites are reported as not reproduced
        unread = missing | _unreadable(
            [s for s in rest if getattr(s.config, "dataset", None) not in missing], data_dir, False, MLHWError
        )
        plan.rest = make_plan(rest, store, source, profile, stale_after, no_data=unread).entries
        from mlhw.tables import SUITE_TABLES

        folder = profile_folder(results_dir, profile)
        plan.reported = {s for s in spec.suites if table_file(folder, SUITE_TABLES.get(s, s)).is_file()}
        if not plan.report_only:
            # The other suites' runs are all done: the report is the profile's whole one, and so is the plan, as a
            # full reproduce's would be (it would run the same). Their suites get parent runs, the stamp covers
            # them and every table is checked: `mlhw tables` reads what this report shows (the other suites were
            # taken from experiments.yaml while `tables` took them from older parents, and were never checked).
            order: dict[str, int] = {}
            for s in full:
                order.setdefault(s.suite, len(order))
            done = [p for p in plan.rest if p.status == "done"]
            plan.entries = sorted(plan.entries + done, key=lambda p: order[p.spec.suite])  # stable: a full plan's
            plan.rest = [p for p in plan.rest if p.status != "done"]  # an absent dataset's: not reproduced
    baseline = _baseline(committed, plan)
    if not dry_run and store.experiment_id is None:
        store = Store(tracking_uri, experiment)
    return spec, source, store, plan, baseline


def _reads_files(specs) -> list[str]:
    """The datasets of `specs` read from files (--data-dir), in order: every one but the embedded digits."""
    return [n for n in dict.fromkeys(getattr(s.config, "dataset", None) for s in specs) if n not in (None, "digits")]


def _refuse_unread_data_options(spec, profile, chosen, others, data_dir, download, file, only, sets) -> None:
    """--data-dir DIR (`data_dir`: None where the command line did not give it) or --download where no planned run
    would use it: digits is embedded, and the folder was ignored in silence (`up to date: 39 runs` on the digits
    profile), where a single command refuses it. The folder is read for the `chosen` suites' runs and for `others`
    (--only's other suites, whose done runs the report takes); a download is for the chosen suites' alone. The hint
    names the profiles that use it (this one too, where --only or --set made its runs use none)."""
    from mlhw.errors import MLHWError
    from mlhw.experiments import expand

    folder_unused = data_dir is not None and not _reads_files(chosen + others)
    download_unused = bool(download) and not _reads_files(chosen)
    if not (folder_unused or download_unused):
        return
    culprit = " and ".join([f"--data-dir {data_dir}"] * folder_unused + ["--download"] * download_unused)
    verb, tail = ("reads", " from it") if folder_unused else ("downloads", "")
    narrowed = (["--only"] if only and (sets or not folder_unused) else []) + (["--set"] if sets else [])
    plan = f"profile {profile}" + (f", --only {' --only '.join(only)}" if "--only" in narrowed else "")
    plan += ", --set" if sets else ""
    ways = []
    for p in spec.profiles:
        if p != profile or narrowed:
            names = _reads_files(expand(spec, p, None, [], file))
            way = f"--profile {p}" if p != profile else f"profile {profile} without {' and '.join(narrowed)}"
            ways += [f"{way} {verb} {' and '.join(names)}{tail}"] if names else []
    raise MLHWError(
        f"{culprit}: not used here: no planned run ({plan}) {verb} a dataset{' from files' * folder_unused} (digits "
        "is embedded); " + ("; ".join(ways) or f"a suite on mnist or cifar10 {verb} it")
    )


def _check_precision(precision: str, device: str, present: bool = True) -> None:
    """--precision fp16 needs a CUDA GPU: refused on --device cpu at once and where no GPU driver is, before the
    workers start and without importing torch; then (`present`) by the rule itself (mlhw.device.select_precision)
    on the device --device resolves to."""
    if precision != "fp16":
        return
    from mlhw.executors import gpu_driver_absent

    if device == "cpu" or gpu_driver_absent():
        from mlhw.errors import MLHWError

        raise MLHWError("--precision fp16 needs a CUDA GPU: on a CPU use bf16, fp32 or auto")
    if present:
        from mlhw.cnn import resolve_precision
        from mlhw.device import resolve_device

        resolve_precision(precision, resolve_device(device))


def _no_gpu_driver_for(device: str) -> None:
    """--device cuda where no GPU driver is: said before any worker starts (3 s sooner than torch's own check)."""
    from mlhw.executors import gpu_driver_absent

    if device != "auto" and device != "cpu" and gpu_driver_absent():
        _check_device(device)


def _files_present(specs, data_dir) -> bool:
    from mlhw.data import files_present
    from mlhw.runs import data_dir_errors

    with data_dir_errors(data_dir):
        return files_present({s.config.dataset for s in specs if getattr(s.config, "dataset", None)}, data_dir)


def _unreadable(specs, data_dir, download, tolerated) -> set[str]:
    """The datasets of `specs` whose files fail check_dataset with a `tolerated` error; any other error is raised."""
    from mlhw.data import check_dataset
    from mlhw.errors import DataNotFound
    from mlhw.runs import data_dir_errors

    out, absent = set(), {}
    for name in [n for n in dict.fromkeys(getattr(s.config, "dataset", None) for s in specs) if n is not None]:
        try:
            with data_dir_errors(data_dir):
                check_dataset(name, data_dir, download)
        except tolerated:
            out.add(name)
        except DataNotFound as exc:
            absent[name] = exc
    if absent:  # the first one's error, and the way forward without all of them: the suites that read none
        first = next(iter(absent.values()))
        needs = {s.suite for s in specs if getattr(s.config, "dataset", None) in absent}
        rest = [s for s in dict.fromkeys(s.suite for s in specs) if s not in needs]
        if not rest:
            raise first
        also = f" (absent too: {', '.join(list(absent)[1:])})" if len(absent) > 1 else ""
        raise DataNotFound(
            f"{first}{also}; or run the suites without {' and '.join(absent)}: {' '.join(f'--only {s}' for s in rest)}"
        ) from None
    return out


def _check_data(specs, source, missing) -> None:
    """A run whose data cannot be trained on (a subset larger than its pool, a soft SVM's subset without one of
    its classes, a CNN split under 2 images) fails here, naming where the value was set, not as a started run."""
    from mlhw.errors import MLHWError

    # MLP runs that differ only in seed and lr train as one network of seeds x rates replicas (mlhw.plan.units)
    seeds, lrs = collections.defaultdict(set), collections.defaultdict(set)
    for spec in specs:
        if spec.kind == "mlp":
            seeds[spec.config.batch_key()].add(spec.config.seed)
            lrs[spec.config.batch_key()].add(spec.config.lr)
    for spec in specs:
        cfg = spec.config
        key = cfg.batch_key() if spec.kind == "mlp" else None
        replicas = len(seeds[key]) * len(lrs[key]) if key else 1
        if getattr(cfg, "dataset", None) in missing or not source.may_be_unusable(cfg, replicas):
            continue  # the dataset is not read here (with --jobs N the workers read it anyway)
        problem = source.unusable(cfg, replicas)
        if problem is not None:
            raise MLHWError(f"{spec.culprit(problem[0])}: {problem[1]}")


def restore_report(folder, dry_run=False) -> None:
    """The report a killed process's swap left aside (layout.put_back) is the profile's baseline: put back before it
    is read, or this reproduction found no baseline and was checked against nothing. A dry run only says it. A
    `folder` that is a link is put back where it points, as the report swapped it there (layout.swapped): the link
    left dangling read as no baseline, and the report was put back unchecked by the report that replaced it."""
    from mlhw.layout import moved_aside, put_back, swapped
    from mlhw.lifecycle import token_gone

    def say(text: str) -> None:
        err.print(text, highlight=False, soft_wrap=True)

    target = swapped(folder)
    if not dry_run and (aside := put_back(target)) is not None:
        say(f"put back {folder}/: a process killed while it replaced the report had left it in {aside.name}/")
        return
    if target.exists() or target.is_symlink() or not (found := moved_aside(target)):
        return
    if dry_run and (gone := [p for p, token in found if token_gone(token)]):  # (which writes nothing)
        say(
            f"{folder}/ is missing: a process killed while it replaced the report had left it in {gone[0].name}/; "
            "`mlhw reproduce`, `mlhw tables` or `mlhw check` puts it back"
        )
        return
    path = found[0][0]
    # a swap by another machine (a shared folder), before a reboot (the token names the boot) or still under way: not
    # put back, which said nothing, and this reproduction went on unchecked with the old report hidden; a dry run
    # said that `mlhw reproduce` would put it back
    say(
        f"{folder}/ is missing: {path.name}/ beside it is the report a swap moved aside, by a process of another "
        f"machine or boot, or still running, so it is left alone; `mv {shlex.quote(str(path))} "
        f"{shlex.quote(str(target))}` puts it back where no process is replacing it"
    )


def _committed(folder, overrides, file, profile):
    """The profile's committed results, read before this reproduction replaces them (None: no baseline; --set
    `overrides` change the runs: nothing to compare with); where the folder has none, and the experiments file is the
    one installed with mlhw, the baseline shipped beside it (experiments.shipped_baseline). CheckConfigError (exit 2),
    naming the file, before any run exists."""
    from mlhw.experiments import shipped_baseline

    if overrides:
        return None
    if not (folder / TABLES).is_dir() and (folder := shipped_baseline(file, profile)) is None:
        return None
    from mlhw.check import load_baseline  # pandas: only where there is a baseline to read

    return load_baseline(folder)


def _baseline(baseline, plan):
    """What the committed results (`_committed`) check this reproduction on: a partial report (--only, the other
    suites not all done) on the tables of the suites that run."""
    import dataclasses

    from mlhw.tables import table_of

    if baseline is None:
        return None

    def table(suite: str) -> str | None:  # a built-in suite's table, or an added suite's own (tables.table_of)
        specs = [p.spec for p in plan.entries + plan.rest if p.spec.suite == suite]
        return table_of(suite, specs[0].kind if specs else None, len(specs))

    if plan.report_only:  # a partial report: the chosen suites' tables; one that another suite feeds too (svm:
        # Q1 and Q3) would miss that suite's rows, so it is not gated. (A whole one replaces every table: all gated.)
        chosen = {table(s) for s in plan.only}
        chosen -= {table(s) for s in plan.all_suites if s not in plan.only}
        names = [t for t in (baseline.policy.tables or list(baseline.tables)) if t in chosen]
        baseline.policy = dataclasses.replace(baseline.policy, tables=names)
    return baseline


def check_parallel_options(executor: str, jobs, stale_after: float, uri: str, ray_address=None, option="--jobs"):
    """The parallel options checked before anything runs; returns --jobs read (a number, "auto", or None: the
    profile's). `option`: where `jobs` came from (--jobs, or MLHW_JOBS)."""
    from mlhw.errors import MLHWError
    from mlhw.store import sqlite_path

    jobs = _parse_jobs(jobs, option)
    from mlhw import lifecycle

    least = 1.5 * lifecycle.HEARTBEAT_SECONDS  # below a heartbeat's interval, live runs elsewhere would look dead
    if not stale_after >= least:
        raise MLHWError(
            f"--stale-after {stale_after:g}: must be at least {least:g} seconds (a live run's heartbeat comes "
            f"every {lifecycle.HEARTBEAT_SECONDS:g} s)"
        )
    if executor == "ray":  # before the suite parent runs exist (they ended FAILED when the import failed)
        import importlib.util

        from mlhw.executors import RAY_MISSING

        if importlib.util.find_spec("ray") is None:
            raise MLHWError(RAY_MISSING)
    if executor == "ray" and sqlite_path(uri) is not None:  # --jobs N on SQLite writes through the parent
        raise MLHWError(
            "--executor ray needs a tracking server: Ray's workers may run on other machines, out of reach of "
            f"{uri}. Start one with "
            # without MLflow's job runner (GenAI jobs mlhw never sends): 7 idle consumers of ~240 MB each
            "`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "
            f"mlflow server --backend-store-uri {uri} --workers 1 --host 127.0.0.1 --port 5000` and pass --tracking-uri http://127.0.0.1:5000"
        )
    if executor == "ray" and jobs is not None and option == "--jobs":
        # it was ignored in silence (`--jobs 4` ran as the cluster chose); MLHW_JOBS, set for every reproduce, is not
        # refused
        raise MLHWError(
            f"{as_given(option, jobs)}: only with --executor local (under --executor ray each unit of work is a Ray "
            "task of one CPU, and the cluster decides how many run at once: `ray start --num-cpus N` on one machine)"
        )
    if executor == "ray":
        _check_ray_address(ray_address)
    elif ray_address:
        raise MLHWError(f"--ray-address {ray_address}: only with --executor ray")
    return jobs


def as_given(option: str, value) -> str:
    """A --jobs value as the user gave it: `--jobs 2`, or `MLHW_JOBS=2` where the variable gave it."""
    return f"--jobs {value}" if option == "--jobs" else f"{option}={value}"


def _parse_jobs(text: str | None, option: str = "--jobs"):
    """--jobs (or MLHW_JOBS) as given: a number of worker processes, "auto", or None where neither is set. `option`
    names where the text came from, as the error names it: --jobs, or MLHW_JOBS."""
    from mlhw.errors import MLHWError

    if text is None:
        return None
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise MLHWError(f"{as_given(option, repr(text))}: a number of worker processes (1 or more) or auto")
    return int(value)


def _check_ray_address(address: str | None) -> None:
    """The Ray cluster ray.init would join answers, within seconds, before any run exists: ray.init retried an address
    that nothing answers for minutes (RAY_ADDRESS=127.0.0.1:1 hung for 4 minutes and more), and `auto` with no
    cluster running raised ConnectionError, a traceback, both after the suite parent runs existed (left FAILED).
    The address is found as Ray finds it: --ray-address; where that is absent or `auto`, RAY_ADDRESS; where that is
    unset too (or `auto`), the cluster this machine last started (`ray start`), or with `auto` any running one. None
    found: `auto` is refused, and an absent address starts a local instance (ray.init's own)."""
    import os

    from mlhw.errors import MLHWError

    culprit, instead = f"--ray-address {address}", "leave the option out"
    # ray.init takes it over no address, or over auto, as it is (not stripped: ' ' is an address to Ray, and was
    # refused as '--executor ray: ' '', no culprit named)
    env = os.environ.get("RAY_ADDRESS", "")
    if env and address in (None, "auto") and not (env == "auto" and address == "auto"):
        culprit, address, instead = f"RAY_ADDRESS={env}", env, "unset RAY_ADDRESS"
    if address == "local":  # a new local instance, always
        return
    if address not in (None, "auto"):
        _ray_answers(address, culprit, f"start one with `ray start --head`, or {instead} for a local Ray instance")
        return
    found = _ray_cluster_here(address)
    if found is None and address == "auto":
        raise MLHWError(
            f"{culprit}: no running Ray instance found on this machine; start one with `ray start --head`, give a "
            f"cluster's host:port, or {instead} for a local Ray instance"
        )
    if found is not None:  # (none, and no address: ray.init starts a local instance)
        whose = "the cluster this machine last started" if address is None else "the instance found on this machine"
        culprit = "--executor ray" if address is None else culprit
        _ray_answers(found, culprit, "`ray stop` forgets it, `ray start --head` starts one", f"{found}, {whose}")


def _ray_cluster_here(address: str | None) -> str | None:
    """The cluster `ray.init(address)` (None or auto, RAY_ADDRESS unset) would join, as Ray itself looks for it (the
    address `ray start` recorded, /tmp/ray/ray_current_cluster; with auto, else any running instance's); None where
    it finds none, or where this Ray has no such function (then ray.init says it)."""
    from mlhw.executors import import_ray

    try:
        find = import_ray()._private.services.get_ray_address_from_environment
        found = find(address, None)
    except ConnectionError:  # auto, and no instance
        return None
    except (AttributeError, TypeError, OSError):  # another Ray's internals; a temp folder it cannot read
        return None
    return None if found in (None, "auto", "local") else str(found)


def _ray_answers(address: str, culprit: str, hint: str, at: str | None = None) -> None:
    """A TCP connection to the host:port (or ray://host:port) `address` within 5 s, or one line naming `culprit`
    (and `at`: where the address came from, when the user did not give it)."""
    import socket
    import urllib.parse

    from mlhw.errors import MLHWError

    parts = urllib.parse.urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        # (`--ray-address ''`: culprit[:-0] was '', and the line named no option)
        named = culprit.endswith(address)
        shown = f"{culprit[: len(culprit) - len(address)]}{address!r}" if named else f"{culprit}: {address!r}"
        raise MLHWError(f"{shown}: use auto, or a cluster's host:port (ray://host:port)")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        where = f"at {at}" if at else "there"
        raise MLHWError(f"{culprit}: no Ray cluster answers {where} ({exc.strerror or exc}); {hint}") from None


def _sets_that_change(spec, profile, only, sets: list[str], file, specs) -> list[str]:
    """The --set values that change a run (those kept); one that every run it reaches already has (the profile's
    own seeds, say) is said and dropped, so that the report stays the profile's own, not a partial one beside it."""
    from mlhw.errors import MLHWError
    from mlhw.experiments import expand, parse_set

    def same_runs_without(i: int) -> bool:
        try:
            without = expand(spec, profile, only, [sets[k] for k in kept if k != i], file)
        except MLHWError:  # the others need it (a grid of SGD variants, for a momentum): it changes something
            return False
        return runs(without) == planned

    def runs(specs_):
        return [(r.suite, r.label, r.variant, r.config) for r in specs_]

    def key(k: int) -> str:
        return sets[k].split("=", 1)[0].strip()

    def replaced_by(i: int) -> tuple[str, bool] | None:
        """The later --set that replaces set i where i, applied on the sets before it, changes the runs, and whether
        it gives the same value again: `--set epochs=2 --set epochs=3` (and `epochs=2` twice) said of the first
        "the runs it reaches have that value already", false of 2: the later --set gives the runs their value."""
        before = [sets[k] for k in kept if k < i]
        try:
            if runs(expand(spec, profile, only, [*before, sets[i]], file)) == runs(
                expand(spec, profile, only, before, file)
            ):
                return None
        except MLHWError:
            return None
        field = key(i).split(".")[-1]
        later = [k for k in range(i + 1, len(sets)) if key(k) == key(i) or key(k) == field]
        if not later:
            return "a later --set", False
        return sets[later[-1]].strip(), parse_set([sets[later[-1]]])[0][1:2] == parse_set([sets[i]])[0][1:2]

    planned, kept = runs(specs), list(range(len(sets)))
    for i in range(len(sets)):  # one at a time, against those kept: `epochs=2` twice is one no-op, not two
        if same_runs_without(i):
            kept.remove(i)
            if (later := replaced_by(i)) is not None:
                value, (by, same) = sets[i].split("=", 1)[1].strip(), later
                how = "given again by" if same else "replaced by"
                why = f"={value}: {how} {by} (the last --set of a key counts)"
            else:
                why = ": changes nothing (the runs it reaches have that value already)"
            err.print(f"--set {key(i)}{why}", highlight=False)
    return [sets[k] for k in kept]


def _check_device(device: str, present: bool = True) -> None:
    """--device: its form, without importing torch where the answer is known (auto, cpu, cuda[:N]); with
    present, also that this machine has it (importing torch takes seconds: a no-op reproduce skips it)."""
    if device in ("auto", "cpu") or not present and re.fullmatch(r"cuda(:\d+)?", device):
        return
    from mlhw.device import resolve_device

    resolve_device(device)
