/**
 * The leak check's clients: the four services over three transports (Connect binary on HTTP/2,
 * gRPC on HTTP/2, Connect JSON on HTTP/1.1), each holding its connections in something this file
 * can close. The agent's descriptor count only comes back to its baseline once the clients'
 * sockets are gone, so "closed" has to mean closed, not "idle in a global keep-alive pool".
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { Agent as HttpAgent } from "node:http";
import { ContextService, ExecutionService, Filesystem, Process } from "../../src/gen/sandboxagent/api_pb.js";

export const TRANSPORTS = ["connect-h2", "grpc-h2", "connect-json-h1"] as const;
export type TransportKind = (typeof TRANSPORTS)[number];

export interface Clients {
  readonly transport: TransportKind;
  readonly process: Client<typeof Process>;
  readonly fs: Client<typeof Filesystem>;
  readonly execution: Client<typeof ExecutionService>;
  readonly contexts: Client<typeof ContextService>;
}

export interface ClientSet {
  /** The clients of one transport; cycles rotate through them. */
  readonly of: (kind: TransportKind) => Clients;
  /** Closes every connection this set opened. */
  readonly close: () => void;
}

export function openClients(baseUrl: string): ClientSet {
  const sessions: Http2SessionManager[] = [];
  const agents: HttpAgent[] = [];
  const byKind = new Map<TransportKind, Clients>();

  const build = (kind: TransportKind): Clients => {
    let make: <S extends DescService>(service: S) => Client<S>;
    if (kind === "connect-json-h1") {
      const agent = new HttpAgent({ keepAlive: true });
      agents.push(agent);
      const transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, nodeOptions: { agent } });
      make = (service) => createClient(service, transport);
    } else {
      const sessionManager = new Http2SessionManager(baseUrl);
      sessions.push(sessionManager);
      const transport =
        kind === "grpc-h2"
          ? createGrpcTransport({ baseUrl, sessionManager })
          : createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true, sessionManager });
      make = (service) => createClient(service, transport);
    }
    return {
      transport: kind,
      process: make(Process),
      fs: make(Filesystem),
      execution: make(ExecutionService),
      contexts: make(ContextService),
    };
  };

  return {
    of: (kind) => {
      let clients = byKind.get(kind);
      if (clients === undefined) {
        clients = build(kind);
        byKind.set(kind, clients);
      }
      return clients;
    },
    close: () => {
      for (const session of sessions) session.abort();
      for (const agent of agents) agent.destroy();
      byKind.clear();
    },
  };
}
