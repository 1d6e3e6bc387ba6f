/**
 * Reads the deploy recipes (the Dockerfile and the systemd unit) the way the tests need them, so
 * that the tests start the agent exactly as the recipes do instead of from a copy that can drift.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const DOCKERFILE = `${REPO}Dockerfile`;
export const UNIT = `${REPO}deploy/sandbox-agent.service`;

export interface Instruction {
  readonly name: string;
  readonly args: string;
}

/** Instructions in order, continuation lines joined and comments dropped. */
export function dockerInstructions(text = readFileSync(DOCKERFILE, "utf8")): Instruction[] {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = "";
    const space = whole.search(/\s/);
    instructions.push({ name: whole.slice(0, space).toUpperCase(), args: whole.slice(space + 1).trim() });
  }
  return instructions;
}

/** The argument of the one instruction of that name (the last one, as Docker uses). */
export function lastInstruction(instructions: readonly Instruction[], name: string): string {
  const found = instructions.filter((i) => i.name === name).at(-1);
  if (found === undefined) throw new Error(`the Dockerfile has no ${name}`);
  return found.args;
}

/** An exec-form (JSON array) ENTRYPOINT or CMD. */
export function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((item): item is string => typeof item === "string")) {
    throw new Error(`not an exec-form instruction: ${args}`);
  }
  return parsed;
}

export interface ImageCommand {
  /** Where the image's WORKDIR is (the agent's directory). */
  readonly workdir: string;
  /** The agent's argv after PID 1's own: ["node", "<script>", ...flags]. */
  readonly agentArgv: string[];
}

/** How the image starts the agent: ENTRYPOINT after `tini --`, then CMD. */
export function imageCommand(instructions: readonly Instruction[] = dockerInstructions()): ImageCommand {
  const entrypoint = execForm(lastInstruction(instructions, "ENTRYPOINT"));
  const cmd = execForm(lastInstruction(instructions, "CMD"));
  const separator = entrypoint.indexOf("--");
  if (!entrypoint[0]?.endsWith("tini") || separator < 0) throw new Error(`the entry point is not tini: ${entrypoint.join(" ")}`);
  return { workdir: lastInstruction(instructions, "WORKDIR"), agentArgv: [...entrypoint.slice(separator + 1), ...cmd] };
}

export interface Copy {
  readonly sources: string[];
  readonly destination: string;
}

/** The COPY instructions (build-context sources only). */
export function dockerCopies(instructions: readonly Instruction[] = dockerInstructions()): Copy[] {
  return instructions
    .filter((i) => i.name === "COPY")
    .map((i) => {
      const parts = i.args.split(/\s+/);
      if (parts.some((part) => part.startsWith("--"))) throw new Error(`COPY options are not supported here: ${i.args}`);
      return { sources: parts.slice(0, -1), destination: parts.at(-1)! };
    });
}

/** A systemd unit file: section → key → values in order (keys may repeat). */
export type Unit = Map<string, Map<string, string[]>>;

export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = unit.get(header[1]!) ?? new Map<string, string[]>();
      unit.set(header[1]!, section);
      return;
    }
    const eq = line.indexOf("=");
    if (section === undefined || eq <= 0) throw new Error(`line ${index + 1} is not "key=value" inside a section: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  });
  return unit;
}
