import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, DEFAULTS, helpText, loadConfig, OPTIONS } from "../../src/config.js";

const dir = mkdtempSync(join(tmpdir(), "agent-config-"));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe("configuration", () => {
  it("has working defaults with no configuration", () => {
    const config = loadConfig([], {});
    expect(config.port).toBe(49983);
    expect(config.host).toBe("0.0.0.0");
    expect(config.defaultUser).toBe("root");
    expect(config.accessToken).toBeUndefined();
    expect(config.uploadMaxBytes).toBe(DEFAULTS.uploadMaxBytes);
  });

  it("takes flags over environment over config file", () => {
    const cfg = file("precedence.json", JSON.stringify({ port: 1111, host: "10.0.0.1", defaultUser: "fileuser" }));
    const env = { SANDBOX_AGENT_CONFIG: cfg, SANDBOX_AGENT_PORT: "2222", SANDBOX_AGENT_DEFAULT_USER: "envuser" };
    const config = loadConfig(["--port", "3333"], env);
    expect(config.port).toBe(3333);
    expect(config.defaultUser).toBe("envuser");
    expect(config.host).toBe("10.0.0.1");
    expect(loadConfig(["--port=4444"], env).port).toBe(4444);
  });

  it("reads the token from a file when no token is given", () => {
    const tokenFile = file("token", "  file-token\n");
    expect(loadConfig(["--access-token-file", tokenFile], {}).accessToken).toBe("file-token");
    expect(loadConfig(["--access-token-file", tokenFile], { SANDBOX_AGENT_ACCESS_TOKEN: "env-token" }).accessToken).toBe("env-token");
  });

  it.each([
    [["--port", "70000"], /--port must be between/],
    [["--port", "12ab"], /--port must be a whole number/],
    [["--port"], /--port needs a value/],
    [["--bogus", "1"], /unknown option --bogus/],
    [["--log-level", "loud"], /--log-level must be one of/],
    [["--tls-cert", "/nonexistent.pem"], /go together/],
    [["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], /cannot read/],
    [["--access-token-file", "/nonexistent-token"], /cannot read/],
    [["--watcher-idle-ms", "10"], /between 1000/],
  ])("refuses %j", (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it("auth modes: none only on loopback, no token with init or none", () => {
    expect(loadConfig(["--auth", "none", "--host", "127.0.0.1"], {}).auth).toBe("none");
    expect(loadConfig(["--auth", "none", "--host", "::1"], {}).auth).toBe("none");
    expect(() => loadConfig(["--auth", "none"], {})).toThrow(/loopback/);
    expect(() => loadConfig(["--auth", "none", "--host", "10.0.0.5"], {})).toThrow(ConfigError);
    expect(loadConfig(["--auth", "init"], {}).auth).toBe("init");
    expect(() => loadConfig(["--auth", "init", "--access-token", "t"], {})).toThrow(/takes no access token/);
    expect(() => loadConfig(["--auth", "open"], {})).toThrow(/token, init, none/);
    expect(() => loadConfig(["--default-workdir", "relative"], {})).toThrow(/absolute/);
  });

  it("refuses a bad config file", () => {
    expect(() => loadConfig(["--config", file("bad.json", "{")], {})).toThrow(/cannot read config file/);
    expect(() => loadConfig(["--config", file("arr.json", "[]")], {})).toThrow(/JSON object/);
    expect(() => loadConfig(["--config", file("unknown.json", '{"nope":1}')], {})).toThrow(/unknown option "nope"/);
  });

  it("lists every option in --help", () => {
    const help = helpText();
    for (const spec of Object.values(OPTIONS)) {
      expect(help).toContain(spec.flag);
      expect(help).toContain(spec.env);
    }
  });
});
