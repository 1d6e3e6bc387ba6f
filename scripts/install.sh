#!/usr/bin/env bash
# Installs sandbox-agent and, by profile, the Jupyter kernels its code execution uses.
#
#   scripts/install.sh [agent|python|full] [--production] [--test-tools]
#
#   agent   the agent itself: npm ci and npm run build in this repository (default)
#   python  agent + Python kernel (ipykernel, with numpy, pandas and matplotlib), from Debian,
#           and the /workspace directory the platform's templates have
#   full    python + R (IRkernel), a JDK with jshell (the built-in Java driver), Node.js and
#           TypeScript kernels (tslab: kernelspecs jslab and tslab) and Deno (kernelspec deno)
#
#   --production  drop dev dependencies once the agent is built (for images)
#   --test-tools  also what the tests and benchmarks need beyond the kernels: Debian's chromium for
#                 the browser test, and Debian's Jupyter Server for the bench's peer row
#                 (CI uses this; images do not)
#
# Debian packages come from apt, everything else from npm: nothing is downloaded any other way.
# Safe to run again: whatever is already installed is skipped. Run as root on Debian (bookworm);
# the agent profile alone needs no root when util-linux, python3, make, g++ and CA certificates are
# there. Used by .ci/run and images.
#
# Environment: SANDBOX_AGENT_KERNELS_PREFIX (default /opt/sandbox-agent/kernels) is where the npm
# kernels go; SANDBOX_AGENT_KERNELSPECS (default /usr/local/share/jupyter/kernels) is where their
# kernelspecs are registered.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

profile=agent
production=0
test_tools=0
for arg in "$@"; do
  case $arg in
    agent | python | full) profile=$arg ;;
    --production) production=1 ;;
    --test-tools) test_tools=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kernels_prefix=${SANDBOX_AGENT_KERNELS_PREFIX:-/opt/sandbox-agent/kernels}
kernelspecs=${SANDBOX_AGENT_KERNELSPECS:-/usr/local/share/jupyter/kernels}

# Pinned so that every machine and image runs the same kernels.
TSLAB_VERSION=1.0.22
TYPES_NODE_VERSION=20.19.43
DENO_VERSION=2.9.6

done_list=()
skipped_list=()
did() { done_list+=("$1"); echo "    done: $1"; }
skipped() { skipped_list+=("$1"); echo "    already there: $1"; }
step() { echo "==> $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
trap 'echo "install.sh: failed (line $LINENO, profile $profile) after ${SECONDS}s" >&2' ERR

is_root() { [[ $(id -u) == 0 ]]; }

# --- Debian packages -----------------------------------------------------------------------------

apt_updated=0
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

apt_install() {
  local missing=() pkg
  for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
  if ((${#missing[@]} == 0)); then
    skipped "Debian packages: $*"
    return
  fi
  is_root || die "these Debian packages are missing and only root can install them: ${missing[*]} (run with sudo)"
  command -v apt-get >/dev/null || die "apt-get not found: this script installs on Debian (bookworm)"
  if ((apt_updated == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  did "Debian packages: ${missing[*]}"
}

# --- the agent -----------------------------------------------------------------------------------

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

install_agent() {
  step "agent (npm ci, npm run build) in $repo"
  command -v node >/dev/null || die "Node.js 20 or later is needed (node not found)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "Node.js 20 or later is needed (found $(node --version))"
  # setpriv (util-linux) starts processes and kernels as the caller's user, groups included.
  command -v setpriv >/dev/null || apt_install util-linux
  # node-pty has no Linux prebuilds: npm ci compiles it with node-gyp, and the build compiles the
  # agent's own addon (native/fs-creds) the same way. Slim images lack all three.
  command -v python3 >/dev/null && command -v make >/dev/null && command -v g++ >/dev/null ||
    apt_install python3 make g++
  # npm ci over TLS needs the CA bundle, which slim images lack too.
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates

  cd "$repo"
  local mode=dev
  ((production == 0)) || mode=production
  local stamp="node_modules/.sandbox-agent-install" want need_install=1 need_build=1
  want="$(hash_of package.json package-lock.json) $mode"
  [[ -f $stamp && $(<"$stamp") == "$want" ]] && need_install=0
  local build_stamp=dist/.sandbox-agent-build
  [[ -f $build_stamp && -f dist/main.js ]] &&
    [[ -z $(find src native package.json tsconfig.json tsconfig.build.json -newer "$build_stamp" -print -quit) ]] &&
    need_build=0
  # A production install has no compiler left: building again needs the dev dependencies back.
  ((production == 1 && need_build == 1)) && need_install=1

  if ((need_install == 1)); then
    npm ci --no-audit --no-fund
    did "npm ci"
  else
    skipped "node_modules ($mode)"
  fi
  if ((need_build == 1)); then
    npm run build
    touch "$build_stamp"
    did "npm run build"
  else
    skipped "build (dist/ is newer than src/)"
  fi
  if ((production == 1 && need_install == 1)); then
    npm prune --omit=dev --no-audit --no-fund
    did "dev dependencies removed"
  fi
  echo "$want" >"$stamp"
  cd - >/dev/null
}

# --- kernels -------------------------------------------------------------------------------------

install_python() {
  step "Python kernel (ipykernel) with numpy, pandas, matplotlib"
  apt_install python3-ipykernel python3-jupyter-client jupyter-client python3-matplotlib python3-pandas python3-numpy
}

install_r() {
  step "R kernel (IRkernel)"
  apt_install r-base-core r-cran-irkernel
}

install_java() {
  step "JDK with jshell (the agent's built-in Java driver)"
  if command -v jshell >/dev/null && command -v javac >/dev/null; then
    skipped "jshell ($(command -v jshell))"
  else
    apt_install default-jdk-headless
  fi
}

# Writes a file only when its content changes, so a second run touches nothing.
write_if_changed() {
  local path=$1 content=$2
  if [[ -f $path && $(<"$path") == "$content" ]]; then return 1; fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path"
}

install_npm_kernels() {
  step "Node.js and TypeScript kernels (tslab $TSLAB_VERSION) and Deno $DENO_VERSION into $kernels_prefix"
  is_root || [[ -w $(dirname "$kernels_prefix") || -w $kernels_prefix ]] || die "cannot write $kernels_prefix (run with sudo)"
  # The kernels' own package: pinned versions; deno's postinstall links its binary in place of
  # the node shim, zeromq ships prebuilt binaries and needs no install script.
  local manifest
  manifest=$(
    cat <<EOF
{
  "name": "sandbox-agent-kernels",
  "private": true,
  "description": "Jupyter kernels installed by sandbox-agent's scripts/install.sh",
  "dependencies": {
    "@types/node": "$TYPES_NODE_VERSION",
    "deno": "$DENO_VERSION",
    "tslab": "$TSLAB_VERSION"
  },
  "allowScripts": { "deno": true, "zeromq": false }
}
EOF
  )
  write_if_changed "$kernels_prefix/package.json" "$manifest" || true
  local stamp="$kernels_prefix/node_modules/.sandbox-agent-install" want
  want=$(hash_of "$kernels_prefix/package.json")
  if [[ -f $stamp && $(<"$stamp") == "$want" && -x $kernels_prefix/node_modules/.bin/deno ]]; then
    skipped "npm kernels (tslab, deno, @types/node)"
  else
    npm install --prefix "$kernels_prefix" --no-audit --no-fund --omit=dev
    echo "$want" >"$stamp"
    did "npm kernels (tslab $TSLAB_VERSION, deno $DENO_VERSION, @types/node $TYPES_NODE_VERSION)"
  fi
  # Kernels run as any user.
  chmod -R a+rX "$kernels_prefix"
  "$kernels_prefix/node_modules/.bin/deno" --version >/dev/null || die "the deno binary in $kernels_prefix does not run"
}

register_tslab() {
  step "kernelspecs jslab and tslab in $kernelspecs"
  local node tslab_main
  node=$(command -v node)
  tslab_main=$(cd "$kernels_prefix/node_modules/tslab" && node -p 'require("path").resolve(require("./package.json").bin.tslab)')
  local name display extra lang spec
  for name in jslab tslab; do
    if [[ $name == jslab ]]; then display=JavaScript extra=', "--js"' lang=javascript; else display=TypeScript extra='' lang=typescript; fi
    # Absolute node (kernels start with a minimal PATH) and NODE_PATH so that tslab's compiler and
    # require() find @types/node and the kernels' packages from any working directory.
    spec=$(
      cat <<EOF
{
  "argv": ["$node", "$tslab_main", "kernel", "--config-path", "{connection_file}"$extra],
  "display_name": "$display",
  "language": "$lang",
  "env": { "NODE_PATH": "$kernels_prefix/node_modules" }
}
EOF
    )
    if write_if_changed "$kernelspecs/$name/kernel.json" "$spec"; then did "kernelspec $name"; else skipped "kernelspec $name"; fi
  done
}

register_deno() {
  step "kernelspec deno in $kernelspecs"
  # Deno's kernel listens only on TCP: the agent runs it in a network namespace of its own, whose
  # loopback it brings up with ip (src/kernels/jupyter/netns.ts). unshare comes with util-linux.
  [[ -x /usr/sbin/ip || -x /sbin/ip || -x /usr/bin/ip || -x /bin/ip ]] || apt_install iproute2
  local deno="$kernels_prefix/node_modules/.bin/deno" home
  deno=$(readlink -f "$deno")
  if [[ -f $kernelspecs/deno/kernel.json ]] && grep -qF "\"$deno\"" "$kernelspecs/deno/kernel.json" &&
    grep -qF NO_COLOR "$kernelspecs/deno/kernel.json"; then
    skipped "kernelspec deno"
    return
  fi
  # `deno jupyter --install` writes to the per-user Jupyter directory: let it write into a scratch
  # home, then register what it wrote system-wide.
  home=$(mktemp -d)
  env -u XDG_DATA_HOME HOME="$home" "$deno" jupyter --install --force >/dev/null 2>&1 ||
    { rm -rf "$home"; die "deno jupyter --install failed"; }
  rm -rf "$kernelspecs/deno"
  mkdir -p "$kernelspecs"
  cp -r "$home/.local/share/jupyter/kernels/deno" "$kernelspecs/deno"
  rm -rf "$home"
  grep -qF "\"$deno\"" "$kernelspecs/deno/kernel.json" || die "unexpected deno kernelspec: $(cat "$kernelspecs/deno/kernel.json")"
  # Without NO_COLOR, Deno colours its text/plain results with ANSI escapes.
  node -e '
    const fs = require("fs");
    const file = process.argv[1];
    const spec = JSON.parse(fs.readFileSync(file, "utf8"));
    spec.env = { ...(spec.env || {}), NO_COLOR: "1" };
    fs.writeFileSync(file, JSON.stringify(spec, null, 2) + "\n");
  ' "$kernelspecs/deno/kernel.json"
  chmod -R a+rX "$kernelspecs/deno"
  did "kernelspec deno"
}

# --- test tools ----------------------------------------------------------------------------------

install_test_tools() {
  step "test tools (Debian's chromium for the browser test; playwright-core drives it from npm)"
  if [[ -x /usr/bin/chromium ]]; then
    skipped "chromium ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
  else
    apt_install chromium
  fi
  # The peer row of `npm run bench`: the same kernel through Jupyter Server, as E2B reaches it.
  if /usr/bin/python3 -c "import jupyter_server" 2>/dev/null; then
    skipped "python3-jupyter-server"
  else
    apt_install python3-jupyter-server
  fi
}

# The platform's templates have /workspace, and the SDK's session API works there by default.
# Sticky and writable by everyone, as /tmp: the default user (and any other) works in it, and
# nobody removes or replaces another user's files there.
make_workspace() {
  if [[ -d /workspace && $(stat -c %a /workspace) == 1777 ]]; then
    skipped "/workspace"
    return
  fi
  is_root || die "/workspace is missing and only root can make it (run with sudo)"
  mkdir -p /workspace
  chmod 1777 /workspace
  did "/workspace (mode 1777)"
}

# --- main ----------------------------------------------------------------------------------------

echo "sandbox-agent install: profile $profile$( ((production == 0)) || echo ', production')$( ((test_tools == 0)) || echo ', test tools')"
install_agent
if [[ $profile == python || $profile == full ]]; then
  install_python
  make_workspace
fi
if [[ $profile == full ]]; then
  install_r
  install_java
  install_npm_kernels
  register_tslab
  register_deno
fi
if ((test_tools == 1)); then
  install_test_tools
fi

echo
echo "sandbox-agent install: profile $profile finished in ${SECONDS}s"
((${#done_list[@]} == 0)) || printf '  installed: %s\n' "${done_list[@]}"
((${#skipped_list[@]} == 0)) || printf '  already there: %s\n' "${skipped_list[@]}"
if [[ $profile != agent ]] && command -v jupyter >/dev/null; then
  echo "  kernelspecs:"
  jupyter kernelspec list 2>/dev/null | tail -n +2 | sed 's/^/  /'
fi
