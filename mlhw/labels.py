"""How mlhw names things, in the assignment's words: learning rates, CNN variants, and the runs of the single
commands (`mlhw mlp train`, `mlhw cnn train`, ...). No matplotlib here: the CLI names its runs without it."""

from __future__ import annotations

from mlhw.reference import CNN_VARIANT_TITLES, CNN_VARIANTS


def _number(x: float) -> str:
    """0.005 -> '0.005', 5e-05 -> '5e-5', 100 -> '100': the assignment's way of writing a rate."""
    s = f"{x:g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def lr_label(lr: float) -> str:
    """The legend label of a learning rate: `lr_label(0.1) == 'lr=0.1'`, `lr_label(5e-5) == 'lr=5e-5'`."""
    return f"lr={_number(lr)}"


def optimizer_name(optimizer: str) -> str:
    """'sgd' -> 'SGD', 'adam' -> 'Adam': an optimizer as the assignment writes it; any other as it is."""
    return {"sgd": "SGD", "adam": "Adam"}.get(optimizer, optimizer)


def cnn_title(optimizer: str, lr: float, batchnorm: bool = True, dropout: bool = True) -> str:
    """An AlexNet configuration in the assignment's words: 'Adam lr=5e-5, no BN/Dropout'."""
    name = optimizer_name(optimizer)
    off = [n for n, on in (("BN", batchnorm), ("Dropout", dropout)) if not on]
    return f"{name} {lr_label(lr)}" + (f", no {'/'.join(off)}" if off else "")


WITH_BN_DROPOUT = ", with BN/Dropout"  # Part 2 (c)'s figure: the variant with them says so, beside the one without


def variant_title(variant: str) -> str:
    """A CNN variant in the assignment's words ("adam-5e-05-plain" -> "Adam lr=5e-5, no BN/Dropout").

    Known variants come from `reference.CNN_VARIANT_TITLES`; another variant of `CNN_VARIANTS` is described from its
    config; anything else is returned as it is.
    """
    if variant in CNN_VARIANT_TITLES:
        return CNN_VARIANT_TITLES[variant]
    cfg = CNN_VARIANTS.get(variant)
    if cfg is None:
        return variant
    return cnn_title(cfg["optimizer"], cfg["lr"], cfg.get("batchnorm", True), cfg.get("dropout", True))


def subset_note(train_size, test_size) -> str:
    """' 2000/1000' (' 500/all'): a run's subset sizes, '' for the whole dataset."""
    sizes = [train_size, test_size]
    return " " + "/".join("all" if s is None else str(s) for s in sizes) if any(sizes) else ""


def batch_label(batch_size: int, n_train: int | None, split: str = "set") -> str:
    """'batch 60', and where it holds the whole training split, that it does: legal (full-batch gradient descent),
    but a typo's look-alike (--batch-size 100000 on 1,297 digits looked like any other run)."""
    whole = f" (the whole training {split}: one step an epoch)" if n_train and batch_size >= n_train else ""
    return f"batch {batch_size}{whole}"


def names_batch(cfg) -> bool:
    """Whether a CNN run's name and title (data_note) say its batch: one other than the config's default."""
    return cfg.batch_size != type(cfg).model_fields["batch_size"].default


def data_note(cfg, network: bool = True) -> str:
    """What a run trained on and for how long, for its name: 'digits, 30 epochs', 'mnist 2000/1000, 3 epochs'
    (train/test subset sizes), 'cifar10 10%, 10 epochs' (the CNN's training fraction). With `network=False` an
    MLP's hidden widths and batch size are left out, for a title that gives them itself ('MLP [40] ... batch 20')."""
    data = cfg.dataset + subset_note(getattr(cfg, "train_size", None), getattr(cfg, "test_size", None))
    fraction = getattr(cfg, "train_fraction", 1.0)
    if fraction < 1.0:
        data += f" {100 * fraction:g}%"
    if getattr(cfg, "kind", None) == "cnn":  # a model other than the dataset's preset: two runs, two names
        from mlhw.config import CNN_PRESETS

        preset = CNN_PRESETS.get(cfg.dataset, {})
        if cfg.width != preset.get("width"):
            data += f", width {cfg.width:g}"
        if cfg.image_size != preset.get("image_size"):
            data += f", {cfg.image_size} px"
        if names_batch(cfg):  # as the MLP's: 2 batch sizes, 2 names
            data += f", batch {cfg.batch_size}"
        if cfg.momentum:  # SGD's (Adam has none): plain SGD and SGD with momentum 0.9 shared a name
            data += f", momentum {cfg.momentum:g}"
    if (
        network and getattr(cfg, "kind", None) == "mlp"
    ):  # a network or batch other than the assignment's: named, as above
        fields = type(cfg).model_fields
        if tuple(cfg.hidden) != fields["hidden"].default:
            data += f", hidden {','.join(map(str, cfg.hidden))}"
        if cfg.batch_size != fields["batch_size"].default:
            data += f", batch {cfg.batch_size}"
    epochs = getattr(cfg, "epochs", None)  # the SVMs have none
    return data if epochs is None else f"{data}, {epochs} epoch{'s' if epochs != 1 else ''}"


def run_name(part: str, what: str, cfg) -> str:
    """A single command's run: 'mlp.c · lr=0.1, seed 8 (mnist 2000/1000, 3 epochs)'; a reproduction names its
    runs what sets them apart first, then their suite: "seed 8 (mnist, 30 epochs) · mlp_full" (mlhw.plan.job_of)."""
    return f"{part} · {what}, seed {cfg.seed} ({data_note(cfg)})"


def svm_variant(cfg) -> str:
    """What sets a single SVM command's run apart beyond its method (Q1) or classes and C (Q3), each only where it is
    not the config's default, in the words of the SVM table's setting: ', 300 steps, lr 5' (Q1's subgradient method;
    the exact one reads neither), ', no bias' (Q1), ', bias none' (Q3), ', seed 3'. Runs with and without Q1's bias
    feature, of Q3's three formulations, or of two step sizes all read 'svm.q3 · 3 vs 8, C=1 (digits)' alike."""
    fields = type(cfg).model_fields
    out = ""
    if getattr(cfg, "method", None) == "subgradient":
        out += f", {cfg.steps} steps, lr {_number(cfg.lr)}"
    bias = getattr(cfg, "bias", None)
    if bias is not None and bias != fields["bias"].default:
        out += ", no bias" if bias is False else f", bias {bias}"
    if cfg.seed != fields["seed"].default:
        out += f", seed {cfg.seed}"
    return out
