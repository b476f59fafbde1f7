/**
 * Waiting jobs in start order: higher priority first, first-in first-out within a priority.
 * Without priorities it is a plain FIFO array walked by a head index (no shifting).
 */
export class JobQueue<T> {
  readonly #buckets = new Map<number, { items: T[]; head: number }>();
  /** Priorities present, highest first. */
  #order: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(item: T, priority = 0): void {
    let bucket = this.#buckets.get(priority);
    if (bucket === undefined) {
      bucket = { items: [], head: 0 };
      this.#buckets.set(priority, bucket);
      this.#order.push(priority);
      if (this.#order.length > 1) this.#order.sort((a, b) => b - a);
    }
    bucket.items.push(item);
    this.#size += 1;
  }

  shift(): T | undefined {
    for (const priority of this.#order) {
      const bucket = this.#buckets.get(priority);
      if (bucket === undefined || bucket.head >= bucket.items.length) continue;
      const item = bucket.items[bucket.head] as T;
      bucket.items[bucket.head] = undefined as T;
      bucket.head += 1;
      this.#size -= 1;
      if (bucket.head === bucket.items.length) {
        this.#buckets.delete(priority);
        this.#order = this.#order.filter((p) => p !== priority);
      }
      return item;
    }
    return undefined;
  }

  /** Removes and returns every waiting item, in start order. */
  drain(): T[] {
    const all: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) all.push(item);
    return all;
  }
}
