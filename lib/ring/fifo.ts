// A bounded first-in first-out queue over a circular array: the writer's class queues and its record
// index. A taken slot is cleared at once, so nothing taken stays referenced (the old queues kept every
// frame until they drained completely, which a sustained flood never lets happen).
// Invariant: 0 <= length <= capacityLimit; push past the limit is a programmer error.
export class Fifo<T> {
  readonly capacityLimit: number;
  private slots: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(capacityLimit: number, initialCapacity = 16) {
    if (!Number.isInteger(capacityLimit) || capacityLimit < 1) throw new Error(`assertion failed: Fifo capacityLimit ${capacityLimit}`);
    this.capacityLimit = capacityLimit;
    this.slots = new Array<T | undefined>(Math.min(capacityLimit, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.capacityLimit;
  }

  push(item: T): void {
    if (this.count >= this.capacityLimit) throw new Error(`assertion failed: Fifo over its limit of ${this.capacityLimit}`);
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) % this.slots.length] = item;
    this.count++;
  }

  /** The oldest item, or undefined when empty. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.slots[this.head];
  }

  /** The i-th oldest item (0 = peek()). */
  at(i: number): T | undefined {
    return i < 0 || i >= this.count ? undefined : this.slots[(this.head + i) % this.slots.length];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) % this.slots.length;
    this.count--;
    return item;
  }

  clear(): void {
    this.slots = new Array<T | undefined>(Math.min(this.capacityLimit, 16));
    this.head = 0;
    this.count = 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(Math.min(this.capacityLimit, Math.max(16, this.slots.length * 2)));
    for (let i = 0; i < this.count; i++) next[i] = this.slots[(this.head + i) % this.slots.length];
    this.slots = next;
    this.head = 0;
  }
}
