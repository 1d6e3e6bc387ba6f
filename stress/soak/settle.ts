/**
 * Polls `read` until it returns the same value `stableReads` times in a row or `maxMs` passes,
 * and returns the last value: a count still moving (descriptors being opened or closed) is not
 * measured mid-way.
 */
export async function settled(read: () => Promise<number>, { intervalMs = 250, stableReads = 4, maxMs = 5_000 } = {}): Promise<number> {
  const deadline = Date.now() + maxMs;
  let last = await read();
  let same = 1;
  while (same < stableReads && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const now = await read();
    same = now === last ? same + 1 : 1;
    last = now;
  }
  return last;
}
