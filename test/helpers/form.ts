/**
 * Test helpers for the file routes: multipart bodies built byte by byte (so part order, names and
 * malformations are exactly what a test says), raw HTTP/1.1 requests that can stop midway, and
 * small file-system probes.
 */
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile, readlink } from "node:fs/promises";
import net from "node:net";
import type { Config } from "../../src/config.js";
import { AUTH, startTestAgent, type TestAgent } from "./agent.js";

/** An agent for the file-route tests. */
export function startFileAgent(overrides: Partial<Config> = {}): Promise<TestAgent> {
  return startTestAgent(overrides);
}

export interface Part {
  readonly name: string;
  readonly filename?: string;
  readonly content: string | Buffer;
  readonly contentType?: string;
}

export function boundary(): string {
  return `----agent-test-${randomBytes(8).toString("hex")}`;
}

/** A multipart/form-data body; file names go in raw UTF-8 as browsers and undici send them. */
export function multipart(parts: readonly Part[], b: string): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let disposition = `form-data; name="${part.name}"`;
    if (part.filename !== undefined) disposition += `; filename="${part.filename}"`;
    let head = `--${b}\r\nContent-Disposition: ${disposition}\r\n`;
    if (part.filename !== undefined || part.contentType !== undefined) {
      head += `Content-Type: ${part.contentType ?? "application/octet-stream"}\r\n`;
    }
    chunks.push(Buffer.from(`${head}\r\n`, "utf8"), Buffer.from(part.content), Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${b}--\r\n`));
  return Buffer.concat(chunks);
}

export interface Posted {
  readonly status: number;
  readonly json: unknown;
  readonly text: string;
  readonly headers: Headers;
}

/** POSTs a hand-built multipart body with fetch. */
export async function postForm(url: string, parts: readonly Part[], headers: Record<string, string> = AUTH): Promise<Posted> {
  const b = boundary();
  const res = await fetch(url, {
    method: "POST",
    headers: { ...headers, "content-type": `multipart/form-data; boundary=${b}` },
    body: multipart(parts, b),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/**
 * A raw HTTP/1.1 request over a plain socket: the test decides when the rest of the body goes, or
 * whether it goes at all.
 */
export class RawRequest {
  private readonly socket: net.Socket;
  private text = "";
  private readonly ended: Promise<string>;

  constructor(port: number, head: string) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.setEncoding("latin1");
    this.socket.on("data", (chunk: string) => {
      this.text += chunk;
    });
    this.ended = new Promise((resolve) => {
      this.socket.once("close", () => resolve(this.text));
      this.socket.on("error", () => undefined);
    });
    this.socket.write(head);
  }

  write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  /** Everything the server sent until it closed the connection (the request says Connection: close). */
  response(): Promise<string> {
    return this.ended;
  }

  /** Drops the connection without finishing the request. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** Headers of a multipart upload whose body is `length` bytes, for a RawRequest. */
export function uploadHead(port: number, b: string, length: number, query = ""): string {
  return [
    `POST /upload${query} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `X-Access-Token: ${AUTH["x-access-token"]}`,
    `Content-Type: multipart/form-data; boundary=${b}`,
    `Content-Length: ${length}`,
    "Connection: close",
    "",
    "",
  ].join("\r\n");
}

export const sha256 = (bytes: Buffer | Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

export async function sha256File(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/** Temporary upload files the agent left in `dir` (there should never be any once it answered). */
export async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.includes(".upload-"));
}

/** How many of this process's file descriptors are open on `path` (the agent runs in-process). */
export async function openDescriptors(path: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir("/proc/self/fd")) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => "");
    if (target === path) count++;
  }
  return count;
}

/** The URL path of a file for /download: every segment percent-encoded, slashes kept. */
export function downloadPath(path: string): string {
  return `/download/${path.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/")}`;
}
