/** The agent's descriptors after the run that were not there before, by what they point at. */

/** "socket:[123]" and "socket:[456]" are the same kind; paths are their own kind. */
const kindOf = (target: string): string => target.replace(/\[\d+\]$/, "[…]");

export function addedFds(before: readonly string[], after: readonly string[]): string[] {
  const remaining = new Map<string, number>();
  for (const target of before) remaining.set(kindOf(target), (remaining.get(kindOf(target)) ?? 0) + 1);
  const added: string[] = [];
  for (const target of after) {
    const left = remaining.get(kindOf(target)) ?? 0;
    if (left > 0) remaining.set(kindOf(target), left - 1);
    else added.push(target);
  }
  return added;
}
