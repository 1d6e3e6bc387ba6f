import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FdWriter } from "../../../src/user-fs/fd-writer.js";

describe("FdWriter", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fd-writer-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes chunks that queue up behind a write in flight in order, each byte once", async () => {
    // Many small chunks offered at once: all but the first wait, then go in one writev.
    const chunks = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(1 + (i % 97), i % 251));
    const path = join(dir, "out");
    const fd = openSync(path, "w");
    const writer = new FdWriter(fd, 1024 * 1024);
    try {
      await pipeline(Readable.from(chunks), writer);
      await writer.settled();
    } finally {
      closeSync(fd);
    }
    const expected = Buffer.concat(chunks);
    expect(writer.bytesWritten).toBe(expected.length);
    expect(readFileSync(path).equals(expected)).toBe(true);
  });
});
