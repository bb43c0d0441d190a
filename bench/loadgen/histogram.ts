/**
 * A fixed-size log-linear histogram of non-negative integers (µs latencies):
 * exact below 128, then 64 buckets per power of two (≤ 1.6 % error), up to
 * 2^32 − 1. 1,728 counters however many samples are recorded, so ten million
 * deliveries cost nothing extra.
 *
 * @module
 */

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
const MAX_VALUE = 2 ** 32 - 1;
const BUCKETS = bucketOf(MAX_VALUE) + 1;

function bucketOf(value: number): number {
  if (value < 2 * SUB) return value;
  const shift = 31 - Math.clz32(value) - SUB_BITS;
  return SUB * shift + (value >>> shift);
}

/** Smallest and largest value that land in `bucket`. */
function bucketRange(bucket: number): [number, number] {
  if (bucket < 2 * SUB) return [bucket, bucket];
  const shift = Math.floor(bucket / SUB) - 1;
  const low = (bucket - SUB * shift) * 2 ** shift;
  return [low, low + 2 ** shift - 1];
}

/** Counts of values by bucket; percentiles are bucket midpoints clamped to min/max, p100 is the max. */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  count = 0;
  min = Infinity;
  max = -Infinity;
  sum = 0;

  /** Records one value; negatives count as 0, fractions are floored, huge values clamped. */
  record(value: number): void {
    const v = Math.min(MAX_VALUE, Math.max(0, Math.floor(value)));
    this.#counts[bucketOf(v)]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** Adds every sample of `other`. */
  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i] += other.#counts[i];
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** The value at quantile `q` (0–1); undefined when empty. */
  percentile(q: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.count));
    if (rank >= this.count) return this.max;
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket];
      if (seen >= rank) {
        const [low, high] = bucketRange(bucket);
        return Math.min(this.max, Math.max(this.min, (low + high) / 2));
      }
    }
    return this.max;
  }
}

/** Percentile of a small array of numbers (sorted copy, nearest rank); undefined when empty. */
export function percentileOf(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
