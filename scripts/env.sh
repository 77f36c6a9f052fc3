# Source this to build or run the `tch` (libtorch) configuration: `. scripts/env.sh`.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LIBTORCH="${LIBTORCH:-$root/.deps/libtorch}"
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
