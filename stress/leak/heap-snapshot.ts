/**
 * Totals from a V8 heap snapshot file (the .heapsnapshot JSON that Chrome DevTools reads). The
 * leak check separates the heap into data the program keeps (objects, closures, arrays, strings)
 * and code V8 generates for it: optimised code, its deoptimisation data and relocation info keep
 * growing for a long while as more paths get hot (about 2 MiB over the first 10,000 cycles here),
 * which is not a leak and would hide one in a total.
 */
import { readFile } from "node:fs/promises";

interface SnapshotFile {
  readonly snapshot: { readonly meta: { readonly node_fields: readonly string[]; readonly node_types: readonly [readonly string[], ...unknown[]] } };
  readonly nodes: readonly number[];
  readonly strings: readonly string[];
}

/** Node types that are the program's data; "code" and "hidden" (V8 internals) are left out. */
const DATA_TYPES = new Set(["object", "closure", "array", "string", "concatenated string", "sliced string", "number", "regexp", "native", "bigint", "symbol"]);

export interface HeapTotals {
  /** Bytes of the program's data: what a leak adds to. */
  readonly dataBytes: number;
  /** Bytes of generated code and V8's own structures. */
  readonly otherBytes: number;
  /** The largest groups of data by constructor name, for a report when data grew. */
  readonly byName: ReadonlyMap<string, { readonly count: number; readonly bytes: number }>;
}

export async function heapTotals(path: string): Promise<HeapTotals> {
  const file = JSON.parse(await readFile(path, "utf8")) as SnapshotFile;
  const fields = file.snapshot.meta.node_fields;
  const typeNames = file.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  let dataBytes = 0;
  let otherBytes = 0;
  const byName = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < file.nodes.length; i += width) {
    const type = typeNames[file.nodes[i + typeAt]!] ?? "?";
    const size = file.nodes[i + sizeAt]!;
    if (!DATA_TYPES.has(type)) {
      otherBytes += size;
      continue;
    }
    dataBytes += size;
    const name = `${type} ${(file.strings[file.nodes[i + nameAt]!] ?? "?").slice(0, 60)}`;
    const entry = byName.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += size;
    byName.set(name, entry);
  }
  return { dataBytes, otherBytes, byName };
}

/** The groups that grew most between two snapshots: "+512 objects ManagedProcess (+60 KiB)". */
export function grownGroups(before: HeapTotals, after: HeapTotals, limit = 12): string[] {
  const rows: Array<{ name: string; count: number; bytes: number }> = [];
  for (const [name, now] of after.byName) {
    const then = before.byName.get(name) ?? { count: 0, bytes: 0 };
    if (now.bytes > then.bytes) rows.push({ name, count: now.count - then.count, bytes: now.bytes - then.bytes });
  }
  rows.sort((a, b) => b.bytes - a.bytes);
  return rows.slice(0, limit).map((r) => `${r.count >= 0 ? "+" : ""}${r.count} ${r.name} (+${(r.bytes / 1024).toFixed(0)} KiB)`);
}
