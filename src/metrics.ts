/**
 * The agent's Prometheus metrics, in one registry. Request counts and latency come from fastify
 * hooks (server.ts); services report what they hold (processes, watchers, contexts) through gauges
 * that are read only when /metrics is scraped, so nothing is counted twice or kept in sync by hand.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

declare module "fastify" {
  interface FastifyInstance {
    /** The agent's metrics, for routes that count what they move. */
    metrics: Metrics;
  }
}

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<"route" | "method" | "status">;
  readonly requestDuration: Histogram<"route" | "method">;
  readonly inFlight: Gauge<"route">;
  /** Bytes of file payloads: direction is "upload" or "download". */
  readonly fileBytes: Counter<"direction">;
  readonly kernelEvents: Counter<"event">;
  /** Registers a gauge whose value is read from `read` at scrape time. */
  readonly observe: (name: string, help: string, read: () => number) => void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "sandbox_agent_", eventLoopMonitoringPrecision: 20 });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: "sandbox_agent_requests_total",
      help: "Requests by route, method and HTTP status",
      labelNames: ["route", "method", "status"],
      registers,
    }),
    requestDuration: new Histogram({
      name: "sandbox_agent_request_duration_seconds",
      help: "Request duration by route (streams: until the stream ends)",
      labelNames: ["route", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    inFlight: new Gauge({ name: "sandbox_agent_requests_in_flight", help: "Requests and streams being served, by route", labelNames: ["route"], registers }),
    fileBytes: new Counter({ name: "sandbox_agent_file_bytes_total", help: "File bytes uploaded and downloaded", labelNames: ["direction"], registers }),
    kernelEvents: new Counter({ name: "sandbox_agent_kernel_events_total", help: "Kernel starts, restarts and deaths", labelNames: ["event"], registers }),
    observe: (name, help, read) => {
      new Gauge({
        name: `sandbox_agent_${name}`,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    },
  };
}
