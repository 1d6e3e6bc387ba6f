/**
 * The bounded buffer between a watch and its consumer (a stream's client, or a poller). It keeps
 * the oldest events: when full, it stops accepting and counts what it turned away, and stays
 * closed until the consumer has been told (`takeLost`). The consumer therefore sees every kept
 * event in order, then one report of the gap, then whatever came after the report; nothing is
 * lost without a word, and a consumer that never reads cannot grow memory past the bound.
 */
export class EventBuffer<T> {
  private items: T[] = [];
  private head = 0;
  private lost = 0;
  private wakeUp: (() => void) | undefined;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.lost > 0 || this.size >= this.capacity) this.lost++;
    else this.items.push(item);
    this.wake();
  }

  /** The oldest buffered item, or undefined when empty. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    // Compact now and then, so shifting stays O(1) and the array does not keep its peak size.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Every buffered item, oldest first; the buffer is empty afterwards. */
  takeAll(): T[] {
    const all = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return all;
  }

  /** How many items were turned away since the buffer filled up; reopens the buffer. */
  takeLost(): number {
    const lost = this.lost;
    this.lost = 0;
    return lost;
  }

  /** Resolves at the next push or `wake()`. One waiter at a time: the buffer has one consumer. */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeUp = resolve;
    });
  }

  wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }
}
