/** Random choices of the soak; Math.random is enough, a failure is reported with what was sent. */

export function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** Uniform over orders of magnitude, so small sizes are as common as large ones. */
export function randomSize(min: number, max: number): number {
  const exponent = Math.log(min) + Math.random() * (Math.log(max) - Math.log(min));
  return Math.min(max, Math.max(min, Math.round(Math.exp(exponent))));
}

export function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(Math.random() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

export function coin(): boolean {
  return Math.random() < 0.5;
}
