#!/usr/bin/env bash
# A software GPU for the LiteRT GPU check (pocketbert inspect, export --accelerator gpu): Mesa's
# lavapipe Vulkan driver. LiteRT's GPU accelerator in the ai-edge-litert wheel is WebGPU
# (Dawn over Vulkan), and Dawn needs the dynamic-indexing features Mesa has from 23.x:
# Debian 12's own Mesa 22.3 is refused ("shaderUniform*ArrayDynamicIndexing required"), so on
# bookworm the driver comes from bookworm-backports. Needs root apt-get; skips otherwise
# (the GPU check then reports why it could not run). Safe to run again.
set -euo pipefail
ICD=/usr/share/vulkan/icd.d/lvp_icd.json
[ -e "$ICD" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "install-software-gpu: no root apt-get; the LiteRT GPU check will say it has no Vulkan device" >&2
  exit 0
fi
. /etc/os-release
suite=()
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  suite=(-t bookworm-backports)
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq "${suite[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null; }; then
  echo "install-software-gpu: apt-get failed; the LiteRT GPU check will say it has no Vulkan device" >&2
fi
