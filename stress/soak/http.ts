/**
 * Plain HTTP for /upload and /download over both protocols the port speaks: HTTP/1.1 through a
 * keep-alive agent, cleartext HTTP/2 through one session per client. Both belong to one soak
 * client, so closing it closes every connection it opened and the agent's descriptor count can
 * be compared afterwards.
 */
import http from "node:http";
import http2 from "node:http2";

export type HttpVersion = "1.1" | "2";

export interface HttpRequest {
  readonly version: HttpVersion;
  readonly method: "GET" | "POST";
  /** Path and query, already encoded. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  readonly signal: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export class HttpClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private session: http2.ClientHttp2Session | undefined;

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly onRequest: () => void,
  ) {}

  request(req: HttpRequest): Promise<HttpResponse> {
    this.onRequest();
    const headers = { "x-access-token": this.token, ...req.headers };
    return req.version === "2" ? this.viaH2(req, headers) : this.viaH1(req, headers);
  }

  close(): void {
    this.agent.destroy();
    this.session?.close();
    this.session = undefined;
  }

  private viaH1(req: HttpRequest, headers: Record<string, string>): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const outgoing = http.request(new URL(req.path, this.baseUrl), { method: req.method, headers, agent: this.agent, signal: req.signal }, (res) => {
        collect(res).then((body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }), reject);
      });
      outgoing.once("error", reject);
      outgoing.end(req.body);
    });
  }

  private viaH2(req: HttpRequest, headers: Record<string, string>): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const stream = this.h2Session().request({ ":method": req.method, ":path": req.path, ...headers }, { signal: req.signal });
      stream.once("error", reject);
      stream.once("response", (head) => {
        const status = Number(head[":status"]);
        collect(stream).then((body) => resolve({ status, headers: head, body }), reject);
      });
      stream.end(req.body);
    });
  }

  /** The client's one HTTP/2 connection, opened again if the last one went away. */
  private h2Session(): http2.ClientHttp2Session {
    if (this.session === undefined || this.session.closed || this.session.destroyed) {
      const session = http2.connect(this.baseUrl);
      // Errors reach the streams that were open; the session itself is just dropped.
      session.on("error", () => undefined);
      session.once("close", () => {
        if (this.session === session) this.session = undefined;
      });
      this.session = session;
    }
    return this.session;
  }
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}
