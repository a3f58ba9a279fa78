"""workbench: a theory-checking research bench for attribution methods."""

from .errors import (
    ConvergenceError,
    InputError,
    ModelError,
    ModelModifiedError,
    UnsupportedModelError,
    WorkbenchError,
)
from .methods import Method, method, methods

__version__ = "0.1.0"
