/**
 * The deploy recipes say what operators rely on: the systemd unit restarts the agent, protects it
 * from the OOM killer and lets it open many files; the image runs it under tini with a health
 * check. No Docker engine runs here, so the Dockerfile is checked by reading it (and built for real,
 * minus Docker, by production.test.ts); the unit is also checked by systemd-analyze when present.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../src/config.js";
import { lookupUser } from "../../../src/users.js";
import { dockerInstructions, imageCommand, lastInstruction, parseUnit, UNIT } from "../../helpers/recipes.js";

const run = promisify(execFile);

/** The one value of a key, failing when it is missing or repeated. */
function single(unit: ReturnType<typeof parseUnit>, section: string, key: string): string {
  const values = unit.get(section)?.get(key);
  expect(values, `[${section}] ${key}`).toHaveLength(1);
  return values![0]!;
}

describe("systemd unit", () => {
  it("restarts the agent, protects it from the OOM killer, starts it as the image does, and verifies", async () => {
    const text = await readFile(UNIT, "utf8");
    const unit = parseUnit(text);
    expect(single(unit, "Service", "Type")).toBe("simple");
    expect(single(unit, "Service", "Restart")).toBe("on-failure");
    // User code runs at +500 (set by the agent): the agent must score far below it.
    expect(Number(single(unit, "Service", "OOMScoreAdjust"))).toBe(-900);
    expect(single(unit, "Service", "LimitNOFILE")).toBe("1048576");
    expect(single(unit, "Service", "KillMode")).toBe("mixed");
    // "-": a missing file is fine (the agent then generates a token and prints it).
    expect(single(unit, "Service", "EnvironmentFile")).toBe("-/etc/sandbox-agent/env");
    expect(single(unit, "Install", "WantedBy")).toBe("multi-user.target");

    const execStart = single(unit, "Service", "ExecStart").split(/\s+/);
    expect(execStart[0]).toBe("/usr/bin/node");
    // Same script and flags as the image's entry point, so both start the same agent.
    const image = imageCommand();
    expect(execStart.slice(1)).toEqual(image.agentArgv.slice(1));
    expect(single(unit, "Service", "WorkingDirectory")).toBe(image.workdir);

    // The checks above run everywhere; this stricter one needs systemd's own parser.
    const analyzer = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((path) => existsSync(path));
    if (analyzer === undefined) return;
    // verify insists that ExecStart's binary exists: point it at this machine's node, wherever
    // that is; the unit's own path is asserted above.
    const dir = await mkdtemp(join(tmpdir(), "unit-verify-"));
    try {
      const copy = join(dir, "sandbox-agent.service");
      await writeFile(copy, text.replace("ExecStart=/usr/bin/node ", `ExecStart=${process.execPath} `));
      const result = await run(analyzer, ["verify", copy]).then(
        ({ stderr }) => ({ code: 0, stderr }),
        (err: { code?: number; stderr?: string }) => ({ code: err.code ?? 1, stderr: err.stderr ?? "" }),
      );
      // verify exits 0 on unknown keys and bad values and only warns about them: the warnings
      // about this file count as failures too.
      const aboutUnit = result.stderr.split("\n").filter((line) => line.includes("sandbox-agent.service"));
      expect({ code: result.code, warnings: aboutUnit }).toEqual({ code: 0, warnings: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("Dockerfile", () => {
  it("builds on Node 24 bookworm through the install script and runs the agent under tini", () => {
    const instructions = dockerInstructions();
    expect(lastInstruction(instructions, "FROM")).toBe("node:24-bookworm-slim");
    const runs = instructions.filter((i) => i.name === "RUN").map((i) => i.args);
    expect(runs.some((args) => /\bbash scripts\/install\.sh full --production\b/.test(args))).toBe(true);

    const image = imageCommand(instructions);
    expect(image.agentArgv.slice(0, 2)).toEqual(["node", `${image.workdir}/dist/main.js`]);
    const flags = image.agentArgv.slice(2);
    const port = flags[flags.indexOf("--port") + 1];
    expect(flags).toContain("--port");
    expect(lastInstruction(instructions, "EXPOSE").split(" ")).toContain(port);
    const healthcheck = lastInstruction(instructions, "HEALTHCHECK");
    expect(healthcheck).toContain(`127.0.0.1:${port}/health`);
    // Slim images have no curl: the check must use what the image has.
    expect(healthcheck).toMatch(/CMD \["node"/);
    // Root (or no USER at all): the agent starts processes as any user.
    const users = instructions.filter((i) => i.name === "USER").map((i) => i.args);
    expect(users.every((user) => user === "root" || user === "0")).toBe(true);
  });
});

describe("templates (scripts/template.sh, the image's TEMPLATE build argument)", () => {
  it("the Dockerfile writes the template's configuration and points the agent at it", () => {
    const instructions = dockerInstructions();
    const runs = instructions.filter((i) => i.name === "RUN").map((i) => i.args);
    expect(runs).toContain('bash scripts/template.sh "$TEMPLATE"');
    expect(instructions.some((i) => i.name === "ARG" && i.args === "TEMPLATE=scalebox")).toBe(true);
    expect(lastInstruction(instructions, "ENV")).toBe("SANDBOX_AGENT_CONFIG=/etc/sandbox-agent/template.json");
  });

  it("e2b: user `user` in /home/user, the token from POST /init; scalebox: the defaults", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agent-template-"));
    try {
      const env = { ...process.env, SANDBOX_AGENT_TEMPLATE_DIR: dir };
      await run("bash", ["scripts/template.sh", "e2b"], { env });
      const e2b = loadConfig([], { SANDBOX_AGENT_CONFIG: join(dir, "template.json") });
      expect([e2b.auth, e2b.defaultUser, e2b.defaultWorkdir, e2b.accessToken]).toEqual(["init", "user", "/home/user", undefined]);
      expect(lookupUser("user")?.home).toBe("/home/user");
      await run("bash", ["scripts/template.sh", "scalebox"], { env });
      const scalebox = loadConfig([], { SANDBOX_AGENT_CONFIG: join(dir, "template.json") });
      expect([scalebox.auth, scalebox.defaultUser]).toEqual(["token", "root"]);
      await expect(run("bash", ["scripts/template.sh", "other"], { env })).rejects.toThrow(/unknown template/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
