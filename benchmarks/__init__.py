"""Benchmarks of the workloads in WORKLOADS.md: fused vs unfused vs NumPy and peers."""
