"""Runtime: compiling generated code, caches, buffers and launching.

Installed as tracejit.runtime.
"""
