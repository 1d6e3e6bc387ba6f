import type { Suite } from "../lib.js";
import { filesSuite } from "./files.js";

/** Every benchmark suite, in the order they run. */
export const suites: readonly Suite[] = [filesSuite];
