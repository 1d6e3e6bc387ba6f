/**
 * How often an idle server stream sends a keepalive message: the client's `Keepalive-Ping-Interval`
 * (whole seconds, as the SDKs send it), else every 30 s, well under the idle timeouts of common
 * proxies (nginx and most load balancers drop a silent connection after 60 s). One rule for every
 * stream: process output (Start, Connect) and watches (WatchDir).
 */
const DEFAULT_SECONDS = 30;
const MIN_SECONDS = 1;
const MAX_SECONDS = 3600;

export const KEEPALIVE_HEADER = "keepalive-ping-interval";

export function keepaliveIntervalMs(header: Headers): number {
  const raw = header.get(KEEPALIVE_HEADER);
  const seconds = raw !== null && /^\s*\d+\s*$/.test(raw) ? Number(raw) : DEFAULT_SECONDS;
  return Math.min(MAX_SECONDS, Math.max(MIN_SECONDS, seconds)) * 1000;
}
