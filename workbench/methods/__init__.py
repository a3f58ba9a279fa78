"""Attribution methods, one family per module; importing the package registers the built-ins.

The package is callable: ``workbench.methods()`` lists the built-in methods with their claims
(``registry.methods``); ``workbench.method(name, **options)`` builds one. ``registry`` is the one
source of truth for names, default configurations, the configurations the claims audit covers and
the axioms each claims.
"""

from workbench.core.callable_module import make_callable
from workbench.methods.base import CallableMethod, Claims, Method, as_method
from workbench.methods.registry import MethodInfo, audited_methods, method, methods, parse_method, register
from workbench.methods import gradient, integrated_gradients, smoothgrad, expected_gradients  # noqa: F401  (register)
from workbench.methods import fullgrad, gradcam, modified_backprop, deeplift  # noqa: F401  (register)
from workbench.methods import igos  # noqa: F401  (register)

make_callable(__name__, methods)

__all__ = [
    "CallableMethod", "Claims", "Method", "MethodInfo", "as_method", "audited_methods", "method", "methods", "parse_method",
    "register",
]
