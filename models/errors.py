"""Errors the model package raises for bad input; all are ``ValueError`` so the CLI reports them.

Each message names the file, field or parameter at fault, because the person reading it is
usually looking at a checkpoint or a data file they did not write.
"""

from __future__ import annotations


class ModelError(ValueError):
    """Base class: something about a model, its data or its configuration is wrong."""


class CheckpointError(ModelError):
    """A checkpoint file is unreadable, incomplete or of an unknown format."""


class SpecMismatchError(ModelError):
    """A model was trained on a different feature spec than the one running now."""

    def __init__(self, what: str, model_hash: str, running_hash: str) -> None:
        super().__init__(
            f"{what}: feature spec hash {model_hash} does not match the running feature "
            f"calculator's spec hash {running_hash}; the model was trained on different features "
            "and is refused (retrain, or run the calculator version it was trained with)"
        )
        self.model_hash = model_hash
        self.running_hash = running_hash


class UntrustedPickleError(ModelError):
    """Reading the file would unpickle arbitrary objects and the caller did not trust it."""


class SeedImportError(ModelError):
    """A seed checkpoint could not be mapped onto this package's network."""


class DatasetError(ModelError):
    """Feature data cannot form training windows (bad shape, ordering, too few rows)."""
