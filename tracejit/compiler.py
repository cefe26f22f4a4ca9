"""From a traced Function to something that runs: passes, fusion, backend; and every stage
kept as text for dumps.

    traced Function ─ passes ─► optimised Function ─ fusion ─► Program ─ backend ─► callable

`TRACEJIT_DUMP=dir` writes the stages of every function compiled as numbered text files:
dir/NNN-name/01-traced.txt, 02-differentiated.txt, 03-pass-dce.txt, ..., NN-fused.txt.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from . import settings
from .files import atomic_write
from .fusion import plan
from .ir import Function
from .kernel_interpreter import run_program
from .kernels import Program
from .passes import pipeline, run_pipeline
from .report import fusion_report

_dump_counter = itertools.count(1)


@dataclass(frozen=True)
class Options:
    """How to compile: the backend, whether to fuse, whether fast-math rewrites apply, and
    whether float32 dots may use TF32 tensor cores (cuda). The API checks the backend's name
    against the registry of backends (tracejit.runtime.backends) before making one."""

    backend: str = "cpu"
    fuse: bool = True
    fast_math: bool = False
    allow_tf32: bool = False


@dataclass
class Compiled:
    """Everything compiling one function for one signature produced."""

    traced: Function                      # as traced (with any autodiff already applied)
    sources: list[Function]               # functions differentiated while tracing, as traced
    passes: list[tuple[str, Function]]    # the function after each pass
    program: Program
    run: Callable[[list], list]
    backend_stages: dict[str, "str | Callable[[], str]"] = field(default_factory=dict)
    native: object = None                 # the backend's compiled program (cpu: CpuProgram)

    def report(self) -> str:
        """The fusion report, with the backend's buffer plan (peak bytes of intermediates)."""
        text = fusion_report(self.program)
        if self.native is not None:
            text += "\n" + self.native.plan.describe()
        return text

    def attach(self, native) -> None:
        """Run through a compiled backend's program: callable on the flat arguments, with a
        buffer `plan` and `stages()` ({name: text, or a function making it when asked})."""
        self.run = native
        self.native = native
        self.backend_stages.update(native.stages())

    @property
    def optimized(self) -> Function:
        return self.passes[-1][1] if self.passes else self.traced

    def stages(self) -> dict[str, str]:
        """{stage name: text}, in pipeline order."""
        out: dict[str, str] = {}
        if self.sources:
            out["traced"] = "\n\n".join(f.format(locations=True) for f in self.sources)
            out["differentiated"] = self.traced.format(locations=True)
        else:
            out["traced"] = self.traced.format(locations=True)
        for name, fn in self.passes:
            out[f"pass {name}"] = fn.format(locations=True)
        out["fused"] = f"{self.program}\n\n{self.report()}"
        for name, text in self.backend_stages.items():
            out[name] = text() if callable(text) else text
        return out


def compile_function(traced: Function, sources: list[Function], options: Options,
                     native: Callable[[Program], object] | None = None) -> Compiled:
    """Optimise, fuse and prepare `traced` for `options.backend`: with `native` (the compiled
    backend's compiler, given by the API), its program runs; else the kernel interpreter."""
    directory = settings.folder("TRACEJIT_DUMP", must_be_folder=True)   # checked before the work
    passes = run_pipeline(traced, pipeline(options.fast_math))
    program = plan(passes[-1][1] if passes else traced, fuse=options.fuse)
    compiled = Compiled(traced, sources, passes, program,
                        lambda flat, program=program: run_program(program, flat))
    if native is not None:
        compiled.attach(native(program))
    if directory:
        write_dump(directory, traced.name, compiled.stages())
    return compiled


def write_dump(directory: str, name: str, stages: dict[str, str]) -> str:
    """Write stages as numbered files under directory/NNN-name/; returns that folder."""
    folder = os.path.join(directory, f"{next(_dump_counter):03d}-{name}")
    os.makedirs(folder, exist_ok=True)
    for i, (stage, text) in enumerate(stages.items(), 1):
        slug = re.sub(r"[^\w]+", "-", stage).strip("-")
        path = os.path.join(folder, f"{i:02d}-{slug}.txt")
        with atomic_write(path, private=False) as f:
            f.write((text + "\n").encode())
    return folder
