"""When a run has diverged: one rule for both parts (the MLP of Part 1 and the CNN of Part 2).

A training loss diverges when it is not finite (NaN, inf), or when it is more than `FACTOR` times the
loss of chance, ln(n_classes): the cross-entropy of a classifier that spreads its probability evenly.
A loss of 10 ln C says that the correct class gets, on geometric average, probability C^-10 (1e-10 for
10 classes): the network is confidently wrong, not merely untrained.

Why 10 (training loss per epoch / ln 10, measured with this code; epoch 0 is before the first step):

| run | epoch 1 | epochs 1..30 | verdict |
|---|---|---|---|
| MLP lr 0.001, digits (10 seeds) / MNIST 10k (3 seeds) | 4.5-8.6 / 6.3-6.5 | 0.45-8.6 | healthy: <= 8.6 |
| MLP lr 0.01 .. 1, both | 0.2-2.2 | 0.0-2.2 | healthy |
| MLP lr 10, both | 1.1-2.4 | 1.1-2.4 | stalls at chance (test acc 0.09-0.11), finite |
| MLP lr 100, digits / MNIST | 12.9-25.5 / 16.4-26.1 | 7.8-41 | flagged at epoch 1 (a subset: 1-3, below) |
| CNN Adam 0.005, SGD 0.005, Adam 5e-5 (digits, width 1/8, 67 px, 2 seeds) | 0.97-1.04 | 0.41-1.04 | healthy |
| CNN Adam 1e6 with BatchNorm + Dropout / without | 9.7e27-1.1e28 / NaN | | flagged at epoch 1 |

So 10 sits between the worst healthy epoch (8.6, lr 0.001 after one epoch: the unscaled N(0, 1)
initialisation starts far above chance) and the mildest lr-100 epoch 1 (12.9). A stall at chance
(MLP lr 10, Adam 0.005, loss 1.0-2.4 ln C) is a result, not a divergence: no loss rule can tell it
from a slow start, and accuracy already shows it.

The MLP's epoch 0 (before any step) is never judged: with N(0, 1) weights its loss is 7-16 ln C on digits and
20-43 ln C on MNIST (seeds 0-12, measured 2026-11-27), a property of the initialisation, not of training. For
the same reason a loss above the threshold that has fallen at every epoch since the first one recorded
(`descending`) is a slow start, not a divergence: lr 0.001 on a 2,000-image MNIST subset is still at 13.8-16.4
ln C after epoch 1 (2,000 steps of 0.001 from an initialisation at 20-36 ln C) and falls steadily, while lr
100 on the same data moves up and down between 10 and 77 ln C (seeds 0, 8-12; measured 2026-11-27). Such a run
is judged at its first epoch whose loss did not fall: lr 100 is then flagged at epoch 1-3, never left
unflagged.
"""

from __future__ import annotations

import math

FACTOR = 10.0


def chance_loss(n_classes: int) -> float:
    """Cross-entropy of the uniform prediction over n_classes: ln(n_classes)."""
    return math.log(n_classes)


def threshold(n_classes: int) -> float:
    """The largest training loss that is not a divergence."""
    return FACTOR * chance_loss(max(2, n_classes))


def is_diverged(loss: float, n_classes: int, descending: bool = False) -> bool:
    """True when `loss` is NaN or infinite, or more than FACTOR x ln(n_classes) while not `descending` (every
    loss so far below the one before it: still coming down from the initialisation)."""
    return not math.isfinite(loss) or (loss > threshold(n_classes) and not descending)


def descending(losses) -> bool:
    """Whether there are at least two losses and each is below the one before it."""
    losses = [float(v) for v in losses]
    return len(losses) > 1 and all(b < a for a, b in zip(losses, losses[1:]))


def first_diverged(losses, n_classes: int, start: int = 0) -> int | None:
    """Index of the first loss in `losses[start:]` that diverges (judged with the losses up to it), else None."""
    for i, loss in enumerate(losses):
        if i >= start and is_diverged(float(loss), n_classes, descending(losses[: i + 1])):
            return i
    return None
