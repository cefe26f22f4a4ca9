#!/bin/sh
# Build and install pycuda without network, from the folder this script lies in.
#
#   sh install-pycuda.sh [python]        (default: python; e.g. /path/to/venv/bin/python)
#
# Needs: nvcc (the CUDA toolkit), a C++ compiler, and numpy already installed in that Python.
# The toolkit's root: $CUDA_ROOT, else $CUDA_HOME, else where nvcc says it lives (its TOP).
# pycuda's build (aksetup) reads its settings from ~/.aksetup-defaults.py, not from the
# environment, so the settings are written to a fresh folder used as HOME for the build only.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${1:-python}

command -v nvcc >/dev/null || { echo "nvcc is not on PATH: install the CUDA toolkit" >&2; exit 1; }
"$PY" -c "import numpy" 2>/dev/null || { echo "numpy is not installed in $PY" >&2; exit 1; }

ROOT=${CUDA_ROOT:-${CUDA_HOME:-}}
if [ -z "$ROOT" ]; then
    TOP=$(nvcc --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
    ROOT=$(cd "$TOP" && pwd -P)
fi
[ -f "$ROOT/include/cuda.h" ] || { echo "no $ROOT/include/cuda.h: set CUDA_ROOT" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/lib"

# libcuda for the linker: the toolkit's stub, else the driver's libcuda.so.1, else an empty
# stub named libcuda.so.1 (the symbols are then resolved by the driver when pycuda is imported).
STUB=$(ls "$ROOT"/lib64/stubs/libcuda.so "$ROOT"/targets/*/lib/stubs/libcuda.so 2>/dev/null | head -n 1 || true)
DRIVER=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}' || true)
if [ -n "$STUB" ]; then
    ln -s "$STUB" "$WORK/lib/libcuda.so"
    echo "linking against the toolkit's stub $STUB"
elif [ -n "$DRIVER" ]; then
    ln -s "$DRIVER" "$WORK/lib/libcuda.so"
    echo "linking against the driver's $DRIVER"
else
    echo 'void tracejit_libcuda_stub(void) {}' > "$WORK/stub.c"
    cc -shared -fPIC "$WORK/stub.c" -Wl,-soname,libcuda.so.1 -o "$WORK/lib/libcuda.so"
    echo "no libcuda found: linking against an empty stub (soname libcuda.so.1)"
fi

cat > "$WORK/.aksetup-defaults.py" <<EOF
CUDA_ROOT = "$ROOT"
CUDA_INC_DIR = ["$ROOT/include"]
CUDA_ENABLE_CURAND = False
CUDADRV_LIB_DIR = ["$WORK/lib", "$ROOT/lib64", "$ROOT/lib"]
CUDART_LIB_DIR = ["$ROOT/lib64", "$ROOT/lib"]
# The linker drops a library that resolves no symbol (--as-needed, the default of many
# distributions): with the empty stub, libcuda.so.1 would then not be recorded at all.
LDFLAGS = ["-Wl,--no-as-needed", "-L$WORK/lib", "-lcuda"]
EOF
echo "CUDA_ROOT=$ROOT"

"$PY" -m pip install --no-index --find-links "$HERE" setuptools wheel
HOME=$WORK "$PY" -m pip install --no-index --find-links "$HERE" --no-build-isolation \
    --no-cache-dir pycuda
