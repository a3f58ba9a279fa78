"""Exceptions raised by the bench. Every bad input is named in the message."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class of every error the bench raises on purpose."""


class InputError(WorkbenchError, ValueError):
    """An input, baseline or target that a method cannot accept (shape, dtype, NaN/inf, range)."""


class ModelError(WorkbenchError, ValueError):
    """A model that cannot be explained as given (training mode, wrong output shape, dtype)."""


class UnsupportedModelError(ModelError):
    """A layer a method cannot handle (e.g. exact IG on a smooth activation).

    The axiom checker treats this as "not applicable" for the case, never as a violation.
    """


class ConvergenceError(WorkbenchError, RuntimeError):
    """An error-controlled computation did not reach its tolerance within its budget."""

    def __init__(self, message: str, *, residual: float, steps: int) -> None:
        super().__init__(message)
        self.residual = residual
        self.steps = steps


class ModelModifiedError(WorkbenchError, RuntimeError):
    """A method changed the model's parameters or buffers (a bug in the method)."""


class UnsafeCheckpointError(InputError):
    """A checkpoint that can only be loaded by unpickling arbitrary objects (which runs code)."""


class UntrustedCodeError(InputError):
    """A file names code to import and run; it is run only when the user names it or allows it."""
class WorkbenchWarning(UserWarning):
    """Base class of the bench's warnings: a result is returned, but not the one asked for."""


class ConvergenceWarning(WorkbenchWarning):
    """An error-controlled computation stopped at its budget; the best answer and its measured
    residual are returned (pass ``strict=True`` to get a ConvergenceError instead)."""


class ToleranceWarning(WorkbenchWarning):
    """A requested tolerance is below the dtype's round-off floor and was raised to the floor."""
