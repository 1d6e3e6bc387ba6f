/**
 * One soak client's connections: Connect (JSON and binary) over HTTP/1.1, Connect and gRPC over
 * one HTTP/2 connection, and plain HTTP over both. Every RPC goes through an interceptor that
 * adds the token and counts the call, so no operation can forget either.
 */
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import http from "node:http";
import { HttpClient } from "./http.js";
import { pick } from "./random.js";

/** "h2": a transport that can carry client streams (StreamInput). */
export type TransportKind = "any" | "h2";

export class Connections {
  readonly http: HttpClient;
  private readonly h1Agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly h2Session: Http2SessionManager;
  private readonly h1: readonly Transport[];
  private readonly h2: readonly Transport[];

  constructor(baseUrl: string, token: string, onRequest: () => void) {
    const interceptors: Interceptor[] = [
      (next) => (req) => {
        onRequest();
        req.header.set("x-access-token", token);
        return next(req);
      },
    ];
    this.http = new HttpClient(baseUrl, token, onRequest);
    this.h2Session = new Http2SessionManager(baseUrl);
    const nodeOptions = { agent: this.h1Agent };
    this.h1 = [
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors, nodeOptions }),
      createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors, nodeOptions }),
    ];
    this.h2 = [
      createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, interceptors, sessionManager: this.h2Session }),
      createGrpcTransport({ baseUrl, interceptors, sessionManager: this.h2Session }),
    ];
  }

  /** A client over a transport picked at random, so every operation runs over every protocol. */
  client<S extends DescService>(service: S, kind: TransportKind = "any"): Client<S> {
    return createClient(service, pick(kind === "h2" ? this.h2 : [...this.h1, ...this.h2]));
  }

  close(): void {
    this.http.close();
    this.h1Agent.destroy();
    this.h2Session.abort();
  }
}
