"""experiments.yaml: the shipped file validates; every kind of mistake gets a message naming file, key, value."""

from pathlib import Path

import pytest
import yaml

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
    assert len(sweep) == 18 and {r.config.seed for r in sweep} == {8, 9, 10}
    paper = {r.suite: r for r in expand(spec, "paper")}
    assert paper["cnn_optimizers"].config.image_size == 227 and paper["cnn_optimizers"].config.dataset == "cifar10"
    assert paper["mlp_lr_sweep"].config.train_size == 10000 and paper["mlp_full"].config.dataset == "mnist"
    shared = [r.config for r in digits if r.variant == "adam-5e-05" and r.config.seed == 0]
    assert len(shared) == 3 and len({c.digest() for c in shared}) == 1  # one run serves 2a, 2b and 2c


def write(tmp_path, doc) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc) if not isinstance(doc, str) else doc)
    return path


BASE = {
    "suites": {
        "m": {"kind": "mlp", "part": "mlp.c", "base": {"epochs": 2}, "grid": {"lr": [0.1, 1]}},
        "c": {"kind": "cnn", "part": "cnn.a", "grid": {"variant": ["sgd-0.005"]}},
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
            "exp.yaml: suites.m.base.epochs: Input should be a valid integer, unable to parse string as an integer (got 'many')",
        ),
        (lambda d: d["suites"]["m"]["grid"].update(lr=[]), "exp.yaml: suites.m.grid.lr: empty grid"),
        (
            lambda d: d["suites"]["m"]["grid"].update(lr=[0.1, -1]),
            "exp.yaml: suites.m.grid.lr: Input should be greater than 0 (got -1)",
        ),
        (lambda d: d["profiles"]["p"]["suites"].update(nope={}), "exp.yaml: profiles.p.suites.nope: unknown suite"),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(base={"batch_size": 0}),
            "exp.yaml: profiles.p.suites.m.base.batch_size: Input should be greater than 0 (got 0)",
        ),
        (
            lambda d: d["profiles"]["p"].update(defaults={"colour": "red"}),
            "exp.yaml: profiles.p.defaults.colour: unknown key",
        ),
        (lambda d: d["suites"]["m"].update(kind="rnn"), "exp.yaml: suites.m.kind: Input should be 'mlp', 'cnn'"),
        (lambda d: d["suites"]["m"].update(extra=1), "exp.yaml: suites.m.extra: unknown key"),
        (
            lambda d: d["suites"]["c"]["grid"].update(variant=["adam-1"]),
            "exp.yaml: suites.c.grid.variant: unknown variant 'adam-1'",
        ),
        (
            lambda d: d["profiles"]["p"]["suites"]["m"].update(seeds=[]),
            "exp.yaml: profiles.p.suites.m.seeds: expected a non-empty list",
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


def test_unknown_profile_and_suite(tmp_path):
    spec = load_file(write(tmp_path, BASE))
    with pytest.raises(MLHWError, match="--profile 'q': unknown profile in experiments.yaml"):
        expand(spec, "q")
    with pytest.raises(MLHWError, match="--only 'x': unknown suite"):
        expand(spec, "p", only=["x"])


def test_set_overrides_are_typed_and_scoped(tmp_path):
    spec = load_file(write(tmp_path, BASE))
    runs = expand(spec, "p", sets=["epochs=3", "m.lr=0.05", "m.seeds=[4]", "m.grid.lr=[0.2,0.3]", "c.width=0.25"])
    m = [r for r in runs if r.suite == "m"]
    assert [r.config.lr for r in m] == [0.2, 0.3] and {r.config.seed for r in m} == {4}
    assert all(r.config.epochs == 3 and isinstance(r.config.epochs, int) for r in runs)
    c = [r for r in runs if r.suite == "c"][0]
    assert c.config.width == 0.25 and c.config.optimizer == "sgd"
    with pytest.raises(MLHWError, match="--set: unknown key 'colour'|--set colour: unknown key"):
        expand(spec, "p", sets=["colour=red"])
    with pytest.raises(MLHWError, match=r"--set 'epochs': expected KEY=VALUE"):
        expand(spec, "p", sets=["epochs"])
    with pytest.raises(MLHWError, match=r"^--set epochs: Input should be greater than or equal to [01] \(got -1\)"):
        expand(spec, "p", sets=["epochs=-1"])
