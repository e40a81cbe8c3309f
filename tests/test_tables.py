"""The table builder against numpy, and its renderings."""

import numpy as np
import pandas as pd

from mlhw import tables as T


def test_summarise_is_mean_and_sample_std_per_group():
    recs = [{"lr": 0.1, "acc": 0.9}, {"lr": 0.1, "acc": 0.8}, {"lr": 1.0, "acc": 0.5}, {"lr": 0.1, "acc": 0.95}]
    num = T.summarise(recs, ["lr"], ["acc"])
    assert num["lr"].tolist() == [0.1, 1.0] and num["n"].tolist() == [3, 1]
    assert num.loc[0, "acc_mean"] == np.mean([0.9, 0.8, 0.95])
    assert num.loc[0, "acc_std"] == np.std([0.9, 0.8, 0.95], ddof=1)
    assert np.isnan(num.loc[1, "acc_std"])  # one seed: no spread


def test_display_shows_mean_pm_std_only_with_several_seeds():
    recs = [
        {
            "variant": "adam-5e-05",
            "optimizer": "adam",
            "lr": 5e-5,
            "batchnorm": True,
            "train_loss": l,
            "val_acc": a,
            "test_acc": a,
        }
        for l, a in ((0.6, 0.61), (0.62, 0.63))
    ]
    recs.append(
        {
            "variant": "sgd-0.005",
            "optimizer": "sgd",
            "lr": 0.005,
            "batchnorm": True,
            "train_loss": 1.1,
            "val_acc": 0.48,
            "test_acc": 0.5,
        }
    )
    t = T.cnn_table("cnn_optimizers", recs, reference=True)
    assert t.display["val acc"].tolist() == ["62.00% ± 1.41%", "48.00%"]
    assert t.display["reference (loss / val / test)"].tolist()[0] == "0.6086 / 61.89% / 62.49%"
    assert t.numeric.loc[0, "reference_test_acc"] == 0.6249


def test_markdown_escapes_pipes_and_latex_renders():
    df = pd.DataFrame({"check": ["|x| <= 1e6"], "v": ["1.0"]})
    md = T.to_markdown(df)
    assert md.splitlines()[2] == "| \\|x\\| <= 1e6 | 1.0 |"
    assert "\\begin{tabular}" in T.to_latex(df)
