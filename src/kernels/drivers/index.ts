/**
 * The kernels the agent runs itself where no Jupyter kernel is installed: bash and Java (jshell).
 * Both follow the Kernel contract of ../kernel.ts; `available()` says whether bash or a JDK is there.
 */
import { createBashDriverFactory } from "./bash.js";
import type { BuiltinDriverFactory } from "./driver-kernel.js";
import { createJShellDriverFactory } from "./jshell.js";

export { createBashDriverFactory, type BashDriverConfig } from "./bash.js";
export type { BuiltinDriverFactory } from "./driver-kernel.js";
export { createJShellDriverFactory, type JShellDriverConfig } from "./jshell.js";

export const bashDriverFactory: BuiltinDriverFactory = createBashDriverFactory();
export const jshellDriverFactory: BuiltinDriverFactory = createJShellDriverFactory();
