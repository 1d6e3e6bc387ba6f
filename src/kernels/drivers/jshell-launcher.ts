/**
 * The jshell driver's Java launcher: its source lives in programs/SandboxAgentJShell.java and is
 * compiled once per JDK by jshell.ts.
 */
import { readFileSync } from "node:fs";

export const LAUNCHER_CLASS = "SandboxAgentJShell";

export const LAUNCHER_SOURCE = readFileSync(new URL(`./programs/${LAUNCHER_CLASS}.java`, import.meta.url), "utf8");
