"""Attribution methods. Importing this package registers the built-in methods."""

from .base import CallableMethod, Claims, Method, as_method
from .registry import MethodInfo, method, methods, parse_method, register
from . import gradient, integrated_gradients, smoothgrad, expected_gradients  # noqa: F401  (register)
from . import fullgrad, gradcam, modified_backprop, deeplift  # noqa: F401  (register)
from . import igos  # noqa: F401  (register)

__all__ = ["CallableMethod", "Claims", "Method", "MethodInfo", "as_method", "method", "methods", "parse_method", "register"]
