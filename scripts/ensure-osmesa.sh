#!/usr/bin/env bash
# Headless MuJoCo rendering needs OSMesa (no GPU) or EGL (GPU). Install libosmesa6 when we can.
set -u
if ldconfig -p 2>/dev/null | grep -q libOSMesa; then exit 0; fi
if command -v nvidia-smi >/dev/null 2>&1; then exit 0; fi  # EGL path on GPU machines
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing libosmesa6 for headless rendering (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libosmesa6 >/dev/null \
    || echo "warning: apt-get install libosmesa6 failed; rendering will be unavailable" >&2
else
  echo "warning: libOSMesa not found; run 'sudo apt-get install libosmesa6' for headless rendering" >&2
fi
exit 0
