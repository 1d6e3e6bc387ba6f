/**
 * A first-in first-out queue that lets go of what it hands out at once: output frames are large, and
 * an array consumed from the front by index would keep every one of them alive until compaction.
 */
export class Queue<T> {
  private slots: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.slots.length - this.head;
  }

  push(item: T): void {
    this.slots.push(item);
  }

  peek(): T | undefined {
    return this.slots[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.slots.length) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head++] = undefined;
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** The items still queued, oldest first. */
  toArray(): T[] {
    return this.slots.slice(this.head) as T[];
  }

  clear(): void {
    this.slots = [];
    this.head = 0;
  }
}
