"""The benchmark suite's --quick mode: every workload at small sizes, every implementation
that is installed, checked for agreement with tracejit (the suite must never rot)."""

import numpy as np
import pytest

import tracejit as tj
from benchmarks.__main__ import main
from benchmarks.runner import agreement
from benchmarks.workloads import VARIANTS
from tracejit.pytree import flatten


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.title)
def test_workload_matches_hand_written_numpy(variant):
    args = variant.make_args(True)
    got = [np.asarray(a) for a in flatten(tj.jit(variant.fn)(*args))[0]]
    want = [np.asarray(a) for a in flatten(variant.numpy(*args))[0]]
    ok, err = agreement(got, want, variant.rtol)
    assert ok, f"max relative error {err}"


def test_quick_mode_agrees(capsys):
    assert main(["--quick", "--peers", "numpy", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for v in VARIANTS:
        assert v.title in out
    assert " NO " not in out


def test_agreement_detects_a_difference():
    ok, err = agreement([np.array([1.0, 2.0])], [np.array([1.0, 2.1])], 1e-3)
    assert not ok and err == pytest.approx(0.1 / np.hypot(1.0, 2.1))
