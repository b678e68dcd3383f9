#!/usr/bin/env bash
# Install everything pladacodec needs, system packages included:
#   bash scripts/setup.sh && pladacodec demo
#
# 1. Debian packages: the demo's images (dataset-fashion-mnist, openclipart-png, icon themes,
#    fonts, game art) and gcc, which numba.pycc needs to build the ahead-of-time kernels.
# 2. torch 2.14.1 / torchvision 0.29.1 first, then pladacodec (editable) with its extras
#    (torch, demo, bench, dev, zarr: numcodecs and zarr for the `plada` codec),
#    under a constraint that keeps pip from replacing that torch.
# Nothing is downloaded at run time afterwards.  PYTHON=... picks the interpreter.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
TORCH_PIN=(torch==2.14.1 torchvision==0.29.1)
APT_PACKAGES=(gcc dataset-fashion-mnist openclipart-png tango-icon-theme gnome-icon-theme oxygen-icon-theme fonts-noto-core fonts-dejavu-core fonts-dejavu-extra fonts-freefont-ttf fonts-liberation fonts-urw-base35 frozen-bubble-data pingus-data)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup.sh: need root (or sudo) to run: $*" >&2; return 1; fi
}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: installing Debian packages: ${missing[*]}"
    # wait for another apt/dpkg run to release its lock instead of failing
    sudo_if_needed apt-get -o DPkg::Lock::Timeout=600 update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
printf '%s\n' "${TORCH_PIN[@]}" > "$constraints"

"$PYTHON" -m pip install --quiet --root-user-action=ignore "${TORCH_PIN[@]}"
"$PYTHON" -m pip install --quiet --root-user-action=ignore -c "$constraints" -e "$ROOT[torch,demo,bench,dev,zarr]"

# Compile pladacodec's numba kernels ahead of time into an extension module next to them
# (10-20 s once), so that no process compiles, however it is started (README: "First use").
# Without numba.pycc or a C compiler, warm numba's cache instead (a read-only install then
# needs NUMBA_CACHE_DIR).
if "$PYTHON" -c "from pladacodec import _kernels; print(f'setup.sh: kernels compiled ahead of time into {_kernels.build_aot()}')"; then
    :
else
    echo "setup.sh: no ahead-of-time build; warming numba's cache instead" >&2
    "$PYTHON" -c "from pladacodec import _kernels; print(f'setup.sh: {_kernels.compile_all()} kernels compiled and cached')"
fi

"$PYTHON" - <<'PY'
import torch, torchvision, timm
print(f"setup.sh: ready (torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__})")
PY
