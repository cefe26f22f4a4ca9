"""Command line: print every compilation stage of a function in a file.

    python -m tracejit dump examples/train_mlp.py:sgd_step \\
        --args 'f32[1000,100] f32[100,10] f32[64,1000] f32[64,10] 1e-6'
    python -m tracejit dump model.py:loss --args 'f32[64,1000]' --stage fused --no-fuse
    python -m tracejit dump model.py:loss --args 'f32[64,1000]' --backend cuda-emulator --stage cuda

Arguments are array types written `dtype[d0,d1,...]` (f32, f64, i32, i64, bool) or Python
numbers. The function may be plain or already wrapped in tracejit.jit.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import runpy
import sys

from .api import Jitted, Spec, backends, jit
from .errors import TracejitError


def _parse_args(text: str) -> list:
    values = []
    for token in text.split():
        if "[" in token:
            try:
                values.append(Spec.parse(token))
            except (ValueError, TypeError) as exc:
                raise SystemExit(f"cannot read argument {token!r}: {exc}") from None
        else:
            try:
                values.append(ast.literal_eval(token))
            except (ValueError, SyntaxError):
                raise SystemExit(f"cannot read argument {token!r}: write an array type like "
                                 f"f32[64,1000] or a Python number") from None
    return values


def _load(target: str):
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise SystemExit(f"expected FILE.py:FUNCTION, got {target!r}")
    try:
        namespace = runpy.run_path(path, run_name="__tracejit_dump__")
    except OSError as exc:
        raise SystemExit(f"cannot run {path}: {exc.strerror or exc}") from None
    except Exception as exc:        # the user's file failed while it was loaded
        raise SystemExit(f"loading {path} failed: {type(exc).__name__}: {exc}") from None
    obj = namespace
    for part in name.split("."):
        try:
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        except (KeyError, AttributeError):
            raise SystemExit(f"{path} has no function {name!r}") from None
    if not callable(obj):
        kind = type(obj).__name__
        raise SystemExit(f"{name} in {path} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}, "
                         f"not a function")
    return obj


def _check_arity(fn, name: str, args: list) -> None:
    """Refuse --args that do not fit the function's parameters, naming the parameters."""
    target = fn.fun if isinstance(fn, Jitted) else fn
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):     # no signature to check (a builtin): let the call say
        return
    try:
        sig.bind(*args)
    except TypeError as exc:
        params = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        listed = ", ".join(p.name for p in params)
        given = f"{len(args)} argument{'s' if len(args) != 1 else ''}"
        raise SystemExit(
            f"{name}({listed}) cannot be called with the {given} of --args ({exc}). Give one "
            f"type or number per parameter, e.g. --args '"
            + " ".join(["f32[64,1000]"] * min(len(params), 2)) + (" ..." if len(params) > 2
                                                                   else "") + "'") from None


def dump_command(ns: argparse.Namespace) -> int:
    fn = _load(ns.target)
    if isinstance(fn, Jitted):
        fuse = fn.options.fuse if ns.fuse is None else ns.fuse
        jitted = jit(fn.fun, static_argnums=fn.static_argnums, fuse=fuse,
                     fast_math=ns.fast_math or fn.options.fast_math,
                     backend=ns.backend or fn.options.backend,
                     allow_tf32=ns.allow_tf32 or fn.options.allow_tf32)
    else:
        jitted = jit(fn, fuse=True if ns.fuse is None else ns.fuse, fast_math=ns.fast_math,
                     backend=ns.backend or "cpu", allow_tf32=ns.allow_tf32)
    args = _parse_args(ns.args)
    _check_arity(fn, ns.target.rpartition(":")[2], args)
    stages = jitted.dump(*args)
    if ns.list:
        print("\n".join(stages))
        return 0
    if ns.stage:
        if ns.stage not in stages:
            print(f"no stage {ns.stage!r}; stages: {', '.join(stages)}", file=sys.stderr)
            return 2
        stages = {ns.stage: stages[ns.stage]}
    for i, (name, text) in enumerate(stages.items()):
        if len(stages) > 1:
            print(("\n" if i else "") + f"==== {name} " + "=" * max(0, 70 - len(name)))
        print(text)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracejit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="print the compilation stages of FILE.py:FUNCTION")
    d.add_argument("target", help="FILE.py:FUNCTION")
    d.add_argument("--args", default="", help="argument types, e.g. 'f32[64,1000] f32[1000,100]'")
    d.add_argument("--stage", help="print only this stage (see --list)")
    d.add_argument("--list", action="store_true", help="list the stage names")
    d.add_argument("--no-fuse", dest="fuse", action="store_false", default=None,
                   help="one kernel per primitive")
    d.add_argument("--fast-math", action="store_true", help="allow fast-math rewrites")
    d.add_argument("--backend", choices=backends.NAMES, default=None,
                   help="compile for this backend (default: cpu, or the jitted function's); "
                        "cuda-emulator shows the CUDA C without a GPU")
    d.add_argument("--allow-tf32", action="store_true",
                   help="float32 dots on TF32 tensor cores (cuda)")
    ns = parser.parse_args(argv)
    try:
        return dump_command(ns)
    except BrokenPipeError:          # the reader (say `| head`) stopped early
        sys.stderr.close()
        return 0
    except TracejitError as exc:     # a problem in the user's function: its message says where
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
