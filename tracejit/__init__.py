"""tracejit: trace plain NumPy functions into a typed SSA IR, differentiate, optimise, run.

    import numpy as np, tracejit as tj

    def loss(w, x, y):
        return np.mean((x @ w - y) ** 2)

    step = tj.jit(tj.value_and_grad(loss))
    l, g = step(w, x, y)
    print(tj.trace(loss, w, x, y))        # the IR
"""

# numpy_api registers NumPy's functions, ufuncs and methods on tracers when it is imported.
from . import init, numpy_api, optim, random
from .api import Jitted, Spec, grad, jit, jvp, to_host, trace, value_and_grad, vjp
from .batching import vmap
from .check import check_grads
from .custom import checkpoint, custom_jvp, custom_vjp, remat
from .jacobians import hessian, hvp, jacfwd, jacobian, jacrev, linearize
from .serialize import load, save
from .errors import (ConcretizationError, CudaUnavailableError, DTypeError, EscapedTracerError,
                     GradError, ShapeError, TracedIndexError, TracejitError, UnsupportedError)
from .interpreter import interpret
from .ir import Function, Type, verify
from .pytree import tree_map

__version__ = "0.1.0"

__all__ = [
    "jit", "grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "jacobian", "hessian",
    "hvp", "linearize", "vmap", "custom_vjp", "custom_jvp", "checkpoint", "remat", "trace",
    "interpret", "verify", "tree_map", "to_host",
    "optim", "init", "random", "numpy_api", "save", "load", "check_grads",
    "Function", "Type", "Spec", "Jitted",
    "TracejitError", "ConcretizationError", "UnsupportedError", "ShapeError",
    "TracedIndexError", "DTypeError", "GradError", "EscapedTracerError", "CudaUnavailableError",
]
