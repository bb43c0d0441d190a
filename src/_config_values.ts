/**
 * The value checks shared by the configuration modules: non-empty strings,
 * integers in a range with Mastodon-style one-line errors, and freezing.
 * Never reads the environment itself.
 *
 * @module
 */
import type { Getter } from "./_env_file.ts";
import { ConfigError } from "./errors.ts";

/** An allowed integer range and how errors describe it. */
export interface Range {
  min: number;
  max: number;
  what: string;
}

export const PORT: Range = { min: 1, max: 65535, what: "an integer from 1 to 65535" };
export const NON_NEGATIVE: Range = {
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  what: "a non-negative integer",
};
export const POSITIVE: Range = { min: 1, max: Number.MAX_SAFE_INTEGER, what: "a positive integer" };
export const WORKERS: Range = { min: 1, max: 256, what: '"auto" or an integer from 1 to 256' };
export const TIMER: Range = { min: 1, max: 2 ** 31 - 1, what: "an integer from 1 to 2147483647" };

/** The variable's value; undefined when unset or empty. */
export function nonEmpty(get: Getter, name: string): string | undefined {
  const value = get(name);
  return value === "" ? undefined : value;
}

/** A decimal integer within `range`, else undefined. */
export function toInteger(text: string, range: Range): number | undefined {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return n >= range.min && n <= range.max ? n : undefined;
}

/** An integer variable with a fallback; a bad value is a ConfigError naming it. */
export function integer(get: Getter, name: string, fallback: number, range: Range): number {
  const raw = nonEmpty(get, name);
  if (raw === undefined) return fallback;
  const n = toInteger(raw, range);
  if (n === undefined) {
    throw new ConfigError(
      `Cannot parse ${name}: expected ${range.what}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** Drops keys whose value is undefined, so configs compare and print cleanly. */
export function defined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

/** Freezes an object and everything in it. */
export function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
