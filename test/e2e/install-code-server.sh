#!/usr/bin/env bash
# Installs code-server (VS Code's workbench + extension host served to a browser) into .cache/code-server,
# so the extension's tests run inside a real VS Code on machines that cannot download VS Code itself.
# Idempotent: a finished install leaves a marker and the script returns at once the next time.
# code-server's postinstall refuses root and downloads ripgrep, so its steps run here by hand with Debian's
# ripgrep.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=4.100.3 # the last line that runs on Node 20
root="$PWD/.cache/code-server"
marker="$root/installed-$version"
[[ -f "$marker" ]] && { echo "code-server $version already installed in $root"; exit 0; }

if command -v apt-get >/dev/null; then
  missing=()
  for p in libkrb5-dev ripgrep chromium; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

rm -rf "$root"
mkdir -p "$root"
cd "$root"
echo '{"name":"code-server-host","private":true}' > package.json
npm install --no-audit --no-fund --ignore-scripts "code-server@$version"
npm rebuild argon2

vscode="$root/node_modules/code-server/lib/vscode"
(
  cd "$vscode"
  npm install --no-audit --no-fund --omit=dev --ignore-scripts
  mkdir -p node_modules/@vscode/ripgrep/bin
  cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  npm_config_yes=true npm rebuild kerberos node-pty @vscode/spdlog @parcel/watcher native-watchdog @vscode/deviceid
  ln -sfn node_modules node_modules.asar
)
(cd "$vscode/extensions" && npm install --no-audit --no-fund --omit=dev --ignore-scripts)

touch "$marker"
echo "code-server $version installed in $root"
