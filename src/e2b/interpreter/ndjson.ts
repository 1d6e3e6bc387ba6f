/**
 * The body of `POST /execute`: one JSON object per line, written as it happens.
 *
 * - Every character from U+007F up leaves as a `\uXXXX` escape, so the body is pure ASCII: the JS
 *   SDK decodes each network chunk on its own, and a UTF-8 character split between two chunks
 *   would reach it as two replacement characters (E2B's own server gets this from json.dumps).
 * - The 200 and headers go out at once: the SDK's request timeout runs until it has them.
 * - After KEEPALIVE_MS without a line, a keepalive line: the SDK ignores it, and writing it is
 *   how a client gone without a word is noticed.
 * - Output waiting for a slow reader is bounded as for the Connect face (services/execution/frames.ts):
 *   beyond it stdout and stderr lines are dropped, and the reader told how much once it catches up.
 */
import type http from "node:http";
import { MAX_PENDING_TEXT } from "../../services/execution/frames.js";

export const KEEPALIVE_MS = 5_000;

export type Line = Readonly<Record<string, unknown>> & { readonly type: string };

/** JSON with every non-ASCII character (and DEL) escaped. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export class NdjsonWriter {
  private timer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private ended = false;

  constructor(
    // Typed as fastify types reply.raw; an HTTP/2 response has the same methods (net/one-port.ts).
    private readonly res: http.ServerResponse,
    headers: http.OutgoingHttpHeaders,
  ) {
    if (res.destroyed) return;
    res.writeHead(200, { ...headers, "content-type": "application/x-ndjson", "cache-control": "no-store" });
    res.flushHeaders();
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.write({ type: "keepalive" }), KEEPALIVE_MS);
  }

  private write(line: Line): void {
    if (this.ended || this.res.destroyed) return;
    this.res.write(`${asciiJson(line)}\n`);
    this.arm();
  }

  send(line: Line): void {
    const output = line.type === "stdout" || line.type === "stderr";
    if (output && this.res.writableLength > MAX_PENDING_TEXT) {
      this.dropped += typeof line.text === "string" ? line.text.length : 0;
      return;
    }
    if (this.res.writableLength <= MAX_PENDING_TEXT) this.sayDropped();
    this.write(line);
  }

  private sayDropped(): void {
    if (this.dropped === 0) return;
    const text = `\n[sandbox-agent] ${this.dropped} characters of output were dropped: the client read more slowly than the code wrote\n`;
    this.dropped = 0;
    this.write({ type: "stderr", text, timestamp: new Date().toISOString() });
  }

  /** Ends the body with E2B's `end_of_execution`, always its last line. */
  end(): void {
    if (this.ended) return;
    this.sayDropped();
    this.write({ type: "end_of_execution" });
    this.ended = true;
    clearTimeout(this.timer);
    if (!this.res.destroyed) this.res.end();
  }

  /** Stops writing without a word (the client has gone). */
  abandon(): void {
    this.ended = true;
    clearTimeout(this.timer);
  }
}
