"""experiments.yaml: the shipped file validates; every kind of mistake gets a message naming file, key, value."""

import datetime
import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlhw.config import CNN_PRESETS, KINDS, CNNConfig, MLPConfig, identity
from mlhw.errors import MLHWError
from mlhw.experiments import expand, load_file

REPO_FILE = Path(__file__).resolve().parents[1] / "experiments.yaml"


def test_shipped_file_expands_for_every_profile():
    spec = load_file(REPO_FILE)
    assert set(spec.profiles) >= {"digits", "paper", "ci"}
    assert set(spec.suites) == {
        "mlp_lr_sweep",
        "mlp_full",
        "cnn_optimizers",
        "cnn_adam_lr",
        "cnn_batchnorm",
        "svm_multiclass",
        "svm_soft",
        "theory",
    }
    digits = expand(spec, "digits")
    sweep = [r for r in digits if r.suite == "mlp_lr_sweep"]
    assert sorted({r.config.lr for r in sweep}) == [0.001, 0.01, 0.1, 1, 10, 100]
    from mlhw.reference import MLP_SWEEP_LRS  # `mlhw mlp sweep`'s default: the same rates as the file's suite

    assert sorted({r.config.lr for r in sweep}) == sorted(MLP_SWEEP_LRS)
    assert len(sweep) == 18 and {r.config.seed for r in sweep} == {8, 9, 10}
    paper = {r.suite: r for r in expand(spec, "paper")}
    assert paper["cnn_optimizers"].config.image_size == 227 and paper["cnn_optimizers"].config.dataset == "cifar10"
    assert paper["mlp_lr_sweep"].config.train_size == 10000 and paper["mlp_full"].config.dataset == "mnist"
    shared = [r.config for r in digits if r.variant == "adam-5e-05" and r.config.seed == 0]
    assert len(shared) == 3 and len({identity(c, "fp") for c in shared}) == 1  # one run serves 2a, 2b and 2c
    assert len({identity(r.config, "fp") for r in sweep}) == 18  # rates and seeds: distinct runs


def test_a_shipped_description_that_names_a_figure_says_whose_figure():
    """REPORT.md's Settings quote each suite's description: 'Part 1 (b): one fresh network per learning rate
    (Figure 2)' sent a reader to a Figure 2 the report does not have (its figures are not numbered); the figure is
    the write-up's."""
    spec = load_file(REPO_FILE)
    named = {s: x.description for s, x in spec.suites.items() if re.search(r"\b(Figure|Fig\.|Table) \d", x.description)}
    assert named, "the sweep's description names the write-up's Figure 2"
    for suite, about in named.items():
        assert re.search(r"the write-up's (Figure|Fig\.|Table) \d", about), (suite, about)


@pytest.mark.parametrize("profile", ["digits", "paper", "ci"])
def test_only_any_one_suite_of_the_shipped_file_expands(profile):
    """`reproduce --only theory` failed with exit 2 on the digits profile: its default `dataset` was checked against
    the chosen suites, and the theory suite has no dataset."""
    spec = load_file(REPO_FILE)
    for suite in spec.suites:
        assert {r.suite for r in expand(spec, profile, only=[suite])} == {suite}


def test_configs_hold_the_presets_and_identity_covers_config_and_data():
    """A cifar10 suite that says nothing about width, image size or fraction gets the paper's model
    and 10% of the pool (not 45k images); digits gets the half-width model at AlexNet's minimum size."""
    spec = load_file(write_doc(BASE))
    doc = dict(BASE, suites={"c": {"kind": "cnn", "part": "cnn.a", "base": {"dataset": "cifar10"}}})
    doc["profiles"] = {"p": {}}
    (c,) = expand(load_file(write_doc(doc)), "p")
    assert (c.config.width, c.config.image_size, c.config.train_fraction) == (1.0, 227, 0.1)
    (d,) = [r for r in expand(spec, "p") if r.suite == "c"]
    assert (d.config.width, d.config.image_size, d.config.train_fraction) == (0.5, 67, 1.0)
    assert CNNConfig() == CNNConfig(dataset="digits", **CNN_PRESETS["digits"])
    assert CNNConfig(dataset="cifar10", width=0.25).width == 0.25  # an override wins over the preset
    # the learning rate the assignment pairs with each optimizer; a given one wins (Adam 5e-5 would stall SGD)
    assert (CNNConfig().lr, CNNConfig(optimizer="sgd").lr, CNNConfig(optimizer="sgd", lr=0.1).lr) == (5e-5, 0.005, 0.1)
    cfg = MLPConfig()
    assert identity(cfg, "a") != identity(cfg, "b") and identity(cfg, "a") != identity(MLPConfig(seed=9), "a")
    assert identity(cfg, "a") == identity(MLPConfig(), "a") and len(identity(cfg, "a")) == 16
    assert {k: m().kind for k, m in KINDS.items() if k != "cnn"} == {k: k for k in KINDS if k != "cnn"}


def test_an_identity_changes_only_for_the_runs_whose_computation_changed(monkeypatch):
    """Pinned identities (fingerprint 'f', the code left out as where mlhw's sources cannot be read): the
    2026-11-27 version bump covers runs with a subset, theory and the soft SVM; an AlexNet or full-data MLP run
    made before keeps its identity (reproduce does not redo it)."""
    from mlhw import config
    from mlhw.config import MulticlassSVMConfig, SoftSVMConfig, TheoryConfig

    monkeypatch.setattr(config, "code_digest", lambda kind: "")

    def v1(cfg):  # the identity before any version: config and fingerprint
        import hashlib
        import json

        return hashlib.sha256((json.dumps(cfg.model_dump(mode="json"), sort_keys=True) + "|f").encode()).hexdigest()[
            :16
        ]

    for same in (CNNConfig(), CNNConfig(dataset="cifar10"), MLPConfig(), MulticlassSVMConfig()):
        assert identity(same, "f") == v1(same), same
    for moved in (MLPConfig(train_size=100), MLPConfig(test_size=50), TheoryConfig(), SoftSVMConfig()):
        assert identity(moved, "f") != v1(moved), moved

    def v2(cfg):  # the 2026-11-27 bump
        import hashlib
        import json

        blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True) + "|f|v2"
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # the later bump (a new theory check) reruns the theory run only: the soft SVM keeps its v2 identity
    assert identity(SoftSVMConfig(), "f") == v2(SoftSVMConfig()) and identity(MLPConfig(train_size=9), "f") == v2(
        MLPConfig(train_size=9)
    )
    assert identity(TheoryConfig(), "f") != v2(TheoryConfig())


def test_an_edit_of_the_code_that_computes_a_run_makes_it_another_run(monkeypatch):
    """A student broke the backprop (mlp.py's output delta times 0) and reproduce said "up to date": an identity
    held the config and the data alone. The code that computes a kind of run is in it now, as code: comments,
    docstrings and formatting do not count; an edit of mlp.py makes new MLP runs and leaves the SVMs' alone."""
    from mlhw import config
    from mlhw.config import SoftSVMConfig, source_digest

    mlp_py = (Path(config.__file__).parent / "mlp.py").read_text()
    broken = mlp_py.replace("delta = torch.softmax(z, dim=2)\n", "delta = torch.softmax(z, dim=2) * 0\n", 1)
    restyled = mlp_py.replace("delta = torch.softmax(z, dim=2)\n", "delta = torch.softmax(z,dim=2)  # Q4\n", 1)
    redocumented = mlp_py.replace('"""Part 1', '"""Part one', 1)
    assert broken != mlp_py and restyled != mlp_py and redocumented != mlp_py
    assert source_digest(broken) != source_digest(mlp_py)
    assert source_digest(restyled) == source_digest(redocumented) == source_digest(mlp_py)
    before = {cfg.kind: identity(cfg, "f") for cfg in (MLPConfig(), CNNConfig(), SoftSVMConfig())}
    real = config._module_digest
    monkeypatch.setattr(config, "_module_digest", lambda m: source_digest(broken) if m == "mlp" else real(m))
    after = {cfg.kind: identity(cfg, "f") for cfg in (MLPConfig(), CNNConfig(), SoftSVMConfig())}
    assert after["mlp"] != before["mlp"] and after["cnn"] == before["cnn"] and after["svm_soft"] == before["svm_soft"]
    # the data loaders serve every kind: an edit there makes every run another run
    monkeypatch.setattr(config, "_module_digest", lambda m: "edited" if m == "data" else real(m))
    assert all(identity(cfg, "f") != before[cfg.kind] for cfg in (MLPConfig(), CNNConfig(), SoftSVMConfig()))


def test_reproduce_help_says_a_runs_identity_holds_the_code_that_computes_it(monkeypatch):
    """`reproduce --help` said a run is "identified by a hash of its resolved config and its data", while an edit
    of the code that computes it makes it another run (the test above): the help names the code too."""
    from mlhw import config
    from mlhw.cli import app

    before = identity(MLPConfig(), "f")
    real = config._module_digest
    monkeypatch.setattr(config, "_module_digest", lambda m: "edited" if m == "mlp" else real(m))
    assert identity(MLPConfig(), "f") != before  # same config, same data, other code: another run
    res = CliRunner().invoke(app, ["reproduce", "--help"], env={"COLUMNS": "400"})
    assert res.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", res.stdout).split())
    assert "its resolved config, its data and the code that computes it" in text


def test_theory_runs_are_new_runs_when_the_backprop_they_check_changes(monkeypatch):
    """theory's backprop check runs mlp.Network, but a hand-written list of theory's modules left mlp.py out: a
    broken backprop failed both checks and reproduce reported the old PASS. The SVMs' design matrix was built in
    runs.py, in no list. Both are found from the imports now."""
    from mlhw import config
    from mlhw.config import SoftSVMConfig, TheoryConfig

    before = {cfg.kind: identity(cfg, "f") for cfg in (TheoryConfig(), SoftSVMConfig(), CNNConfig())}
    real = config._module_digest
    monkeypatch.setattr(config, "_module_digest", lambda m: "an edited mlp.py" if m == "mlp" else real(m))
    after = {cfg.kind: identity(cfg, "f") for cfg in (TheoryConfig(), SoftSVMConfig(), CNNConfig())}
    assert after["theory"] != before["theory"]
    assert after["svm_soft"] == before["svm_soft"] and after["cnn"] == before["cnn"]
    monkeypatch.setattr(config, "_module_digest", lambda m: "an edited svm.py" if m == "svm" else real(m))
    assert identity(SoftSVMConfig(), "f") != before["svm_soft"]  # where the SVMs' design matrix is built now


@pytest.mark.parametrize(
    "module, kinds",
    [
        ("data", {"mlp", "cnn", "svm_multiclass", "svm_soft", "theory"}),  # every kind reads its data through it
        ("device", {"mlp", "cnn", "theory"}),  # the MLP's and AlexNet's device and precision; theory runs the MLP
        ("divergence", {"mlp", "cnn", "theory"}),  # when a training stops as diverged
        ("topology", {"cnn"}),  # AlexNet's layers
        ("cnn", {"cnn"}),
        ("svm", {"svm_multiclass", "svm_soft", "theory"}),  # theory's Q1-Q3 checks solve SVMs
    ],
)
def test_an_edit_of_a_computing_module_makes_new_runs_of_exactly_the_kinds_that_use_it(monkeypatch, module, kinds):
    """By hand, from the modules' imports: mlp.py imports data, device and divergence; cnn.py those and topology; svm.py
    data; theory.py svm and mlp. An edit of one of them is another computation for every kind that runs it, and for no
    other. Moving device.py to the modules that compute nothing (NOT_NUMERIC) left a changed precision rule 'up to
    date' with the runs made under the old one."""
    from mlhw import config
    from mlhw.config import MulticlassSVMConfig, SoftSVMConfig, TheoryConfig

    configs = [MLPConfig(), CNNConfig(), MulticlassSVMConfig(), SoftSVMConfig(), TheoryConfig()]
    before = {cfg.kind: identity(cfg, "f") for cfg in configs}
    real = config._module_digest
    monkeypatch.setattr(config, "_module_digest", lambda m: f"an edited {m}.py" if m == module else real(m))
    changed = {cfg.kind for cfg in configs if identity(cfg, "f") != before[cfg.kind]}
    assert changed == kinds


RUNTIME_MODULES = {
    "theory": "from mlhw import theory; theory.run_checks(data.load_digits_data())",
    "mlp": "from mlhw import config, mlp; mlp.train_mlp(config.MLPConfig(epochs=1), data.load_digits_data())",
    "svm_soft": "from mlhw import svm; d = data.load_digits_data(); "
    "svm.soft_report(*svm.binary_task(svm.design_matrix(d.train.x[:60]), d.train.y[:60], (3, 8)), 1.0, 'free', "
    "*svm.binary_task(svm.design_matrix(d.test.x[:60]), d.test.y[:60], (3, 8)))",
}


def loaded_modules(code: str) -> set[str]:
    """The mlhw modules a fresh process has loaded after running `code`."""
    import subprocess
    import sys

    code += "; import sys; print(' '.join(sorted(m[5:] for m in sys.modules if m.startswith('mlhw.'))))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


@pytest.mark.parametrize("kind", sorted(RUNTIME_MODULES))
def test_the_modules_a_kind_of_run_loads_while_it_computes_are_its_core_modules(kind):
    """The oracle is Python's own import system: every mlhw module a computation has loaded when it ends (in a
    fresh process) is one whose code is in the run's identity, or one that computes no number. What building a
    config loads (config.py and its validation constants) is the config's, whose values are in the identity."""
    from mlhw import config

    assert all(config.code_digest(k) for k in config.CORE_ENTRY)  # '' (identity without code) for none
    loaded = loaded_modules(f"from mlhw import data; {RUNTIME_MODULES[kind]}")
    for_the_config = loaded_modules("from mlhw import config") if kind == "mlp" else set()
    assert config.CORE_ENTRY[kind] in loaded
    assert loaded - for_the_config - config.NOT_NUMERIC <= set(config.core_modules(kind)), loaded


def test_error_messages_are_not_code_and_their_conditions_are():
    """Rewording an error in data.py gave every run, AlexNet's GPU-hours included, a new identity."""
    from mlhw import config
    from mlhw.config import source_digest

    data_py = (Path(config.__file__).parent / "data.py").read_text()
    line = next(x for x in data_py.splitlines() if "raise MLHWError(f" in x)
    reworded = data_py.replace(line, line.replace('MLHWError(f"', 'MLHWError(f"Sorry: ', 1), 1)
    other_error = data_py.replace(line, line.replace("MLHWError(", "ValueError(", 1), 1)
    guarded = 'if x.ndim != 3:\n        raise MLHWError(f"{x.ndim} dims")\n'
    assert reworded != data_py and other_error != data_py
    assert source_digest(reworded) == source_digest(data_py)
    assert source_digest(other_error) != source_digest(data_py)
    assert source_digest(guarded) == source_digest(guarded.replace("dims", "axes"))
    assert source_digest(guarded) != source_digest(guarded.replace("!= 3", "!= 4"))


def test_a_string_the_code_computes_with_is_code_not_a_message():
    """Only a raise statement's message is blanked: a string the code computes with (cnn.py's resize mode, svm.py's
    test of the bias setting) is code, and changing it makes another run. With every string blanked, an AlexNet
    resized by nearest neighbour instead of bilinearly was "up to date" with the old runs."""
    from mlhw import config
    from mlhw.config import source_digest

    folder = Path(config.__file__).parent
    cnn_py, svm_py = (folder / "cnn.py").read_text(), (folder / "svm.py").read_text()
    nearest = cnn_py.replace('mode="bilinear"', 'mode="nearest"', 1)
    regularised = svm_py.replace('if self.bias == "free":', 'if self.bias == "regularized":', 1)
    assert nearest != cnn_py and regularised != svm_py
    assert source_digest(nearest) != source_digest(cnn_py)
    assert source_digest(regularised) != source_digest(svm_py)


def write(tmp_path, doc) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


def write_doc(doc) -> Path:
    import tempfile

    return write(Path(tempfile.mkdtemp()), doc)


BASE = {
    "suites": {
        "m": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2}, "grid": {"lr": [0.1, 1]}},
        "c": {"kind": "cnn", "part": "cnn.a", "grid": {"variant": ["sgd-0.005"]}},
        "s": {"kind": "svm_soft", "part": "svm.q3"},
    },
    "profiles": {"p": {"defaults": {"dataset": "digits"}, "suites": {"m": {"seeds": [1, 2]}}}},
}


def with_(change):
    import copy

    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d: d["suites"]["m"]["base"].update(learning_rate=0.1),
            "exp.yaml: suites.m.base.learning_rate: unknown key",
        ),
        (
            lambda d: d["suites"]["m"]["base"].update(epochs="many"),
            "exp.yaml: suites.m.base.epochs: must be a valid integer (got 'many')",
        ),
        (lambda d: d["suites"]["m"]["grid"].update(lr=[]), "exp.yaml: suites.m.grid.lr: empty grid"),
        # a grid of no field ran as no grid: a grid left half-written, where a field's empty list is refused
        (lambda d: d["suites"]["m"].update(grid={}), "exp.yaml: suites.m.grid: empty grid: give a field and its list"),
        (lambda d: d["profiles"]["p"]["suites"]["m"].update(grid={}), "exp.yaml: profiles.p.suites.m.grid: empty grid"),
        (lambda d: d["suites"]["m"]["grid"].update(seed=[1, 2]), "exp.yaml: suites.m.grid.seed: seeds are not a grid"),
        # a file value that no run takes was dropped in silence, where the same value by --set was refused
        (
            lambda d: d["profiles"]["p"]["suites"].update(c={"base": {"lr": 0.5}}),
            "exp.yaml: profiles.p.suites.c.base.lr: changes no run: every run of c takes lr from exp.yaml: suites.c.",
        ),
        (
            lambda d: d["suites"]["m"]["base"].update(lr=0.3),
            "exp.yaml: suites.m.base.lr: changes no run: every run of m takes lr from exp.yaml: suites.m.grid.lr; set",
        ),
        (
            lambda d: d["suites"]["m"]["grid"].update(lr=[0.1, -1]),
            "exp.yaml: suites.m.grid.lr: must be > 0 (got -1)",
        ),
        (lambda d: d["profiles"]["p"]["suites"].update(nope={}), "exp.yaml: profiles.p.suites.nope: unknown suite"),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(base={"batch_size": 0}),
            "exp.yaml: profiles.p.suites.m.base.batch_size: must be > 0 (got 0)",
        ),
        (
            lambda d: d["profiles"]["p"].update(defaults={"colour": "red"}),
            "exp.yaml: profiles.p.defaults.colour: unknown key",
        ),
        # a default reaches every suite with the field: it read "must be 'digits' or 'mnist'", naming no suite, for
        # `dataset: cifar10`, which the CNN suites take; now the suite that refused it and the way to set one suite
        (
            lambda d: d["profiles"]["p"].update(defaults={"dataset": "cifar10"}),
            "exp.yaml: profiles.p.defaults.dataset (in suite m; profiles.p.suites.SUITE.base sets one suite): must be",
        ),
        (  # a value no suite takes stays a plain error: no suite to name
            lambda d: d["profiles"]["p"].update(defaults={"dataset": "digit"}),
            "exp.yaml: profiles.p.defaults.dataset: must be 'digits' or ",
        ),
        (lambda d: d["profiles"]["p"].update(jobs=0), "exp.yaml: profiles.p.jobs: "),
        (lambda d: d["profiles"]["p"].update(jobs="many"), "exp.yaml: profiles.p.jobs: "),
        (lambda d: d["suites"]["m"].update(kind="rnn"), "exp.yaml: suites.m.kind: must be 'mlp', 'cnn'"),
        (  # a suite's key misspelt: the keys it takes (a field's typo listed the fields; this one listed nothing)
            lambda d: d["suites"]["m"].update(extra=1),
            "exp.yaml: suites.m.extra: unknown key (keys here: base, description, grid, kind, part, seeds) (got 1)",
        ),
        (
            lambda d: d["profiles"]["p"].update(suits={}),
            "exp.yaml: profiles.p.suits: unknown key (keys here: defaults, description, jobs, suites)",
        ),
        (lambda d: d.update(versoin=1), "exp.yaml: versoin: unknown key (keys here: profiles, suites, version)"),
        # a key that is no name ('~:', '3:'): it read 'suites.None.[key]: must be a valid string'
        (lambda d: d["suites"].update({None: {"kind": "theory"}}), "exp.yaml: suites: the key null is not a name"),
        (
            lambda d: d["profiles"]["p"]["suites"].update({3: {}}),
            "exp.yaml: profiles.p.suites: the key 3 is not a name (quote it to make it one)",
        ),
        # pydantic's loc spells such a key its own way: true as 1, 1.5 as '1.5' (quoted, as if it were), a date as
        # 'datetime.date(2024, 1, 1)'; the key is named as the file has it
        (lambda d: d["suites"].update({True: {"kind": "theory"}}), "exp.yaml: suites: the key true is not a name"),
        (lambda d: d["suites"]["m"]["grid"].update({1.5: [1]}), "exp.yaml: suites.m.grid: the key 1.5 is not a name"),
        (
            lambda d: d["profiles"].update({datetime.date(2024, 1, 1): {}}),
            "exp.yaml: profiles: the key 2024-01-01 is not a name",
        ),
        (
            lambda d: d["suites"]["c"]["grid"].update(variant=["adam-1"]),
            "exp.yaml: suites.c.grid.variant: unknown variant 'adam-1'",
        ),
        (  # a rate that is not a number: one line, not a ValueError traceback
            lambda d: d["suites"]["c"]["grid"].update(variant=["adam-."]),
            "exp.yaml: suites.c.grid.variant: unknown variant 'adam-.'",
        ),
        (  # two spellings of one rate are one variant
            lambda d: d["suites"]["c"]["grid"].update(variant=["adam-5e-05", "adam-5e-5"]),
            "exp.yaml: suites.c.grid.variant: 'adam-5e-05' is listed twice",
        ),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(seeds=[]),
            "exp.yaml: profiles.p.suites.m.seeds: expected a non-empty list",
        ),
        (  # pydantic alone read these as seeds 8, 9 and 1; --set refused them
            lambda d: d["profiles"]["p"]["suites"]["m"].update(seeds=["8", 9.0, True]),
            "exp.yaml: profiles.p.suites.m.seeds: expected a non-empty list of integer seeds (got ['8', 9, true])",
        ),
        (
            lambda d: d["suites"]["m"].update(seeds=5),
            "exp.yaml: suites.m.seeds: expected a non-empty list of integer seeds (got 5)",
        ),
        (  # written and empty: it ran as if absent (one run of the base seed), where `seeds: 5` was refused
            lambda d: d["suites"]["m"].update(seeds=None),
            "exp.yaml: suites.m.seeds: expected a non-empty list of integer seeds (got null)",
        ),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(seeds=None),
            "exp.yaml: profiles.p.suites.m.seeds: expected a non-empty list of integer seeds (got null)",
        ),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(seeds=[3, 4, 3]),
            "exp.yaml: profiles.p.suites.m.seeds: seed 3 is listed twice (got [3, 4, 3])",
        ),
        (
            lambda d: d["suites"]["m"]["grid"].update(lr=[0.1, 1, 0.1]),  # was accepted: one run, counted as two
            "exp.yaml: suites.m.grid.lr: 0.1 is listed twice (got [0.1, 1, 0.1])",
        ),
        (
            lambda d: d["suites"]["m"]["base"].update(epochs=True),  # pydantic alone reads it as 1 epoch
            "exp.yaml: suites.m.base.epochs: must be a number, not a boolean (got true)",
        ),
        # quoted numbers and numbers for booleans were converted (epochs "5" had the identity of 5)
        (
            lambda d: d["suites"]["m"]["base"].update(epochs="5"),
            "exp.yaml: suites.m.base.epochs: must be a number, not a string: write it without quotes (got '5')",
        ),
        (
            lambda d: d["suites"]["m"]["grid"].update(lr=["0.1"]),
            "exp.yaml: suites.m.grid.lr: must be a number, not a string: write it without quotes (got '0.1')",
        ),
        (
            lambda d: d["suites"]["c"].update(base={"batchnorm": 1}),
            "exp.yaml: suites.c.base.batchnorm: must be true or false (got 1)",
        ),
        # values in YAML's terms, not Python's: a list is not "(3, 3)", a false is not "False", -1 not "-1.0"
        (
            lambda d: d["suites"]["c"].update(base={"image_size": [3, 3]}),
            "exp.yaml: suites.c.base.image_size: must be a valid integer (got [3, 3])",
        ),
        (
            lambda d: d["suites"]["m"]["base"].update(dtype=False),
            "exp.yaml: suites.m.base.dtype: must be 'float32' or 'float64' (got false)",
        ),
        (
            lambda d: d["suites"]["m"]["base"].update(seed=None),
            "exp.yaml: suites.m.base.seed: must be a valid integer (got null)",
        ),
        (
            lambda d: d["suites"]["m"]["grid"].update(hidden=[[3, 3], [3, 3]]),
            "exp.yaml: suites.m.grid.hidden: [3, 3] is listed twice (got [[3, 3], [3, 3]])",
        ),
        (
            lambda d: d["suites"]["m"].update(part="mlp.z"),  # `mlhw mlp train --part` refuses it too
            "exp.yaml: suites.m: part 'mlp.z': a suite of kind mlp is one of mlp.a, mlp.b, mlp.c",
        ),
    ],
)
def test_validation_errors_name_file_key_and_value(tmp_path, change, message):
    path = write(tmp_path, with_(change))
    with pytest.raises(MLHWError) as info:
        expand(load_file(path), "p", file=str(path))
    assert str(info.value).startswith(message.replace("exp.yaml", str(path))), str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "suites:\n  m: {kind: mlp\n")
    with pytest.raises(MLHWError, match=r"exp.yaml: line \d+ not valid YAML"):
        load_file(path)


def test_an_unclosed_bracket_is_named_where_it_opens(tmp_path):
    """The parser stops lines later, where it gives up: the line of the `[` it never closed is said too."""
    text = "suites:\n  m:\n    kind: mlp\n    seeds: [8, 9, 10\n    lr: 0.1\n\n  n: {kind: svm}\n"
    path = write(tmp_path, text)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    said = str(info.value)
    assert said.startswith(f"{path}: line 5 not valid YAML") and "that begins on line 4" in said, said


def test_unknown_profile_and_suite(tmp_path):
    spec = load_file(write(tmp_path, BASE))
    with pytest.raises(MLHWError, match="--profile 'q': unknown profile in experiments.yaml"):
        expand(spec, "q")
    with pytest.raises(MLHWError, match="--only 'x': unknown suite"):
        expand(spec, "p", only=["x"])


def test_numbers_in_e_notation_are_numbers_in_the_file_and_in_set(tmp_path):
    """YAML 1.1 (PyYAML) reads 5e-5 as a string, which a config takes for no number: it reads as YAML 1.2's float,
    in experiments.yaml and in --set alike, and a quoted one stays a string (refused)."""
    text = yaml.safe_dump(BASE).replace("- 0.1\n", "- 5e-5\n")  # the grid's lr: [5e-5, 1], as one writes it
    assert "5e-5" in text
    spec = load_file(write(tmp_path, text))
    assert sorted({r.config.lr for r in expand(spec, "p") if r.suite == "m"}) == [5e-5, 1.0]
    runs = expand(spec, "p", sets=["m.grid.lr=[1e-3, 2E-2]"])
    assert sorted({r.config.lr for r in runs if r.suite == "m"}) == [0.001, 0.02]
    with pytest.raises(MLHWError, match="must be a number, not a string"):
        expand(spec, "p", sets=['m.grid.lr=["1e-3"]'])


def test_set_overrides_are_typed_and_scoped(tmp_path):
    spec = load_file(write(tmp_path, BASE))
    runs = expand(spec, "p", sets=["epochs=3", "m.seeds=[4]", "m.grid.lr=[0.2,0.3]", "c.width=0.25"])
    m = [r for r in runs if r.suite == "m"]
    assert [r.config.lr for r in m] == [0.2, 0.3] and {r.config.seed for r in m} == {4}
    assert all(r.config.epochs == 3 and isinstance(r.config.epochs, int) for r in runs if r.kind != "svm_soft")
    c = [r for r in runs if r.suite == "c"][0]
    assert c.config.width == 0.25 and c.config.optimizer == "sgd"
    with pytest.raises(MLHWError, match="--set: unknown key 'colour'|--set colour: unknown key"):
        expand(spec, "p", sets=["colour=red"])
    with pytest.raises(MLHWError, match=r"--set 'epochs': expected KEY=VALUE"):
        expand(spec, "p", sets=["epochs"])
    with pytest.raises(MLHWError, match=r"^--set epochs: must be >= [01] \(got -1\)"):
        expand(spec, "p", sets=["epochs=-1"])


def test_the_layers_apply_in_their_documented_order(tmp_path):
    """The module's precedence, lowest first: the suite's base < the profile's defaults < the profile's override of
    the suite < --set. Suite m says 2 epochs, profile p's defaults 5 and its override of m 7: m's runs train 7 epochs,
    c's (no epochs of its own, no override) 5; a --set of 9 is every run's."""
    doc = with_(lambda d: d["profiles"]["p"]["defaults"].update(epochs=5))
    doc["profiles"]["p"]["suites"]["m"]["base"] = {"epochs": 7}
    spec = load_file(write(tmp_path, doc))
    runs = expand(spec, "p")
    assert {r.config.epochs for r in runs if r.suite == "m"} == {7}
    assert {r.config.epochs for r in runs if r.suite == "c"} == {5}
    assert {r.config.epochs for r in expand(spec, "p", sets=["epochs=9"]) if r.kind != "svm_soft"} == {9}


def test_duplicate_keys_are_refused(tmp_path):
    path = write(tmp_path, "suites:\n  m: {kind: mlp, part: x}\n  m: {kind: cnn, part: y}\nprofiles: {p: {}}\n")
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: line 3 not valid YAML (duplicate key 'm' (first given on line 2))"


def test_non_utf8_file_is_one_line(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_bytes(b"suites: {}\nprofiles: {p: {description: caf\xe9}}\n")
    with pytest.raises(MLHWError, match=r"exp.yaml: not UTF-8 text \(byte 42: invalid continuation byte\)$"):
        load_file(path)


def test_every_suite_is_validated_even_where_the_profile_overrides_it(tmp_path):
    doc = with_(lambda d: d["suites"]["m"]["base"].update(epochs="many"))
    doc["profiles"]["p"]["suites"]["m"]["base"] = {"epochs": 3}  # the chosen profile hides the bad base
    path = write(tmp_path, doc)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}: suites.m.base.epochs: must be a valid integer")
    assert "(got 'many')" in str(info.value)


def test_every_profile_is_validated_not_only_the_chosen_one(tmp_path):
    doc = with_(lambda d: d["profiles"].update(other={"suites": {"m": {"base": {"batch_size": 0}}}}))
    path = write(tmp_path, doc)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: profiles.other.suites.m.base.batch_size: must be > 0 (got 0)"


def test_a_bad_value_is_refused_even_where_a_grid_overrides_it(tmp_path):
    """Suite m's grid sets lr, so a profile's (or --set's) lr never reaches a config: it must still be valid."""
    doc = with_(lambda d: d["profiles"].update(other={"suites": {"m": {"base": {"lr": float("inf")}}}}))
    path = write(tmp_path, doc)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: profiles.other.suites.m.base.lr: must be a finite number (got inf)"
    with pytest.raises(MLHWError, match=r"^--set m.lr: must be a finite number \(got inf\)"):
        expand(load_file(write(tmp_path, BASE)), "p", sets=["m.lr=.inf"])


@pytest.mark.parametrize(
    "doc, message",
    [
        ("suites: {}\nprofiles: {p: {}}\nsuites: {}\n", "line 3 not valid YAML (duplicate key 'suites'"),
        (b"suites: {}\nprofiles: {p: {description: \xff\xfe}}\n", "not UTF-8 text"),
        (with_(lambda d: d["suites"]["m"]["base"].update(lr=float("nan"))), "suites.m.base.lr: must be a finite"),
        (with_(lambda d: d["suites"]["m"]["base"].update(seed=-1)), "suites.m.base.seed: must be >= 0"),
        (
            with_(lambda d: d["suites"]["c"].update(base={"image_size": 63})),
            "suites.c.base.image_size: must be >= 67 (got 63)",
        ),
        (with_(lambda d: d["profiles"]["p"]["suites"].update(nope={})), "profiles.p.suites.nope: unknown suite"),
        (with_(lambda d: d["suites"]["m"]["base"].update(colour=1)), "suites.m.base.colour: unknown key"),
        # a file of no suite ran 0 runs, exit 0, and wrote a report of nothing; one of no profile had "profiles: "
        ("version: 1\nsuites: {}\nprofiles: {p: {}}\n", "suites: no suite (got {}): a profile runs every suite"),
        (with_(lambda d: d.update(profiles={})), "profiles: no profile (got {}): --profile names one"),
    ],
    ids=[
        "duplicate",
        "not-utf8",
        "nan",
        "seed",
        "image-size",
        "unknown-suite",
        "unknown-key",
        "no-suite",
        "no-profile",
    ],
)
def test_reproduce_refuses_a_bad_file_before_anything_exists(workdir, doc, message):
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    path = workdir / "exp.yaml"
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        write(workdir, doc)
    res = invoke("reproduce", "--profile", "p", "--file", path)
    assert_one_line_error(res, f"error: {path}: ", message)
    assert_nothing_created(workdir)
    assert not (workdir / "mlflow.db").exists() and not (workdir / "data").exists()


def test_reproduce_names_a_directory_given_as_the_file(workdir):
    """--file DIR said 'no such file', which sent the user looking for a path that exists."""
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    folder = workdir / "configs"
    folder.mkdir()
    res = invoke("reproduce", "--profile", "p", "--file", folder)
    line = assert_one_line_error(res, f"error: {folder}: is a directory, not an experiments file")
    assert "no such file" not in line
    assert_nothing_created(workdir)
    assert not (workdir / "mlflow.db").exists() and not (workdir / "data").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_file_that_is_neither_missing_nor_regular_is_named_so(tmp_path):
    fifo = tmp_path / "exp.yaml"
    os.mkfifo(fifo)  # read, it would block reproduce forever
    with pytest.raises(MLHWError, match=rf"^{re.escape(str(fifo))}: not a regular file \(pass --file"):
        load_file(fifo)
    with pytest.raises(MLHWError, match=r": no such file \(run from the project folder, or pass --file\)$"):
        load_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--profile", "q"], "--profile 'q': unknown profile in"),
        (["--profile", "p", "--only", "x"], "--only 'x': unknown suite in"),
        (["--profile", "p", "--set", "colour=red"], "--set colour: unknown key 'colour'"),
        # SUITE.FIELD with a suite the file lacks said "unknown key 'mm.lr'", as if lr were the typo
        (["--profile", "p", "--set", "mm.lr=0.2"], "--set mm.lr: unknown suite 'mm' (the suites of "),
        (["--profile", "p", "--set", "epochs=-1"], "--set epochs: must be >= 1 (got -1)"),
        (["--profile", "p", "--set", "m.batch_size=0"], "--set m.batch_size: must be > 0 (got 0)"),
        (["--profile", "p", "--set", "c.lr=.nan"], "--set c.lr: must be a finite number (got nan)"),
        (["--profile", "p", "--set", "seeds=[4294967296]"], "must be <= 4294967295 (got 4294967296)"),
        (["--profile", "p", "--set", "m.seeds=[5,5]"], "--set m.seeds: seed 5 is listed twice (got [5, 5])"),
        (["--profile", "p", "--set", "epochs=true"], "--set epochs: must be a number, not a boolean (got true)"),
        # a null on an AlexNet field planned the field's default (10 epochs, not the profile's) and said "sets c"
        (["--profile", "p", "--set", "c.epochs=null"], "--set c.epochs: must be a valid integer (got null)"),
        # C=1e300 overflowed to an objective of inf beside "converged: yes"; width 1e-9 trained a 212-parameter AlexNet
        (["--profile", "p", "--set", "s.C=1e16"], "--set s.C: must be <= 1e+15: beyond it C x slack^2 overflows"),
        (["--profile", "p", "--set", "s.C=1e-6"], "--set s.C: must be >= 1e-05: below it w is near 0, every"),
        (["--profile", "p", "--set", "c.width=0.01"], "--set c.width: must be >= 1/96 (0.01042): narrower, AlexNet's"),
        (["--profile", "p", "--set", "c.width=null"], "--set c.width: must be a valid number (got null)"),
        (["--profile", "p", "--stale-after", "5"], "--stale-after 5: must be at least 15 seconds"),
        (["--profile", "p", "--jobs", "0"], "--jobs '0': a number of worker processes (1 or more) or auto"),
        (["--profile", "p", "--jobs", "two"], "--jobs 'two': a number of worker processes (1 or more) or auto"),
        (["--profile", "p", "--jobs", "²"], "--jobs '²': a number of worker processes (1 or more) or auto"),  # a digit
        (
            ["--profile", "p", "--set", "m.train_size=1298"],
            "--set m.train_size: 1298 is larger than the train pool of digits",
        ),
        (["--profile", "p", "--set", "test_size=501"], "--set test_size: 501 is larger than the test pool of digits"),
        (["--profile", "p", "--set", "m.hidden=[true]"], "--set m.hidden: must be a number, not a boolean"),
        # data a run cannot train on: a FAILED soft SVM and a CNN that FINISHED on 0 images before
        (
            ["--profile", "p", "--set", "s.train_size=4"],
            "--set s.train_size: class 8 has no training samples in digits (4 samples)",
        ),
        (["--profile", "p", "--set", "s.test_size=5"], "--set s.test_size: 5 test samples of digits hold none of"),
        (["--profile", "p", "--set", "c.train_fraction=0.0008"], "--set c.train_fraction: 0.0008 of digits is 1"),
        (["--profile", "p", "--set", "c.batch_size=1"], "--set c.batch_size: BatchNorm needs batches of 2 images"),
        (["--profile", "p", "--set", "m.grid.lr=[1,1]"], "--set m.grid.lr: 1 is listed twice (got [1, 1])"),
        # a scalar grid was "empty"; a grid of seeds beside a seeds list was "1 and 2 are one value, listed twice"
        (["--profile", "p", "--set", "m.grid.lr=0.5"], "--set m.grid.lr: a grid is a list of values (got 0.5; one"),
        (["--profile", "p", "--set", "m.grid.seed=[1,2]"], "--set m.grid.seed: seeds are not a grid field: a suite's"),
        # a --set that its grid or variants override everywhere changed no run but was reported as applied
        (["--profile", "p", "--set", "m.lr=0.5"], "--set m.lr: changes no run: every run it reaches takes lr from"),
        (["--profile", "p", "--set", "c.optimizer=adam"], "--set c.optimizer: changes no run: every run it reaches"),
        # the hint was a grid of lr, which the suite's variants refuse: a variant is the way
        (["--profile", "p", "--set", "c.lr=0.5"], "grid.variant; the variants of c set it: use --set c.grid.variant="),
        # it named the grid of every suite (the CNN suites' variants for an MLP's lr): now the one it names
        (
            ["--profile", "p", "--set", "m.lr=0.5"],
            "exp.yaml: suites.m.grid.lr; use --set m.grid.lr=[0.5]",
        ),
        (["--profile", "p", "--set", "m.seed=3"], "--set m.seed: changes no run: every run it reaches takes seed"),
        (["--profile", "p", "--only", "m", "--set", "lr=0.5"], "--set lr: changes no run"),
        # two --sets of one field, one general and one a suite's: the hint was a grid of one value (use --set
        # m.grid.epochs=[2]), which was not what either meant
        (
            ["--profile", "p", "--only", "m", "--set", "epochs=2", "--set", "m.epochs=3"],
            "--set epochs: changes no run: every run it reaches takes epochs from --set m.epochs (the last --set of a "
            "field counts): give it once",
        ),
        # it blamed a grid: the suite is simply not run
        (["--profile", "p", "--only", "s", "--set", "m.epochs=3"], "--set m.epochs: suite m is not among the suites"),
        (["--profile", "p", "--set", "m.grid.lr=[]"], "--set m.grid.lr: empty grid"),  # was "exp.yaml: --set ..."
        # two spellings of one value were two runs of one config: the table's n counted it twice
        (["--profile", "p", "--set", 'm.grid.lr=[0.1, "0.1"]'], "--set m.grid.lr: must be a number, not a string"),
        (["--profile", "p", "--set", "m.grid.hidden=[40, [40]]"], "--set m.grid.hidden: 40 and [40] are one value"),
        # a bare key reaches every suite: the one that refused a value another suite takes is named
        (["--profile", "p", "--set", "dataset=mnist"], "--set dataset (in suite c; SUITE.dataset sets one suite): "),
        # a grid of a field the variants set: the later key in the grid won (runs named "SGD lr=0.005, lr=0.1"),
        # or, the other way round, one run twice blamed on 0.1 and 0.2 being "one value"
        (["--profile", "p", "--set", "c.grid.lr=[0.1, 0.2]"], "--set c.grid.lr: the grid's variants set lr too"),
        # a traceback (unhashable type: 'list')
        (["--profile", "p", "--set", "c.grid.variant=[[sgd-0.005]]"], "--set c.grid.variant: unknown variant ['sgd"),
        (
            ["--profile", "p", "--set", "c.image_size=63"],
            "--set c.image_size: must be >= 67",
        ),
    ],
)
def test_reproduce_refuses_unknown_names_and_bad_overrides(workdir, args, message):
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    path = write(workdir, BASE)
    res = invoke("reproduce", "--file", path, *args)
    assert_one_line_error(res, message)
    assert_nothing_created(workdir)
    assert not (workdir / "mlflow.db").exists()


def test_a_bad_mlhw_jobs_is_named_as_the_variable(workdir, monkeypatch):
    """It read "--jobs 'two' (from MLHW_JOBS)": an option that was never given."""
    from helpers import assert_nothing_created, assert_one_line_error, invoke

    path = write(workdir, BASE)
    monkeypatch.setenv("MLHW_JOBS", "two")
    assert_one_line_error(invoke("reproduce", "--file", path, "--profile", "p"), "MLHW_JOBS='two': a number of worker")
    res = invoke("reproduce", "--file", path, "--profile", "p", "--jobs", "0")  # the option wins over the variable
    assert_one_line_error(res, "--jobs '0': a number of worker processes (1 or more) or auto")
    assert_nothing_created(workdir)


def test_a_value_a_later_layer_replaces_is_not_the_files_error():
    """The check that refuses a base value no run takes refused valid input: a --set grid over a field the profile
    sets (`--set m.grid.epochs=[1,2]`, blaming the file), and a suite's base value that one profile grids, for
    every profile (the file is validated whole). Both are the later layer's doing."""
    from mlhw.cli.validate import _sets_that_change
    from mlhw.experiments import ExperimentsFile

    spec = ExperimentsFile.model_validate(with_(lambda d: None))
    runs = expand(spec, "p", sets=["m.grid.epochs=[1,2]"])
    assert sorted({r.config.epochs for r in runs if r.suite == "m"}) == [1, 2]
    doc = with_(lambda d: d["profiles"].update(q={"suites": {"m": {"grid": {"epochs": [3, 4]}}}}))
    other = ExperimentsFile.model_validate(doc)  # suites.m.base.epochs: 2 is used by profile p, gridded by q
    assert {r.config.epochs for r in expand(other, "p") if r.suite == "m"} == {2}
    assert {r.config.epochs for r in expand(other, "q") if r.suite == "m"} == {3, 4}
    load_file(write_doc(doc))  # the file whole: every profile
    # a --set that another needs (momentum for the SGD variants a --set grid brings) is no no-op, and no error
    adam = ExperimentsFile.model_validate(with_(lambda d: d["suites"]["c"].update(grid={"variant": ["adam-5e-05"]})))
    sets = ["c.grid.variant=[sgd-0.005]", "c.momentum=0.5"]
    assert _sets_that_change(adam, "p", ["c"], sets, "exp.yaml", expand(adam, "p", ["c"], sets)) == sets


def test_a_bare_seeds_sets_the_suites_with_a_seed_and_a_seedless_suite_refuses_one():
    """`--set seeds=[1,2]` with the shipped file said "--set seeds: unknown key (got 1)": it reached theory too."""
    spec = load_file(Path("experiments.yaml"))
    plain = expand(spec, "digits")
    runs = expand(spec, "digits", sets=["seeds=[1,2]"])
    assert [r for r in runs if r.suite == "theory"] == [r for r in plain if r.suite == "theory"]
    mlp = [r for r in runs if r.suite == "mlp_full"]
    assert sorted(r.config.seed for r in mlp) == [1, 2]
    with pytest.raises(MLHWError, match=r"^--set theory.seeds: unknown key: this suite's runs take no seed"):
        expand(spec, "digits", sets=["theory.seeds=[1]"])


def test_a_field_of_other_suites_is_not_called_unknown_when_no_chosen_suite_has_it():
    """`--only theory --set epochs=2` said "unknown key 'epochs' (a field such as epochs, ...)": the message now
    says which chosen suite lacks it and which suites have it; a key no suite has is still unknown."""
    spec = load_file(Path("experiments.yaml"))
    with pytest.raises(MLHWError) as e:
        expand(spec, "digits", only=["theory"], sets=["epochs=2"])
    assert str(e.value).startswith("--set epochs: no chosen suite (theory) has 'epochs'; the suites that do: mlp_")
    assert "unknown" not in str(e.value)
    with pytest.raises(MLHWError, match=r"^--set bogus: unknown key 'bogus'"):
        expand(spec, "digits", only=["theory"], sets=["bogus=2"])


def test_one_hidden_width_is_a_layer_in_yaml_as_on_the_command_line(workdir):
    """`--set mlp_full.hidden=40` said "must be a valid tuple (got 40)", although `--hidden 40` works."""
    from mlhw.config import MLPConfig

    assert MLPConfig(hidden=40) == MLPConfig(hidden=[40]) == MLPConfig()  # the same run, the same identity
    with pytest.raises(ValueError):
        MLPConfig(hidden=True)


def test_an_mlp_without_a_hidden_layer_is_refused_in_yaml_as_on_the_command_line(workdir):
    """`--hidden ""` was refused while `--set hidden=[]` planned runs that trained softmax regression, named MLP []."""
    from mlhw.cli import app

    cmd = ["reproduce", "--dry-run", "--file", str(REPO_FILE), "--results-dir", str(workdir / "r")]
    cmd += ["--tracking-uri", f"sqlite:///{workdir}/m.db"]
    res = CliRunner().invoke(app, [*cmd, "--set", "hidden=[]"])
    assert res.exit_code == 2 and res.output.strip() == "error: --set hidden: must hold 1 value at least (got [])"
    res = CliRunner().invoke(app, ["mlp", "train", "--hidden", ""])
    assert res.exit_code == 2 and res.output.strip() == "error: --hidden is empty: give at least one value"
    assert not (workdir / "r").exists() and not (workdir / "m.db").exists()


def test_a_variant_may_spell_its_rate_as_the_run_names_print_it(tmp_path):
    """Run names, tables and figures print `Adam lr=5e-5`; the key is adam-5e-05: both name the variant."""
    doc = with_(lambda d: d["suites"]["c"]["grid"].update(variant=["adam-5e-5", "SGD-5e-3", "adam-0.00005-plain"]))
    runs = [r for r in expand(load_file(write(tmp_path, doc)), "p") if r.suite == "c"]
    assert [r.variant for r in runs] == ["adam-5e-05", "sgd-0.005", "adam-5e-05-plain"]
    assert [(r.config.optimizer, r.config.lr, r.config.batchnorm) for r in runs] == [
        ("adam", 5e-5, True),
        ("sgd", 0.005, True),
        ("adam", 5e-5, False),
    ]


def test_a_set_reaches_only_the_runs_that_read_its_field(workdir):
    """Adam reads no momentum and Q1's exact method no steps or rate: a bare --set leaves those runs as they are
    (the same identity, no rerun of an identical computation), and one aimed at them alone is refused."""
    doc = {
        "version": 1,
        "suites": {
            "c": {"kind": "cnn", "part": "cnn.a", "grid": {"variant": ["sgd-0.005", "adam-5e-05"]}},
            "a": {"kind": "cnn", "part": "cnn.b", "grid": {"variant": ["adam-0.005", "adam-5e-05"]}},
            "q": {"kind": "svm_multiclass", "part": "svm.q1", "base": {"method": "exact"}},
        },
        "profiles": {"p": {}},
    }
    spec = load_file(write(workdir, doc))
    runs = expand(spec, "p", sets=["momentum=0.9"])
    momentum = {(r.suite, r.config.optimizer): r.config.momentum for r in runs if r.kind == "cnn"}
    assert momentum == {("c", "sgd"): 0.9, ("c", "adam"): 0.0, ("a", "adam"): 0.0}
    adam = next(r for r in runs if r.suite == "a" and r.config.lr == 5e-5)
    assert identity(adam.config, "f") == identity(CNNConfig(lr=5e-5), "f") and "momentum" not in adam.where
    with pytest.raises(MLHWError, match=r"--set a.momentum: changes no run: no run it reaches reads momentum \(Adam"):
        expand(spec, "p", sets=["a.momentum=0.9"])
    with pytest.raises(MLHWError, match=r"--set steps: changes no run: no run it reaches reads steps \(the exact"):
        expand(spec, "p", only=["q"], sets=["steps=10"])
    # a grid of it over runs that ignore it would run one config twice: said so, not "one value listed twice"
    with pytest.raises(MLHWError, match=r"--set c.grid.momentum: some runs of c do not read momentum \(Adam"):
        expand(spec, "p", sets=["c.grid.momentum=[0, 0.9]"])
    # the file is still checked whole: a bad value is refused even where no run reads it
    doc["suites"]["a"]["base"] = {"momentum": 7}
    doc["profiles"]["p"] = {"defaults": {"steps": -5}}
    with pytest.raises(MLHWError, match=r"suites.a.base.momentum: must be < 1 \(got 7\)"):
        expand(load_file(write(workdir, doc)), "p")
    doc["suites"]["a"].pop("base")
    with pytest.raises(MLHWError, match=r"profiles.p.defaults.steps: must be > 0 \(got -5\)"):
        expand(load_file(write(workdir, doc)), "p")


def test_a_file_value_that_no_run_reads_is_refused_unless_a_later_layer_made_it_so(workdir):
    """`momentum: 0.9` in a suite whose runs are all Adam (the default optimizer, or its own variants) was dropped
    in silence; it is refused, as the same --set is. Where a later layer (a profile, a --set) chose Adam over a
    suite's SGD, the suite's value is that layer's doing: the file stays valid for every profile and --set."""
    msg = r"exp.yaml: {}.base.momentum: changes no run: no run of c reads momentum \(Adam has no momentum"

    def doc(suite_base, suite_grid=None, profile_suite=None):
        c = {"kind": "cnn", "part": "cnn.a", "base": suite_base, **({"grid": suite_grid} if suite_grid else {})}
        return {"version": 1, "suites": {"c": c}, "profiles": {"p": {"suites": {"c": profile_suite or {}}}}}

    adam = {"variant": ["adam-5e-05", "adam-0.005"]}
    for refused, where in [
        (doc({"momentum": 0.9}), "suites.c"),  # the default optimizer is Adam
        (doc({"momentum": 0.9}, adam), "suites.c"),  # the suite's own variants
        (doc({"optimizer": "adam", "momentum": 0.9}), "suites.c"),
        (doc({}, adam, {"base": {"momentum": 0.9}}), "profiles.p.suites.c"),  # the suite's grid is under it
    ]:
        with pytest.raises(MLHWError, match=msg.format(re.escape(where))):
            expand(load_file(write(workdir, refused)), "p")
    q = {"version": 1, "suites": {"q": {"kind": "svm_multiclass", "part": "svm.q1", "base": {"lr": 0.5}}}}
    with pytest.raises(MLHWError, match=r"suites.q.base.lr: changes no run: no run of q reads lr \(the exact method"):
        expand(load_file(write(workdir, {**q, "profiles": {"p": {}}})), "p")
    # one profile that reads the suite's value keeps it; refused where no profile does
    two = doc({"momentum": 0.9})
    two["profiles"]["sgd"] = {"suites": {"c": {"base": {"optimizer": "sgd"}}}}
    spec = load_file(write(workdir, two))
    assert [r.config.momentum for r in expand(spec, "sgd")] == [0.9]
    assert [r.config.momentum for r in expand(spec, "p")] == [0.0]
    two["profiles"]["sgd"] = {"defaults": {"epochs": 2}}
    with pytest.raises(MLHWError, match=msg.format("suites.c")):
        load_file(write(workdir, two))

    # a grid of one value is that value; a profile's defaults too (where no run of the profile reads them)
    grid = r"exp.yaml: {}: changes no run: no run of {} reads {} \((Adam|the exact)"
    for refused, where, who, field in [
        (doc({}, {"momentum": [0.9]}), "suites.c.grid.momentum", "c", "momentum"),
        (doc({}, adam, {"grid": {"momentum": [0.9]}}), "profiles.p.suites.c.grid.momentum", "c", "momentum"),
        (
            {**doc({}, adam), "profiles": {"p": {"defaults": {"momentum": 0.5}}}},
            "profiles.p.defaults.momentum",
            "p",
            "momentum",
        ),
        (
            {
                "version": 1,
                "suites": {"q": {"kind": "svm_multiclass", "part": "svm.q1"}},
                "profiles": {"p": {"defaults": {"steps": 10}}},
            },
            "profiles.p.defaults.steps",
            "p",
            "steps",
        ),
    ]:
        with pytest.raises(MLHWError, match=grid.format(re.escape(where), who, field)):
            expand(load_file(write(workdir, refused)), "p")

    sgd = {"optimizer": "sgd", "momentum": 0.9}
    # the default written out is no mistake, as `mlhw svm multiclass --steps 2000` is not
    explicit = {"method": "exact", "steps": 2000, "lr": 1.0}
    q_explicit = {"version": 1, "suites": {"q": {"kind": "svm_multiclass", "part": "svm.q1", "base": explicit}}}
    assert len(expand(load_file(write(workdir, {**q_explicit, "profiles": {"p": {}}})), "p")) == 1
    assert len(expand(load_file(write(workdir, doc({"momentum": 0.0}, adam))), "p")) == 2
    mixed = {**doc({}, {"variant": ["sgd-0.005", "adam-5e-05"]}), "profiles": {"p": {"defaults": {"momentum": 0.5}}}}
    assert {r.config.momentum for r in expand(load_file(write(workdir, mixed)), "p")} == {0.5, 0.0}
    accepted = [
        (doc({"momentum": 0.9}, {"variant": ["sgd-0.005", "adam-5e-05"]}), [], {0.9, 0.0}),  # the SGD runs read it
        (doc(sgd, None, {"grid": {"variant": ["adam-5e-05"]}}), [], {0.0}),  # the profile chose Adam
        (doc(sgd, None, {"base": {"optimizer": "adam"}}), [], {0.0}),
        (doc(sgd), ["optimizer=adam"], {0.0}),  # so did the --set
    ]
    for ok, sets, momenta in accepted:
        runs = expand(load_file(write(workdir, ok)), "p", sets=sets)
        assert {r.config.momentum for r in runs} == momenta


def test_the_plan_says_which_suites_a_set_reached(workdir):
    """A bare key sets every suite whose runs read the field: the plan names them."""
    from helpers import invoke

    res = invoke("reproduce", "--file", write(workdir, BASE), "--profile", "p", "--set", "epochs=3", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "--set epochs: sets c, m" in res.stdout  # the plan is a dry run's output


def test_error_values_read_as_written_in_yaml():
    """Error messages show a value in YAML's terms (what the user wrote), not Python's repr."""
    from mlhw.errors import as_written

    assert as_written(True) == "true" and as_written(False) == "false" and as_written(None) == "null"
    assert as_written((3, 3)) == "[3, 3]" and as_written([0.1, 1]) == "[0.1, 1]"
    assert as_written(-1.0) == "-1" and as_written(0.5) == "0.5" and as_written(5e-05) == "5e-05"
    assert as_written(float("inf")) == "inf" and as_written(float("nan")) == "nan"
    assert as_written("5") == "'5'" and as_written({"a": [1, True]}) == "{a: [1, true]}"


def test_a_profiles_jobs_is_read_as_the_option_is(workdir):
    """`--jobs AUTO` was taken and a profile's `jobs: AUTO` refused: both read auto in any case."""
    from mlhw.experiments import load_file

    doc = yaml.safe_load(yaml.safe_dump(BASE))
    doc["profiles"]["p"]["jobs"] = "AUTO"
    assert load_file(write(workdir, doc)).profiles["p"].jobs == "auto"
    doc["profiles"]["p"]["jobs"] = 3
    assert load_file(write(workdir, doc)).profiles["p"].jobs == 3


def test_an_error_shows_a_huge_value_cut_short(tmp_path):
    """A YAML alias bomb (nested anchors of ten; nine levels, 10^9 values) as a suite's description made the error
    one line of 1.1 GB, and a 100,000-character string one of 100 kB: the value is cut, its key still named."""
    from mlhw.errors import as_written

    bomb = "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}' if i else 'x'] * 10)}]\n" for i in range(7))
    doc = yaml.safe_dump(BASE).replace("kind: svm_soft", "kind: svm_soft\n    description: *a6")
    path = write(tmp_path, bomb + doc)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    said = str(info.value)  # the anchors' keys are unknown keys too: ten values, each cut
    assert "suites.s.description: must be a valid string (got [[[[" in said and len(said) < 5000, said[:5000]
    path = write(tmp_path, with_(lambda d: d["suites"]["m"]["base"].update(epochs="9" * 5000 + "x")))
    with pytest.raises(MLHWError, match=r"suites\.m\.base\.epochs: .*\(got '9999.*\.\.\.\)") as info:
        load_file(path)
    assert len(str(info.value)) < 500
    assert as_written(10**5000) == "an integer of about 5,001 digits"  # its str() would raise ValueError
    assert as_written(list(range(1000))).endswith("...") and len(as_written(list(range(1000)))) <= 200


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("x: " + "[" * 3000 + "]" * 3000 + "\n", "not valid YAML for mlhw (nested too deeply"),
        (
            "suites: {}\nprofiles: {p: {description: x}}\nwhen: 2026-13-01\n",
            "line 3 not valid YAML ('2026-13-01' is no",
        ),
        ("suites: {}\nprofiles: {p: {jobs: !!int two}}\n", "line 2 not valid YAML ('two' is no int"),
        ("suites: {}\nprofiles: {p: {jobs: " + "9" * 5000 + "}}\n", "line 2 not valid YAML ('9999"),
        # a list or a mapping as a key: `key in seen` raised TypeError (unhashable type: 'list'), a traceback
        ("suites: {}\nprofiles: {p: {}}\n[a, b]: 1\n", "line 3 not valid YAML (found unhashable key"),
        ("suites: {}\nprofiles: {p: {suites: {{a: 1}: {}}}}\n", "line 2 not valid YAML (found unhashable key"),
    ],
    ids=["nested", "month-13", "bad-int", "5000-digits", "list-key", "mapping-key"],
)
def test_yaml_that_python_cannot_build_is_one_line(tmp_path, text, culprit):
    """PyYAML raises RecursionError on deep nesting, and ValueError where a tagged or date-like value cannot be built
    (a month 13, an integer of over 4,300 digits): both were tracebacks with exit code 1."""
    path = write(tmp_path, text)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    said = str(info.value)
    assert said.startswith(f"{path}: ") and culprit in said and "\n" not in said and len(said) < 600, said


@pytest.mark.parametrize(
    "value, why",
    [
        ("[" * 3000 + "]" * 3000, "the value is not valid YAML for mlhw (nested too deeply"),
        ("2026-13-01", "'2026-13-01' is no timestamp (month must be in 1..12)"),  # the reason, not just "not YAML"
        ("9" * 5000, "'99999"),
        ("1e-400", "1e-400 is too small for a float: it reads as 0 (the smallest is about 5e-324)"),
    ],
    ids=["nested", "month-13", "5000-digits", "underflow"],
)
def test_a_set_value_that_python_cannot_build_is_one_line(value, why):
    from mlhw.experiments import parse_set

    with pytest.raises(MLHWError, match=r"^--set 'epochs=") as info:
        parse_set([f"epochs={value}"])
    assert why in str(info.value) and len(str(info.value)) < 600, str(info.value)


def test_an_alias_inside_the_value_it_names_is_one_line_not_a_traceback(tmp_path):
    """`&a [1, *a]` is a list that holds itself: the message that showed it recursed to a RecursionError traceback
    (in experiments.yaml and in --set alike)."""
    from mlhw.experiments import parse_set

    why = "the alias *a is inside the value &a names (a value without end)"
    text = yaml.safe_dump(BASE).replace("- 0.1\n", "- &a [0.1, *a]\n")
    path = write(tmp_path, text)
    line = text.splitlines().index("      - &a [0.1, *a]") + 1
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: line {line} not valid YAML ({why})"
    with pytest.raises(MLHWError) as info:
        parse_set(["m.seeds=&a [1, {b: *a}]"])
    assert str(info.value) == f"--set 'm.seeds=&a [1, {{b: *a}}]': {why}"
    # an alias after its anchor's value, however deep, is YAML's sharing, not a cycle
    assert parse_set(["x=[&a [1], [*a, *a]]"])[0][1] == [[1], [[1], [1]]]


@pytest.mark.parametrize(
    "written, why",
    [
        ("1e-400", "1e-400 is too small for a float: it reads as 0 (the smallest is about 5e-324)"),
        ("-2.5E-999", "-2.5E-999 is too small for a float: it reads as 0"),
        ("1.5e999", "1.5e999 is too large for a float: it reads as inf (the largest is about 1.8e308)"),
    ],
)
def test_a_number_beyond_floats_is_refused_at_its_line_not_read_as_0_or_inf(tmp_path, written, why):
    """`lr: 1e-400` read as 0 and was refused as 'must be > 0 (got 0)', a value the file does not hold."""
    text = yaml.safe_dump(BASE).replace("- 0.1\n", f"- {written}\n")
    line = text.splitlines().index(f"      - {written}") + 1
    path = write(tmp_path, text)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value).startswith(f"{path}: line {line} not valid YAML ({why}"), str(info.value)


def test_numbers_in_range_and_written_infinities_read_as_before():
    from mlhw.errors import float_beyond_range

    for text in ("0", "0.0", "-0e-400", "5e-324", "1.7e308", "inf", "-Infinity", "nan", "1_0.5", "abc", "0x10"):
        assert float_beyond_range(text) is None, text
    for text in ("1e-400", "0.0001e-330", "1e309", "-1e309", " 2e-400 ", "\u0661e-400"):  # (an Arabic-Indic 1)
        assert float_beyond_range(text) is not None, text


def test_a_control_character_in_the_file_is_one_line(tmp_path):
    """PyYAML's reader error spans two lines ('unacceptable character ...' then 'in "<unicode string>", position N')."""
    path = write(tmp_path, "suites: {}\nprofiles: {p: {description: a\x00b}}\n")
    with pytest.raises(MLHWError) as info:
        load_file(path)
    said = str(info.value)
    assert "\n" not in said and said.startswith(f"{path}: not valid YAML (unacceptable character #x0000"), said
    assert said.endswith("at position 40)"), said


@pytest.mark.parametrize("name", ["../../escape", "", "a/b", ".hidden", "-x", "two words"])
def test_a_profile_name_is_a_folder_name_under_results(tmp_path, name):
    """A profile is results/<profile>/: one named '../../escape' wrote outside --results-dir, one named '' into
    results/-partial/ (its parent run named ' · theory (partial)')."""
    path = write(tmp_path, with_(lambda d: d["profiles"].update({name: {}})))
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == (
        f"{path}: profiles: the name {name!r} is not a folder name for results/<profile>/ "
        "(letters, digits, '_', '-' and '.', starting with a letter or digit)"
    )


@pytest.mark.parametrize("name", ["../../escape", "", "a/b", ".hidden", "-x", "two words", "a.b"])
def test_a_suite_name_is_a_file_name_under_tables(tmp_path, name):
    """An added suite gets tables/<suite>.{csv,md,tex}: one named '../../escape' wrote results/escape.csv, beside
    the profiles' folders. (A dot would split it in --set SUITE.KEY.)"""
    path = write(tmp_path, with_(lambda d: d["suites"].update({name: {"kind": "svm_soft", "part": "svm.q3"}})))
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == (
        f"{path}: suites: the name {name!r} is not a file name for tables/<suite>.csv (letters, digits, '_' and '-', "
        "starting with a letter or digit; '.' separates --set SUITE.KEY)"
    )


def test_the_shipped_profiles_have_folder_names():
    assert {"ci", "digits", "paper"} <= set(load_file(Path(__file__).parents[1] / "experiments.yaml").profiles)
    for name in ("ci", "paper-2", "v1.2", "my_profile"):
        load_file(write_doc(with_(lambda d, n=name: d["profiles"].update({n: {}}))))


def test_a_missing_required_key_is_said_in_yaml_terms(tmp_path):
    """pydantic's "Field required": a YAML file has keys."""
    path = write(tmp_path, with_(lambda d: d["suites"]["s"].pop("kind")))
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: suites.s.kind: missing: a required key"


def test_yaml_merge_keys_share_a_base_between_suites(tmp_path):
    """`<<: *small` is how YAML shares settings: it read "could not determine a constructor for the tag ...merge"."""
    text = yaml.safe_dump(BASE).replace("base:\n      epochs: 2", "base: &small\n      epochs: 2")
    doc = text.replace(
        "  s:\n", "  m2:\n    kind: mlp\n    part: mlp.c\n    base:\n      <<: *small\n      lr: 0.5\n  s:\n"
    )
    spec = load_file(write(tmp_path, doc))
    assert spec.suites["m2"].base == {"epochs": 2, "lr": 0.5} == {**spec.suites["m"].base, "lr": 0.5}
    dup = doc.replace("      lr: 0.5\n", "      lr: 0.5\n      lr: 0.1\n")
    with pytest.raises(MLHWError, match="duplicate key 'lr'"):  # the mapping's own keys still may not repeat
        load_file(write(tmp_path, dup))


def test_a_profile_name_ending_in_partial_is_refused(tmp_path):
    """results/<profile>-partial/ is a profile's partial report: a profile named 'ci-partial' had its full report
    there, which `mlhw check` never takes for a baseline, and which `reproduce --profile ci --only theory` replaced."""
    path = write(tmp_path, with_(lambda d: d["profiles"].update({"ci-partial": {}})))
    with pytest.raises(MLHWError) as info:
        load_file(path)
    said = str(info.value)
    assert said.startswith(f"{path}: profiles: the name 'ci-partial' ends in '-partial'"), said
    assert "\n" not in said


@pytest.mark.parametrize("written", ["1_e-400", "1.5_e-400", "1__0.0e-400", "1_e400"])
def test_a_float_beyond_range_with_underscores_yaml_drops_is_refused_too(written):
    """YAML takes underscores where Python's float() does not (`1_e-400`): float_beyond_range saw no number there and
    passed it, and PyYAML, which drops them, read 0 (a momentum of 0 without a word, an lr 'must be > 0 (got 0)')."""
    from mlhw.experiments import parse_set

    with pytest.raises(MLHWError, match=rf"^--set 'momentum={written}': {written} is too (small|large) for a float"):
        parse_set([f"momentum={written}"])


def test_a_set_tag_on_a_sequence_is_one_line_not_a_traceback(tmp_path):
    """`!!set [1]` makes PyYAML build a mapping of a sequence: the duplicate-key check unpacked its items and raised
    TypeError (a traceback) from `--set mlp_full.seeds='!!set [1]'` and from experiments.yaml alike."""
    from mlhw.experiments import parse_set

    with pytest.raises(MLHWError, match=r"^--set 'seeds=!!set \[1\]': expected a mapping node, but found sequence"):
        parse_set(["seeds=!!set [1]"])
    path = write(tmp_path, "version: 1\nsuites: !!set [1]\n")
    with pytest.raises(MLHWError, match="expected a mapping node, but found sequence"):
        load_file(path)


@pytest.mark.parametrize(
    "suite, profile, culprit",
    [
        ({"base": {"seed": 3}, "seeds": [8, 9]}, {}, "suites.m.base.seed"),
        ({}, {"suites": {"m": {"base": {"seed": 3}, "seeds": [8, 9]}}}, "profiles.p.suites.m.base.seed"),
    ],
)
def test_a_base_seed_beside_its_layers_seeds_is_refused(tmp_path, suite, profile, culprit):
    """`base: {seed: 3}` beside `seeds: [8, 9]` trained seeds 8 and 9 and dropped the 3 in silence, where `base: {lr}`
    beside `grid: {lr: [...]}` is refused, and so is `--set m.seed=3` under a seeds list."""
    doc = {
        "version": 1,
        "suites": {"m": {"kind": "mlp", "part": "mlp.c", **suite}},
        "profiles": {"p": {"defaults": {"dataset": "digits"}, **profile}},
    }
    with pytest.raises(MLHWError, match=rf": {re.escape(culprit)}: changes no run: every run of m takes seed from"):
        expand(load_file(write(tmp_path, doc)), "p")


def test_a_suites_base_seed_under_a_profiles_seeds_is_the_profiles_doing(tmp_path):
    doc = {
        "version": 1,
        "suites": {"m": {"kind": "mlp", "part": "mlp.c", "base": {"seed": 3}}},
        "profiles": {"p": {"defaults": {"dataset": "digits"}, "suites": {"m": {"seeds": [8, 9]}}}, "q": {}},
    }
    spec = load_file(write(tmp_path, doc))
    assert [r.config.seed for r in expand(spec, "p")] == [8, 9] and [r.config.seed for r in expand(spec, "q")] == [3]


@pytest.mark.parametrize(
    "text, message",
    [
        # `mine:` with nothing under it (a profile begun and not yet written) is YAML's null
        (
            "suites: {m: {kind: mlp, part: mlp.c}}\nprofiles:\n  mine:\n",
            "profiles.mine: nothing given (YAML's null): must be a mapping of key: value "
            "(keys here: defaults, description, jobs, suites)",
        ),
        (
            "suites:\n  m:\nprofiles: {p: {}}\n",
            "suites.m: nothing given (YAML's null): must be a mapping of key: value "
            "(keys here: base, description, grid, kind, part, seeds)",
        ),
        (
            "suites: {m: {kind: mlp, part: mlp.c}}\nprofiles: {p: {suites: {m: [1]}}}\n",
            "profiles.p.suites.m: must be a mapping of key: value (keys here: base, grid, seeds) (got [1])",
        ),
    ],
    ids=["null-profile", "null-suite", "list-override"],
)
def test_a_missing_mapping_is_named_in_the_files_words(tmp_path, text, message):
    """A profile or suite left empty said "must be a valid dictionary or instance of ProfileSpec": a class name the
    file never shows, and no word of what goes there."""
    path = write(tmp_path, text)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == f"{path}: {message}"


def test_a_suite_of_more_runs_than_the_limit_is_refused_naming_its_longest_list(tmp_path):
    """Two lists of 100 pasted into one grid made 10,000 runs: `reproduce` planned them and set out to train them."""
    from mlhw.experiments import MAX_SUITE_RUNS

    rates = [round(0.001 * (i + 1), 3) for i in range(100)]
    doc = with_(lambda d: d["suites"]["m"].update(grid={"lr": rates, "batch_size": list(range(1, 11))}))
    path = write(tmp_path, doc)  # profile p's 2 seeds: 100 x 10 x 2 = 2,000 (safe_dump sorts the grid's keys)
    with pytest.raises(MLHWError) as info:
        load_file(path)
    assert str(info.value) == (
        f"{path}: suites.m.grid.lr: suite m would make 2,000 runs in profile p (10 values of batch_size x 100 values "
        "of lr x 2 "
        f"seeds), more than the {MAX_SUITE_RUNS:,} a suite may make: shorten the lists, or split the study into "
        f"suites of {MAX_SUITE_RUNS:,} runs at most"
    )
    # at the limit, it plans; a --set of seeds beyond it is named as the --set
    doc["suites"]["m"]["grid"]["batch_size"] = list(range(1, 6))
    spec = load_file(write(tmp_path, doc))
    assert len([r for r in expand(spec, "p") if r.suite == "m"]) == MAX_SUITE_RUNS
    with pytest.raises(MLHWError, match=r"^--set m.seeds: suite m would make 1,500 runs in profile p \(5 values of "):
        expand(spec, "p", sets=["m.seeds=[1, 2, 3]"])


def test_a_suite_too_large_in_another_profile_than_the_one_asked_for_names_that_profile(tmp_path):
    """Every profile of a file is expanded at its load: a suite that profile q cut to one seed, and profile p ran at
    all its own, was refused for `--profile q` with no word of p, in q's user's eyes a suite of 100 runs."""
    rates = [round(0.001 * (i + 1), 3) for i in range(100)]
    doc = with_(lambda d: d["suites"]["m"].update(grid={"lr": rates, "batch_size": list(range(1, 11))}, seeds=[1, 2]))
    doc["profiles"] = {"p": {}, "q": {"suites": {"m": {"seeds": [1]}}}}
    path = write(tmp_path, doc)
    with pytest.raises(MLHWError, match=r": suite m would make 2,000 runs in profile p \(10 values of batch_size "):
        load_file(path)
