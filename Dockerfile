# Template image: Debian bookworm, Node.js 24 (the current LTS line), sandbox-agent built for production and every
# kernel, all installed by scripts/install.sh, the one script CI runs too (see README, "Images and
# services"). Keep this file thin: what it installs that CI does not run is what CI cannot check.
FROM node:24-bookworm-slim

# tini is PID 1: it reaps orphaned processes (user code double-forks) and forwards SIGTERM to the
# agent, which then ends its own children.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/sandbox-agent/app
# Only what the build and the install script read; test/system/deploy/production.test.ts copies the same
# paths to build the same layout.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts/ ./scripts/
COPY src/ ./src/
COPY native/ ./native/

# npm_config_nodedir: node-gyp builds node-pty against the headers this image already ships
# instead of downloading them (as on CI's machines, which reach no download site).
RUN npm_config_nodedir=/usr/local bash scripts/install.sh full --production \
 && npm cache clean --force \
 && rm -rf /var/lib/apt/lists/* /root/.cache

# `--build-arg TEMPLATE=e2b` makes the image an E2B template (README, "E2B drop-in"): user `user`
# in /home/user, the token from the platform's POST /init. The agent reads the file through
# SANDBOX_AGENT_CONFIG; flags and other variables still override it.
ARG TEMPLATE=scalebox
RUN bash scripts/template.sh "$TEMPLATE"
ENV SANDBOX_AGENT_CONFIG=/etc/sandbox-agent/template.json

# Root by default: the agent starts processes and kernels as any user of the sandbox.
USER root
# The agent's port, and the code interpreter's second listener (E2B's SDK addresses it by port).
EXPOSE 49983 49999
# No curl in slim images; node is there. The port follows CMD below.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:49983/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/sandbox-agent/app/dist/main.js"]
CMD ["--host", "0.0.0.0", "--port", "49983"]
