"""Run configurations: one pydantic model per kind of run, shared by the CLI, experiments.yaml and the core.

A config holds what defines a result (its identity, hashed for resumable runs). Where the
data lives, which device runs it and where it is tracked are runtime options, not config.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from mlhw.errors import MLHWError, format_validation_error


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self, *extra: str) -> str:
        """Stable short hash of the resolved config (plus e.g. the dataset fingerprint)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True) + "|".join(extra)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class MLPConfig(_Config):
    """Part 1: the hand-written backprop MLP (defaults: part (c) on the embedded digits)."""

    dataset: Literal["digits", "mnist"] = "digits"
    train_size: PositiveInt | None = Field(None, description="subset of the training pool (None = all)")
    test_size: PositiveInt | None = Field(None, description="subset of the test set (None = all)")
    hidden: tuple[PositiveInt, ...] = (40,)
    epochs: int = Field(30, ge=0)
    batch_size: PositiveInt = 10
    lr: PositiveFloat = 0.1
    seed: int = 8
    dtype: Literal["float32", "float64"] = "float32"


def build(model: type[_Config], prefix: str = "", **values) -> _Config:
    """Validate values into a config; a bad value becomes a one-line MLHWError naming the key."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        raise MLHWError(format_validation_error(err, prefix)) from None


class MulticlassSVMConfig(_Config):
    """Q1: minimise the multiclass hinge objective on every class of a dataset."""

    dataset: Literal["digits", "mnist"] = "digits"
    train_size: PositiveInt | None = None
    test_size: PositiveInt | None = None
    bias: bool = True  # a constant feature, so that each w_j has an offset
    method: Literal["exact", "subgradient"] = "exact"
    steps: PositiveInt = 2000  # subgradient steps
    lr: PositiveFloat = 1.0  # subgradient step size
    seed: int = 8


class SoftSVMConfig(_Config):
    """Q3: binary soft SVM with an l2 penalty on the slacks, one class against another."""

    dataset: Literal["digits", "mnist"] = "digits"
    classes: tuple[int, int] = (3, 8)
    C: PositiveFloat = 1.0
    bias: Literal["free", "regularized", "none"] = "free"
    train_size: PositiveInt | None = None
    test_size: PositiveInt | None = None
    seed: int = 8

    @field_validator("classes")
    @classmethod
    def _two_different(cls, v):
        if v[0] == v[1]:
            raise ValueError("needs two different classes")
        return v


class CNNConfig(_Config):
    """Part 2: one AlexNet variant. width 1 and image_size 227 are the paper's model exactly."""

    dataset: Literal["digits", "cifar10"] = "digits"
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: PositiveFloat = 5e-5
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    batchnorm: bool = True
    dropout: bool = True
    epochs: int = Field(10, ge=1)
    batch_size: PositiveInt = 64
    width: PositiveFloat = 1.0
    image_size: PositiveInt = 227
    train_fraction: float = Field(1.0, gt=0.0, le=1.0)
    seed: int = 0


class TheoryConfig(_Config):
    """Q1-Q4 checks; `digits` adds the checks on the embedded digits to the generated data."""

    digits: bool = True
