"""Code generation: tracejit Kernels to LLVM IR (cpu) and CUDA C (cuda).

Installed as tracejit.codegen.
"""
