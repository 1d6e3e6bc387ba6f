/**
 * Family "raw": bytes on a socket that no well-behaved client writes — bad methods and versions,
 * huge URIs, headers without a colon, obs-fold, NUL bytes, invalid chunk sizes, request smuggling
 * shapes (Content-Length with Transfer-Encoding, duplicated or signed lengths), HTTP/1.0 and 0.9,
 * bare LF line ends, pipelined requests, TLS and HTTP/2 prefaces followed by garbage, upgrades, and
 * plain garbage.
 *
 * Every request either ends with `Connection: close` (or is HTTP/1.0) so that the agent closes when
 * it is done, or half-closes the socket (`cutAfter`) when the agent could fairly wait for more.
 * Smuggled requests only read; uploads only name the scratch directory.
 */
import fc from "fast-check";
import type { RequestSpec } from "../request.js";
import type { FuzzContext } from "./context.js";
import { BOUNDARY, encodedScratch, FIXTURES, formContentType, queryValue, simpleForm } from "./http-common.js";

interface RawShape {
  readonly label: string;
  readonly bytes: Buffer;
  /** The agent may wait for more: half-close after writing. */
  readonly open?: boolean;
}

const CRLF = "\r\n";
const latin1 = (text: string): Buffer => Buffer.from(text, "latin1");

function request(lines: readonly string[], body: Buffer | string = ""): Buffer {
  return Buffer.concat([latin1(lines.join(CRLF) + CRLF + CRLF), typeof body === "string" ? latin1(body) : body]);
}

export function rawRequests(ctx: FuzzContext): fc.Arbitrary<RequestSpec> {
  const token = `x-access-token: ${ctx.token}`;
  const download = `/download/${encodedScratch(ctx)}/${FIXTURES.file}`;
  const uploadTarget = `/upload?path=${queryValue(`${ctx.scratch}/${FIXTURES.uploads}/raw.bin`)}`;
  const form = simpleForm(BOUNDARY, "raw.bin", Buffer.from("raw upload"));
  const uploadHead = (framing: readonly string[]): string[] => [
    `POST ${uploadTarget} HTTP/1.1`,
    "Host: agent",
    token,
    `Content-Type: ${formContentType}`,
    ...framing,
    "Connection: close",
  ];

  const badMethod = fc
    .constantFrom("GE T", "G\0ET", "PURGE", "get", "PRI", "CONNECT", "M".repeat(5000), "", "DELETE", "OPTIONS", "TRACE", "\x01", "GET\t", "POST")
    .map((m): RawShape => ({ label: "method", bytes: request([`${m} /health HTTP/1.1`, "Host: agent", token, "Connection: close"]) }));

  const hugeUri = fc
    .tuple(fc.constantFrom(8_000, 17_000, 70_000), fc.constantFrom("/download/", "/health?", "/upload?path="))
    .map(([n, prefix]): RawShape => ({ label: "uri", bytes: request([`GET ${prefix}${"a".repeat(n)} HTTP/1.1`, "Host: agent", token, "Connection: close"]) }));

  const badHeader = fc
    .constantFrom(
      ["NoColonHere"],
      [": empty-name"],
      ["X-Folded: a", " b"],
      ["x-access-token:", ` ${ctx.token}`],
      ["X-Nul: a\0b"],
      ["X-\0: v"],
      ["X-Ctl: a\x01b"],
      ["Host: agent", "Host: other"],
      ["X-Space : v"],
      [" X-Leading: v"],
      [`X-Long: ${"v".repeat(20_000)}`],
      Array.from({ length: 2_500 }, (_, i) => `X-H${i}: v`),
      ["Expect: 100-continue"],
      ["Expect: garbage"],
      ["Range: bytes=0-1", "Range: bytes=2-3"],
    )
    .chain((extra) =>
      fc.constantFrom(download, "/health", "/metrics").map(
        (target): RawShape => ({
          label: "header",
          bytes: request([`GET ${target} HTTP/1.1`, "Host: agent", token, ...extra, "Connection: close"]),
        }),
      ),
    );

  const chunkSize = fc.constantFrom("zz", "-1", "ffffffffffffffffff", "1;ext=1", " 5", "5 ", "0x5", "+5", "5;", "5\t", "", "FFFFFFFF", "7fffffffffffffff");
  const badChunks = chunkSize.map(
    (size): RawShape => ({
      label: "chunks",
      bytes: request(
        uploadHead(["Transfer-Encoding: chunked"]),
        Buffer.concat([latin1(`${size}${CRLF}`), form.subarray(0, 5), latin1(`${CRLF}0${CRLF}${CRLF}`)]),
      ),
      open: true,
    }),
  );

  const smuggled = request(["GET /metrics HTTP/1.1", "Host: agent", "Connection: close"]);
  const smuggling = fc
    .constantFrom(
      [`Content-Length: ${form.length}`, "Transfer-Encoding: chunked"],
      ["Transfer-Encoding: chunked", `Content-Length: ${form.length}`],
      ["Transfer-Encoding: chunked, identity"],
      ["Transfer-Encoding: identity, chunked"],
      ["Transfer-Encoding: xchunked"],
      ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
      ["Transfer-Encoding : chunked"],
      ["Transfer-Encoding:\tchunked"],
      ["Transfer-Encoding: \x0bchunked"],
      [`Content-Length: ${form.length}`, `Content-Length: ${form.length + 1}`],
      [`Content-Length: ${form.length}, ${form.length}`],
      [`Content-Length: +${form.length}`],
      ["Content-Length: -1"],
      [`Content-Length: ${form.length}0000000000000000000000`],
      [`Content-Length: 0x${form.length.toString(16)}`],
    )
    .chain((framing) =>
      fc.boolean().map((chunkedBody): RawShape => {
        const body = chunkedBody ? Buffer.concat([latin1(`${form.length.toString(16)}${CRLF}`), form, latin1(`${CRLF}0${CRLF}${CRLF}`)]) : form;
        return { label: "smuggling", bytes: Buffer.concat([request(uploadHead(framing), body), smuggled]), open: true };
      }),
    );

  const versions = fc
    .constantFrom(
      ["GET /health HTTP/1.0"],
      [`GET ${download} HTTP/1.0`, token],
      [`HEAD ${download} HTTP/1.0`, token, "Range: bytes=0-0"],
      ["GET /health"],
      ["GET /health HTTP/1.2", "Connection: close"],
      ["GET /health HTTP/2.0", "Connection: close"],
      ["GET /health HTTP/1.1 extra", "Connection: close"],
      ["GET /health http/1.1", "Connection: close"],
      ["GET /health HTTP/1.01", "Connection: close"],
      ["GET  /health  HTTP/1.1", "Connection: close"],
      ["GET http://agent/health HTTP/1.1", "Host: agent", "Connection: close"],
      [`GET http://agent${download} HTTP/1.1`, "Host: agent", token, "Connection: close"],
      ["OPTIONS * HTTP/1.1", "Host: agent", "Connection: close"],
      ["GET * HTTP/1.1", "Host: agent", token, "Connection: close"],
      ["GET health HTTP/1.1", "Host: agent", "Connection: close"],
      ["GET /health HTTP/1.1"], // no Host
    )
    .map((lines): RawShape => ({ label: "version", bytes: request(lines), open: true }));

  const lineEnds = fc
    .constantFrom(
      `GET /health HTTP/1.1\nHost: agent\nConnection: close\n\n`,
      `GET ${download} HTTP/1.1\n${token}\nConnection: close\n\n`,
      `GET /health HTTP/1.1\rHost: agent\rConnection: close\r\r`,
      `\r\n\r\nGET /health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n`,
      `GET /health HTTP/1.1\r\nHost: agent\r\nConnection: close\n\r\n`,
    )
    .map((text): RawShape => ({ label: "line-ends", bytes: latin1(text), open: true }));

  const simple = fc.constantFrom(
    request(["GET /health HTTP/1.1", "Host: agent"]),
    request([`GET ${download} HTTP/1.1`, "Host: agent", token]),
    request([`HEAD ${download} HTTP/1.1`, "Host: agent", token]),
    request([`GET ${download} HTTP/1.1`, "Host: agent", token, "Range: bytes=5-9"]),
    request(["GET /metrics HTTP/1.1", "Host: agent"]),
    request([`GET ${download} HTTP/1.1`, "Host: agent", "x-access-token: wrong"]),
    request(["GET /nope HTTP/1.1", "Host: agent", token]),
    request(uploadHead([`Content-Length: ${form.length}`]).slice(0, -1), form),
  );
  const pipelined = fc.array(simple, { minLength: 2, maxLength: 10 }).map(
    (requests): RawShape => ({
      label: "pipelined",
      bytes: Buffer.concat([...requests, request(["GET /health HTTP/1.1", "Host: agent", "Connection: close"])]),
    }),
  );

  // What the one-port sniffer hands to the TLS and HTTP/2 servers, and upgrades it does not offer.
  const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const protocols = fc
    .tuple(fc.constantFrom("tls", "h2-garbage", "h2-partial", "h2-bare", "upgrade-h2c", "upgrade-websocket", "connect"), fc.uint8Array({ maxLength: 512 }))
    .map(([kind, tail]): RawShape => {
      const bytes = (head: string | Buffer): Buffer => Buffer.concat([typeof head === "string" ? latin1(head) : head, Buffer.from(tail)]);
      switch (kind) {
        case "tls":
          return { label: kind, bytes: bytes(Buffer.from([0x16, 0x03, 0x01, tail.length >> 8, tail.length & 0xff])), open: true };
        case "h2-garbage":
          return { label: kind, bytes: bytes(preface), open: true };
        case "h2-partial":
          return { label: kind, bytes: latin1(preface.slice(0, 1 + (tail.length % (preface.length - 1)))), open: true };
        case "h2-bare":
          return { label: kind, bytes: latin1(preface), open: true };
        case "upgrade-h2c":
          return {
            label: kind,
            bytes: request([
              "GET /health HTTP/1.1",
              "Host: agent",
              "Connection: Upgrade, HTTP2-Settings",
              "Upgrade: h2c",
              "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            ]),
            open: true,
          };
        case "upgrade-websocket":
          return {
            label: kind,
            bytes: request([
              `GET ${download} HTTP/1.1`,
              "Host: agent",
              token,
              "Connection: Upgrade",
              "Upgrade: websocket",
              "Sec-WebSocket-Version: 13",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            ]),
            open: true,
          };
        default:
          return { label: kind, bytes: request(["CONNECT agent:80 HTTP/1.1", "Host: agent:80", token]), open: true };
      }
    });

  const garbage = fc
    .oneof(
      fc.uint8Array({ minLength: 1, maxLength: 2048 }),
      fc.string({ maxLength: 200 }).map((s) => new Uint8Array(latin1(s))),
    )
    .map((bytes): RawShape => ({ label: "garbage", bytes: Buffer.from(bytes), open: true }));

  return fc.oneof(badMethod, hugeUri, badHeader, badChunks, smuggling, versions, lineEnds, pipelined, protocols, garbage).map(
    (shape): RequestSpec => ({
      family: "raw",
      transport: "http1",
      method: shape.label,
      target: shape.bytes.subarray(0, 80).toString("latin1"),
      headers: [],
      raw: shape.bytes,
      ...(shape.open ? { cutAfter: shape.bytes.length } : {}),
    }),
  );
}
