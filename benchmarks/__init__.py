"""Benchmarks of the workloads in docs/workloads.md: fused vs unfused vs NumPy and peers."""
