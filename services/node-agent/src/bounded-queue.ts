/**
 * FIFO with a hard size bound: pushing past the bound drops the oldest entry.
 * A ring buffer, so a full backlog of 10k events costs O(1) per push/shift.
 */
export class BoundedQueue<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private len = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.buf = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.len;
  }

  /** Appends; returns the entry dropped to make room, if any. */
  push(v: T): T | undefined {
    if (this.len === this.capacity) {
      const dropped = this.buf[this.head];
      this.buf[this.head] = v;
      this.head = (this.head + 1) % this.capacity;
      return dropped;
    }
    this.buf[(this.head + this.len) % this.capacity] = v;
    this.len++;
    return undefined;
  }

  shift(): T | undefined {
    if (this.len === 0) return undefined;
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.len--;
    return v;
  }

  peek(): T | undefined {
    return this.len === 0 ? undefined : this.buf[this.head];
  }

  /**
   * Puts entries back at the front, in the given order (used for publishes that failed).
   * When that overflows, the oldest (front-most) entries are the ones dropped; returns them.
   */
  unshiftAll(items: readonly T[]): T[] {
    const rest = this.drain();
    const all = [...items, ...rest];
    const over = Math.max(0, all.length - this.capacity);
    const dropped = all.slice(0, over);
    for (const v of all.slice(over)) this.push(v);
    return dropped;
  }

  drain(): T[] {
    const out: T[] = [];
    while (this.len > 0) out.push(this.shift() as T);
    return out;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.len; i++) out.push(this.buf[(this.head + i) % this.capacity] as T);
    return out;
  }
}
