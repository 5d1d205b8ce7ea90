#!/usr/bin/env bash
# Runs the DeRelayL dev IPFS node (js-ipfs, which speaks the Kubo RPC API) in the foreground.
#
#   start-ipfs.sh REPO_DIR [API_PORT] [GATEWAY_PORT]
#
# REPO_DIR is created and initialised on first use. Every start rewrites the node's addresses
# and the offline settings (no swarm, bootstrap, delegates, MDNS or webRTCStar; no preload), so
# the node never tries to reach the network. The RPC API listens on 127.0.0.1:API_PORT (default
# 5001); the HTTP gateway is off unless GATEWAY_PORT is given. Stop it with SIGINT or SIGTERM.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 REPO_DIR [API_PORT] [GATEWAY_PORT]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jsipfs="$here/node_modules/.bin/jsipfs"
if [[ ! -x "$jsipfs" ]]; then
  echo "js-ipfs is not installed: run \`npm ci\` in $here" >&2
  exit 1
fi
mkdir -p "$1"
repo="$(cd "$1" && pwd)"
api_port="${2:-5001}"
gateway_port="${3:-}"
for p in "$api_port" $gateway_port; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then
    echo "not a TCP port: $p" >&2
    exit 2
  fi
done

export IPFS_PATH="$repo"
export NODE_OPTIONS="--require $here/ipfs-polyfill.js ${NODE_OPTIONS:-}"

if [[ ! -f "$repo/config" ]]; then
  # js-ipfs merges this over its default config at init; the same keys are re-applied below.
  init_cfg="$(mktemp)"
  trap 'rm -f "$init_cfg"' EXIT
  echo '{"Addresses":{"Swarm":[],"Delegates":[],"API":"","Gateway":"","RPC":""},"Bootstrap":[],
    "Discovery":{"MDNS":{"Enabled":false},"webRTCStar":{"Enabled":false}}}' >"$init_cfg"
  "$jsipfs" init --emptyRepo --defaultConfig "$init_cfg" >/dev/null
  rm -f "$init_cfg"
  trap - EXIT
fi

gateway_addr=""
if [[ -n "$gateway_port" ]]; then
  gateway_addr="/ip4/127.0.0.1/tcp/$gateway_port"
fi
node - "$repo/config" "/ip4/127.0.0.1/tcp/$api_port" "$gateway_addr" <<'JS'
const fs = require('fs');
const [file, api, gateway] = process.argv.slice(2);
const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
cfg.Addresses = { ...cfg.Addresses, Swarm: [], Announce: [], NoAnnounce: [], Delegates: [],
  API: api, Gateway: gateway, RPC: '' };
cfg.Bootstrap = [];
cfg.Discovery = { ...cfg.Discovery, MDNS: { Enabled: false, Interval: 10 },
  webRTCStar: { Enabled: false } };
fs.writeFileSync(`${file}.tmp`, JSON.stringify(cfg, null, 2));
fs.renameSync(`${file}.tmp`, file);
JS
# A node killed with SIGKILL leaves repo.lock and its `api` file behind. A running node touches
# the lock every 10 s; js-ipfs takes over a lock untouched for 20 s. So wait while the lock only
# ages, and give up if it is touched: then another node is using this repo.
lock_age() {
  local mtime
  mtime="$(stat -c %Y "$repo/repo.lock" 2>/dev/null)" || { echo 999; return; }
  echo $(($(date +%s) - mtime))
}
previous=-1
while age="$(lock_age)" && ((age <= 20)); do
  if ((age < previous)); then
    echo "$repo is in use by a running IPFS node: stop that node first" >&2
    exit 1
  fi
  if ((previous < 0)); then
    echo "waiting up to 20 s for the lock left by a node that was killed: $repo/repo.lock" >&2
  fi
  previous="$age"
  sleep 1
done
rm -f "$repo/api"
exec "$jsipfs" daemon --offline --enable-preload=false
