#!/usr/bin/env bash
# Makes this machine (an image being built, or a VM) a template of one platform, by writing the
# agent's configuration file, which the image names in SANDBOX_AGENT_CONFIG:
#   scalebox  the defaults (root, the token from SANDBOX_AGENT_ACCESS_TOKEN or generated)
#   e2b       E2B's conventions: user `user` with home and working directory /home/user, and the
#             access token set by the platform's POST /init (--auth init), as envd takes it
# Usage: bash scripts/template.sh scalebox|e2b   (as root; SANDBOX_AGENT_TEMPLATE_DIR moves the file)
set -euo pipefail

dir=${SANDBOX_AGENT_TEMPLATE_DIR:-/etc/sandbox-agent}
case "${1:-scalebox}" in
  scalebox)
    config='{}'
    ;;
  e2b)
    id user >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --user-group user
    install -d -o user -g user -m 0755 /home/user
    config='{"auth": "init", "defaultUser": "user", "defaultWorkdir": "/home/user"}'
    ;;
  *)
    echo "template.sh: unknown template '$1' (scalebox or e2b)" >&2
    exit 2
    ;;
esac
install -d -m 0755 "$dir"
printf '%s\n' "$config" >"$dir/template.json"
echo "template.sh: $dir/template.json is the ${1:-scalebox} template's configuration"
