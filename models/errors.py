"""Errors the model package raises for bad input; all are ``ValueError`` so the CLI reports them.

Each message names the file, field or parameter at fault, because the person reading it is
usually looking at a checkpoint or a data file they did not write.
"""

from __future__ import annotations

# The one feature-spec refusal, shared with the feature-file reader: re-exported here so model
# code and its callers keep importing it from the model package's errors. It is a ValueError
# (the CLI's bad-input status) but not a ModelError: a spec mismatch is the features' verdict.
from engine.features.spec import SpecMismatchError

__all__ = [
    "CheckpointError",
    "DatasetError",
    "ModelError",
    "SeedImportError",
    "SpecMismatchError",
    "UntrustedPickleError",
]


class ModelError(ValueError):
    """Base class: something about a model, its data or its configuration is wrong."""


class CheckpointError(ModelError):
    """A checkpoint file is unreadable, incomplete or of an unknown format."""


class UntrustedPickleError(ModelError):
    """Reading the file would unpickle arbitrary objects and the caller did not trust it."""


class SeedImportError(ModelError):
    """A seed checkpoint could not be mapped onto this package's network."""


class DatasetError(ModelError):
    """Feature data cannot form training windows (bad shape, ordering, too few rows)."""
