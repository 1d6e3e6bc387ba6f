/**
 * The agent's event-loop lag during the run, from its /metrics. prom-client reads its event-loop
 * delay histogram and resets it on every scrape (lib/metrics/eventLoopLag.js), so each scrape's
 * p99 covers exactly the time since the previous one. Windows of 10 s hold about 500 samples (the
 * timer ticks every 20 ms), so their p99 is a p99; one-second windows would hold about 50, and
 * their p99 would be each second's single worst stall. The soak reports the worst 10-second p99
 * of the run; the tail after the last full window counts only if it lasted half a window or more
 * (or is the only one), for the same reason.
 *
 * The histogram records the interval between ticks of that 20 ms timer (`eventLoopMonitoringPrecision`
 * in src/metrics.ts), so an idle loop reads 20 ms; that interval is subtracted, leaving the delay
 * beyond it: the lag.
 */
import { scrapeMetrics } from "./metrics.js";
import type { Tally } from "./tally.js";

const WINDOW_MS = 10_000;
const TIMER_INTERVAL_MS = 20;

export interface LagWindow {
  /** This window's p99, in ms beyond the timer's interval. */
  readonly lagP99Ms: number;
  readonly rssBytes: number;
}

export class LagSampler {
  /** Worst window p99 of the run, in ms beyond the timer's interval. */
  maxP99Ms = 0;
  private windows = 0;
  private windowStart = 0;
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly tally: Tally,
    /** Called after each full window: the soak's progress line. */
    private readonly onWindow: (window: LagWindow) => void,
  ) {}

  /** Starts the first window now: the histogram until now held warm-up and idle time. */
  async begin(): Promise<void> {
    await scrapeMetrics(this.url, this.token);
    this.windowStart = Date.now();
    this.timer = setInterval(() => {
      this.pending = this.pending.then(() => this.close(true));
    }, WINDOW_MS);
  }

  /** Closes the tail window. */
  async end(): Promise<void> {
    clearInterval(this.timer);
    await this.pending;
    await this.close(this.windows === 0 || Date.now() - this.windowStart >= WINDOW_MS / 2);
  }

  private async close(counts: boolean): Promise<void> {
    this.tally.request();
    try {
      const figures = await scrapeMetrics(this.url, this.token);
      this.windowStart = Date.now();
      if (!Number.isFinite(figures.lagP99Ms)) throw new Error("/metrics has no event-loop lag p99");
      const window = { lagP99Ms: Math.max(0, figures.lagP99Ms - TIMER_INTERVAL_MS), rssBytes: figures.rssBytes };
      if (!counts) return;
      this.windows++;
      this.maxP99Ms = Math.max(this.maxP99Ms, window.lagP99Ms);
      this.onWindow(window);
    } catch (err) {
      this.tally.failed("metrics", err);
    }
  }
}
