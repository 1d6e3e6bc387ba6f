/**
 * One scrape of the agent's /metrics on a connection of its own, closed after the answer: a
 * keep-alive connection left open between scrapes would come and go in the agent's descriptor
 * count, which the soak compares before and after.
 */
import http from "node:http";
import { parseAgentMetrics } from "../../harness/probe.js";

export type AgentFigures = ReturnType<typeof parseAgentMetrics>;

export function scrapeMetrics(baseUrl: string, token: string): Promise<AgentFigures> {
  return new Promise((resolve, reject) => {
    const request = http.get(new URL("/metrics", baseUrl), { headers: { "x-access-token": token }, agent: false, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.once("error", reject);
      res.once("end", () => (res.statusCode === 200 ? resolve(parseAgentMetrics(body)) : reject(new Error(`/metrics answered ${res.statusCode}`))));
    });
    request.once("timeout", () => request.destroy(new Error("/metrics did not answer within 30 s")));
    request.once("error", reject);
  });
}
