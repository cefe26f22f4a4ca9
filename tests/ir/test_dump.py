"""Compilation dumps: `Jitted.dump` (stage names, what each stage holds), `TRACEJIT_DUMP=dir`
(numbered files per compiled function with the same texts), and the command line
`python -m tracejit dump FILE.py:FUNCTION --args ...` (all stages, --list, --stage, --no-fuse,
and clear errors with a non-zero exit status).

Oracles: the texts printed by the public objects themselves (`tj.trace(...).format`,
`Jitted.lower`, `Jitted.program`, `Jitted.report`), user line numbers computed from this
file's source, and NumPy for the values of every function dumped.
"""

from __future__ import annotations

import inspect
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest

import tracejit as tj
from tracejit.passes import pipeline

HERE = os.path.basename(__file__)
#: The stages the cpu backend adds: its LLVM module as generated, and after -O3.
CPU_STAGES = ["llvm", "llvm optimized"]
PASS_STAGES = [f"pass {name}" for name, _ in pipeline()]


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def layer(x, b):
    h = np.tanh(x + b)
    return np.sum(h * h, axis=0)


def layer_lines():
    first = inspect.getsourcelines(layer)[1]
    return first + 1, first + 2


def loss(w, x):
    return np.sum((x @ w) ** 2)


def check_layer(jitted, x, b):
    want = layer(x, b)
    got = jitted(x, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5)


# ---------------------------------------------------------------------------------------------
# Jitted.dump


def test_dump_stage_names_without_a_gradient():
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    stages = tj.jit(layer).dump(x, b)
    assert list(stages) == ["traced"] + PASS_STAGES + ["fused"] + CPU_STAGES
    check_layer(tj.jit(layer), x, b)


def test_traced_stage_carries_the_user_line_of_every_equation():
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    text = tj.jit(layer).dump(x, b)["traced"]
    a, r = layer_lines()
    assert text == tj.trace(layer, x, b).format(locations=True)
    assert text.startswith("func @layer(%0: f32[4,3], %1: f32[3]) -> f32[3] {")
    body = text.splitlines()[1:-2]
    assert [line.rsplit("# ", 1)[1] for line in body] == (
        [f"{HERE}:{a}"] * 3 + [f"{HERE}:{r}"] * 2)         # broadcast, add, tanh; mul, sum
    check_layer(tj.jit(layer), x, b)


def test_pass_stages_end_with_the_optimised_function():
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    jitted = tj.jit(layer)
    stages = jitted.dump(x, b)
    assert stages[PASS_STAGES[-1]] == jitted.lower(x, b).format(locations=True)
    for name in PASS_STAGES:
        assert stages[name].startswith("func @layer(")
    check_layer(jitted, x, b)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
def test_fused_stage_is_the_program_and_its_report(fuse):
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    jitted = tj.jit(layer, fuse=fuse)
    text = jitted.dump(x, b)["fused"]
    program = jitted.program(x, b)
    assert text == f"{program}\n\n{jitted.report(x, b)}"
    assert text.startswith(f"program @layer(%0: f32[4,3], %1: f32[3])  "
                           f"[{len(program.kernels)} kernel")
    assert ("fused]" if fuse else "unfused]") in text.splitlines()[0]
    n = len(program.kernels)
    assert f"fusion report for @layer: {n} kernel{'' if n == 1 else 's'} " in text
    check_layer(jitted, x, b)


def test_differentiated_stage_only_when_a_gradient_was_taken():
    w, x = rand(3, 2, seed=1, dtype=np.float64), rand(5, 3, seed=2, dtype=np.float64)
    plain = tj.jit(loss).dump(w, x)
    assert "differentiated" not in plain
    g = tj.jit(tj.grad(loss))
    stages = g.dump(w, x)
    assert list(stages) == ["traced", "differentiated"] + PASS_STAGES + ["fused"] + CPU_STAGES
    first = inspect.getsourcelines(loss)[1]
    # 'traced' is the function as the user wrote it; 'differentiated' its gradient function.
    assert stages["traced"] == plain["traced"]
    assert stages["traced"].startswith("func @loss(")
    assert stages["differentiated"].startswith("func @grad_loss(%0: f64[3,2], %1: f64[5,3])"
                                               " -> f64[3,2] {")
    assert f"# {HERE}:{first + 1}" in stages["differentiated"]
    np.testing.assert_allclose(g(w, x), 2 * x.T @ (x @ w), rtol=1e-12)


def test_a_gradient_inside_a_jitted_step_dumps_its_source_function():
    w, x = rand(3, 2, seed=1), rand(5, 3, seed=2)

    def step(w, x):
        value, grad = tj.value_and_grad(loss)(w, x)
        return value, w - 0.1 * grad

    jitted = tj.jit(step)
    stages = jitted.dump(w, x)
    assert stages["traced"].startswith("func @loss(")
    assert stages["differentiated"].startswith("func @step(")
    first = inspect.getsourcelines(step)[1]
    assert f"# {HERE}:{first + 2}" in stages["differentiated"]     # the SGD update
    value, new_w = jitted(w, x)
    assert value == pytest.approx(float(loss(w, x)), rel=1e-5)
    np.testing.assert_allclose(new_w, w - 0.1 * (2 * x.T @ (x @ w)), rtol=1e-5, atol=1e-6)


def test_dump_accepts_specs_and_does_not_run_anything():
    stages = tj.jit(layer).dump(tj.Spec((4, 3), "f32"), tj.Spec.parse("f32[3]"))
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    assert stages == tj.jit(layer).dump(x, b)
    check_layer(tj.jit(layer), x, b)


# ---------------------------------------------------------------------------------------------
# TRACEJIT_DUMP


def dump_folders(root, name):
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith(f"-{name}"))


def slug(stage):
    return stage.replace(" ", "-")


def test_tracejit_dump_writes_numbered_files_with_the_stage_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DUMP", str(tmp_path))

    def dumped_layer(x, b):
        return layer(x, b)

    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    jitted = tj.jit(dumped_layer)
    check_layer(jitted, x, b)
    (folder,) = dump_folders(tmp_path, "dumped_layer")
    assert folder.name[:3].isdigit() and folder.name[3] == "-"
    stages = jitted.dump(x, b)               # cached: the same compilation, no new folder
    assert len(dump_folders(tmp_path, "dumped_layer")) == 1
    files = sorted(p.name for p in folder.iterdir())
    assert files == [f"{i:02d}-{slug(s)}.txt" for i, s in enumerate(stages, 1)]
    assert files[0] == "01-traced.txt" and files[-1].endswith("-llvm-optimized.txt")
    for (stage, text), name in zip(stages.items(), files):
        assert (folder / name).read_text() == text + "\n"


def test_tracejit_dump_one_folder_per_compilation_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_DUMP", str(tmp_path))

    def dumped_twice(x, b):
        return layer(x, b)

    jitted = tj.jit(dumped_twice)
    small, large = (rand(4, 3, seed=1), rand(3, seed=2)), (rand(6, 3, seed=3), rand(3, seed=4))
    check_layer(jitted, *small)
    check_layer(jitted, *large)
    check_layer(jitted, *small)              # cached: no third folder
    folders = dump_folders(tmp_path, "dumped_twice")
    assert len(folders) == 2 and int(folders[0].name[:3]) < int(folders[1].name[:3])
    assert "f32[4,3]" in (folders[0] / "01-traced.txt").read_text()
    assert "f32[6,3]" in (folders[1] / "01-traced.txt").read_text()
    g = tj.jit(tj.grad(lambda w, x: loss(w, x)))
    w, x = rand(3, 2, seed=5), rand(5, 3, seed=6)
    np.testing.assert_allclose(g(w, x), 2 * x.T @ (x @ w), rtol=1e-5, atol=1e-6)
    (gfolder,) = dump_folders(tmp_path, "grad_lambda")
    assert (gfolder / "02-differentiated.txt").read_text().startswith("func @grad_lambda(")


def test_no_files_without_tracejit_dump(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACEJIT_DUMP", raising=False)
    monkeypatch.chdir(tmp_path)

    def undumped(x, b):
        return layer(x, b)

    check_layer(tj.jit(undumped), rand(4, 3, seed=1), rand(3, seed=2))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# python -m tracejit dump


MODULE = '''\
import numpy as np
import tracejit

CONSTANT = 3


def f(x, b):
    h = np.tanh(x + b)
    return np.sum(h * h, axis=0)


def scaled(x, b, s):
    return f(x, b) * s


unfused = tracejit.jit(f, fuse=False)
'''


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.py"
    path.write_text(MODULE)
    return path


def cli(module_path, *argv):
    env = {k: v for k, v in os.environ.items() if k != "TRACEJIT_DUMP"}
    return subprocess.run([sys.executable, "-m", "tracejit", "dump", *argv],
                          capture_output=True, text=True, cwd=module_path.parent, env=env,
                          timeout=120)


def in_process(module_path, name, *specs, fuse=True):
    fn = runpy.run_path(str(module_path))[name]
    if isinstance(fn, tj.Jitted):
        fn = tj.jit(fn.fun, fuse=fn.options.fuse)
    else:
        fn = tj.jit(fn, fuse=fuse)
    return fn.dump(*specs)


SPECS = (tj.Spec.parse("f32[4,3]"), tj.Spec.parse("f32[3]"))


def test_cli_prints_every_stage_in_order(module_path):
    r = cli(module_path, "model.py:f", "--args", "f32[4,3] f32[3]")
    assert r.returncode == 0, r.stderr
    stages = in_process(module_path, "f", *SPECS)
    headers = [line for line in r.stdout.splitlines() if line.startswith("==== ")]
    assert [h.split(" ", 1)[1].rstrip("= ") for h in headers] == list(stages)
    pos = 0
    for text in stages.values():
        pos = r.stdout.index(text, pos)          # every stage's text, in order
    assert "# model.py:8" in stages["traced"] and "# model.py:9" in stages["traced"]
    # The function it dumps computes what NumPy computes.
    ns = runpy.run_path(str(module_path))
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    np.testing.assert_allclose(tj.jit(ns["f"])(x, b), ns["f"](x, b), rtol=2e-5)


def test_cli_list_and_single_stage(module_path):
    stages = in_process(module_path, "f", *SPECS)
    r = cli(module_path, "model.py:f", "--args", "f32[4,3] f32[3]", "--list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == list(stages)
    r = cli(module_path, "model.py:f", "--args", "f32[4,3] f32[3]", "--stage", "fused")
    assert r.returncode == 0, r.stderr
    assert r.stdout == stages["fused"] + "\n"
    assert "[1 kernel, fused]" in r.stdout


def test_cli_no_fuse_and_jitted_targets(module_path):
    r = cli(module_path, "model.py:f", "--args", "f32[4,3] f32[3]", "--no-fuse",
            "--stage", "fused")
    assert r.returncode == 0, r.stderr
    unfused = in_process(module_path, "f", *SPECS, fuse=False)["fused"]
    assert r.stdout == unfused + "\n"
    n_eqns = len(tj.jit(runpy.run_path(str(module_path))["f"]).lower(*SPECS).eqns)
    assert f"[{n_eqns} kernels, unfused]" in r.stdout.splitlines()[0]
    # A function already wrapped in tracejit.jit keeps its own options.
    r = cli(module_path, "model.py:unfused", "--args", "f32[4,3] f32[3]", "--stage", "fused")
    assert r.returncode == 0, r.stderr
    assert r.stdout == unfused + "\n"


def test_cli_python_number_arguments(module_path):
    r = cli(module_path, "model.py:scaled", "--args", "f32[4,3] f32[3] 0.5", "--stage",
            "traced")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("func @scaled(%0: f32[4,3], %1: f32[3], %2: f64[]) -> f32[3] {")
    ns = runpy.run_path(str(module_path))
    x, b = rand(4, 3, seed=1), rand(3, seed=2)
    got, want = tj.jit(ns["scaled"])(x, b, 0.5), ns["scaled"](x, b, 0.5)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-5)


@pytest.mark.parametrize("argv,message", [
    (["model.py", "--args", "f32[4]"], "expected FILE.py:FUNCTION"),
    (["missing.py:f", "--args", "f32[4]"], "missing.py"),
    (["model.py:nope", "--args", "f32[4]"], "has no function 'nope'"),
    (["model.py:f", "--args", "f32[4,3] banana"], "cannot read argument 'banana'"),
    (["model.py:f", "--args", "q32[4,3] f32[3]"], "cannot read argument 'q32[4,3]'"),
    (["model.py:f", "--args", "f32[4,3] f32[3]", "--stage", "nope"], "no stage 'nope'"),
    (["model.py:f"], "f(x, b) cannot be called with the 0 arguments of --args"),
    (["model.py:f", "--args", "f32[4,3]"], "missing a required argument: 'b'"),
    (["model.py:f", "--args", "f32[4,3] f32[3] f32[3]"], "cannot be called with the 3"),
    (["model.py:CONSTANT", "--args", "f32[4]"], "is an int, not a function"),
    (["broken.py:f", "--args", "f32[4]"], "loading broken.py failed: ZeroDivisionError"),
], ids=["no_colon", "missing_file", "missing_function", "bad_number", "bad_dtype",
        "bad_stage", "no_args", "too_few_args", "too_many_args", "not_callable",
        "file_raises"])
def test_cli_errors_are_clear_and_fail(module_path, argv, message):
    (module_path.parent / "broken.py").write_text("x = 1 / 0\n")
    r = cli(module_path, *argv)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
    if "--stage" in argv:
        assert "stages: traced, " in r.stderr
