"""AlexNet's shape arithmetic, in plain Python: the model (mlhw.cnn) is built from it, and the config
(mlhw.config) uses it to refuse an input too small for the topology before any run exists, without torch."""

from __future__ import annotations

# (kernel, stride, padding, max-pool(3, 2) after) of the assignment's five convolutions
CONVS = ((11, 4, 0, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False), (3, 1, 1, True))
STOCK_CHANNELS = (96, 256, 384, 384, 256)  # their output channels at width 1
STOCK_HIDDEN = 4096  # the hidden Linear layers' width at width 1
# the narrowest width at which every layer keeps a channel of its own: below it, the narrowest layer (96 channels)
# rounds to less than one, and a 212-parameter "AlexNet" trained for 10 epochs at chance (width 1e-9)
MIN_WIDTH = 1 / min(STOCK_CHANNELS)


def feature_size(image_size: int) -> int:
    """Side of the conv stack's output for a square input (0: the input is too small)."""
    s = image_size
    for k, stride, pad, pool in CONVS:
        s = (s + 2 * pad - k) // stride + 1
        if pool:
            s = (s - 3) // 2 + 1
        if s < 1:
            return 0
    return s


# 67 px: at 63 px the third max-pool would get a 2x2 map and output nothing
MIN_IMAGE_SIZE = next(s for s in range(1, 1024) if feature_size(s) >= 1)
