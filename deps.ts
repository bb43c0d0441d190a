/**
 * The only module that imports third-party code. Everything else imports
 * what it needs from here, so the dependency surface stays visible.
 *
 * @module
 */
// @ts-types="@types/pg"
export { default as pg } from "pg";
export type { Pool, PoolClient, PoolConfig, QueryResult } from "pg";
export { parseFragment } from "parse5";
export type { DefaultTreeAdapterMap } from "parse5";

// Benchmark only: bench/redis_clients.ts compares Sluice's subscriber with
// these two. Loaded on demand, so a process pulls in (and grants permissions
// to) only the one it runs; nothing under src/ or main.ts may use them.
/** ioredis (what Mastodon's streaming server uses), loaded on first call. */
export const loadIORedis = async () => (await import("ioredis")).Redis;
/** node-redis (`redis` on npm), loaded on first call. */
export const loadNodeRedis = async () => (await import("redis")).createClient;
