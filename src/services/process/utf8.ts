/** Where a byte buffer stops in the middle of a UTF-8 character. */

/** Length of the sequence a lead byte starts, or 0 when the byte cannot start a multi-byte one. */
function sequenceLength(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * How many bytes at the end of `bytes` are the valid beginning of a multi-byte character whose
 * remaining bytes have not arrived yet (0 to 3). Anything that is not such a prefix — complete text,
 * or bytes that are not UTF-8 at all — gives 0, so binary output is never held back for long.
 */
export function incompleteTail(bytes: Uint8Array): number {
  const end = bytes.length;
  for (let back = 1; back <= 3 && back <= end; back++) {
    const byte = bytes[end - back]!;
    if ((byte & 0xc0) === 0x80) continue; // a continuation byte: the lead is further back
    const needed = sequenceLength(byte);
    return needed > back ? back : 0;
  }
  return 0;
}
