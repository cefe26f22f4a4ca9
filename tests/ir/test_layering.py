"""The import layering of tracejit: no import cycle among its modules.

The graph has an edge from a module to every tracejit module it imports (`from . import x`,
`from .x import y`, `from ..x import y`, `import tracejit.x`, `from tracejit.x import y`),
wherever the import statement is: at module level or inside a function (an import deferred
into a function is still a dependency, and a cycle through one only waits for the first call
to fail), except under `if TYPE_CHECKING:`, which never runs. The modules are every `.py` file
of the packages that pyproject.toml installs (tracejit/, and codegen/ and runtime/ as
tracejit.codegen and tracejit.runtime). Importing `tracejit.x` runs `tracejit/__init__.py`
first; that implicit edge from a module to its parent package is not in the graph (every
submodule would form a cycle with its package), but importing a name that the package's
`__init__` defines (`from tracejit import jit`) is an edge to the package.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The tracing layers, lowest first: a layer never imports one above it.
LAYERS = ["tracejit.tracer", "tracejit.primitives", "tracejit.ops", "tracejit.numpy_api"]


def package_dirs(root: Path) -> dict[str, Path]:
    """Each installed package and its folder, as pyproject.toml maps them."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    folders = config["tool"]["setuptools"]["package-dir"]
    return {package: root / folder for package, folder in folders.items()}


def module_files(packages: dict[str, Path]) -> dict[str, Path]:
    """Module name -> file, for every .py file under the packages' folders."""
    modules = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package,) + parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import and ImportFrom node of `tree`, except those under `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)        # the body never runs
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that module `name` (in file `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def add(target: str, names: list[str]) -> None:
        for item in names:            # a submodule when it is one, else a name of `target`
            sub = f"{target}.{item}"
            if sub in modules:
                found.add(sub)
            elif target in modules:
                found.add(target)

    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
            continue
        if node.level:
            base = package.split(".")
            base = base[:len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target in modules or any(m.startswith(target + ".") for m in modules):
            add(target, [alias.name for alias in node.names])
    found.discard(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the tracejit modules it imports, for every module under `root`."""
    modules = module_files(package_dirs(root))
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as [a, b, ..., a], or None when it is acyclic."""
    state: dict[str, str] = {}             # "open" on the current path, then "done"
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        state[start] = "open"
        pending = [iter(sorted(graph[start]))]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[path.pop()] = "done"
                pending.pop()
            elif state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = "open"
                path.append(nxt)
                pending.append(iter(sorted(graph.get(nxt, ()))))
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph.get(todo.pop(), ()):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


# ---------------------------------------------------------------------------------------------


def test_no_import_cycle():
    graph = import_graph(ROOT)
    assert {"tracejit.tracer", "tracejit.numpy_api.ufuncs", "tracejit.codegen.llvm"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_tracing_layers():
    """tracer <- primitives <- ops <- numpy_api: no layer reaches one above it."""
    graph = import_graph(ROOT)
    assert "tracejit.tracer" in graph["tracejit.primitives"]
    assert "tracejit.primitives" in graph["tracejit.ops"]
    for i, lower in enumerate(LAYERS):
        higher = LAYERS[i + 1:]
        above = {m for m in graph if any(m == h or m.startswith(h + ".") for h in higher)}
        wrong = reachable(graph, lower) & above
        assert not wrong, f"{lower} imports {sorted(wrong)}"


def _third_party(path: Path) -> set[str]:
    """The top-level names of the modules outside tracejit that a file imports."""
    out = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {"tracejit"}


def test_codegen_layers():
    """The CUDA emitter reaches neither the LLVM emitter nor llvmlite; the shared lowering
    layer no emitter; no code generator the runtime or the API."""
    graph = import_graph(ROOT)
    modules = module_files(package_dirs(ROOT))
    cuda = reachable(graph, "tracejit.codegen.cuda")
    assert "tracejit.codegen.llvm" not in cuda and "tracejit.codegen.llvm_math" not in cuda
    assert not any("llvmlite" in _third_party(modules[m]) for m in cuda | {"tracejit.codegen.cuda"})
    shared = ("tracejit.codegen.lowering", "tracejit.codegen.buffers", "tracejit.codegen.status")
    for name in shared:
        assert not {"tracejit.codegen.llvm", "tracejit.codegen.cuda"} & reachable(graph, name)
        assert "llvmlite" not in _third_party(modules[name])
    for name in [m for m in graph if m.startswith("tracejit.codegen")]:
        wrong = {m for m in reachable(graph, name)
                 if m.startswith("tracejit.runtime") or m == "tracejit.api"}
        assert not wrong, f"{name} imports {sorted(wrong)}"


def test_checker_finds_a_cycle(tmp_path):
    """The checker sees a cycle through an import inside a function, and none through an import
    under TYPE_CHECKING."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"pkg" = "src"\n')
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (src / "sub" / "__init__.py").write_text("")
    (src / "sub" / "b.py").write_text("from ..c import x\n")
    (src / "c.py").write_text("import pkg.a\nx = 1\n")
    (src / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from . import e\nelse:\n    from pkg import c\n")
    (src / "e.py").write_text("from . import d\n")
    graph = import_graph(tmp_path)
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    del graph["pkg.c"]
    assert find_cycle(graph) is None


@pytest.mark.parametrize("module", ["tracejit.tracer", "tracejit.primitives", "tracejit.ops"])
def test_imports_first(module):
    """Each tracing layer imports first in a fresh interpreter: as usual (tracejit's
    `__init__` runs first), and alone, with the package's `__init__` left out so that only the
    module's own imports run."""
    alone = ("import sys, types\n"
             "package = types.ModuleType('tracejit')\n"
             f"package.__path__ = [{str(ROOT / 'tracejit')!r}]\n"
             "sys.modules['tracejit'] = package\n"
             f"import {module}\n"
             "assert 'tracejit.numpy_api' not in sys.modules\n")
    for code in (f"import {module}", alone):
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_tracer_members_defined_with_the_class():
    """The Tracer's operators and NumPy methods are defined in its class body, none attached
    from elsewhere."""
    from tracejit.tracer import Tracer
    here = inspect.getsourcefile(Tracer)
    members = {name: value for name, value in vars(Tracer).items()
               if inspect.isfunction(value) or isinstance(value, property)}
    assert {"__add__", "__rmatmul__", "__getitem__", "__array_ufunc__", "__array_function__",
            "__bool__", "reshape", "sum", "astype", "T"} <= set(members)
    for name, value in members.items():
        fn = value.fget if isinstance(value, property) else value
        assert inspect.getsourcefile(fn) == here, name
