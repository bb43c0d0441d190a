/**
 * One live object per key: many idle connections that hold equal immutable
 * values (a token's viewer row, a resolved stream) share one object instead
 * of a copy each. Entries are weak: an object no connection holds any more
 * is collected and its entry removed. The interner never copies, freezes or
 * compares beyond the key it is given.
 *
 * @module
 */

/** Weakly held canonical objects by key. */
export class Interner<T extends object> {
  readonly #live = new Map<string, WeakRef<T>>();
  readonly #registry = new FinalizationRegistry<string>((key) => {
    if (this.#live.get(key)?.deref() === undefined) this.#live.delete(key);
  });

  /**
   * The object already stored under `key` while it is alive, else `value`,
   * stored from now on. Equal keys must mean interchangeable values.
   */
  intern(key: string, value: T): T {
    const live = this.#live.get(key)?.deref();
    if (live !== undefined) return live;
    this.#live.set(key, new WeakRef(value));
    this.#registry.register(value, key);
    return value;
  }

  /** Keys stored (live objects, plus collected ones not yet finalised). */
  get size(): number {
    return this.#live.size;
  }
}
