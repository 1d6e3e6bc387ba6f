import type { Suite } from "../lib.js";
import { executionSuite } from "./execution.js";
import { filesSuite } from "./files.js";
import { memorySuite } from "./memory.js";
import { peerSuite } from "./peer.js";
import { processSuite } from "./process.js";
import { watchSuite } from "./watch.js";

/** Every benchmark suite, in the order they run. */
export const suites: readonly Suite[] = [filesSuite, processSuite, watchSuite, executionSuite, peerSuite, memorySuite];
