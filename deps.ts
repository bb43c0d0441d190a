/**
 * The only module that imports third-party code for Sluice. Everything else
 * imports what it needs from here, so the dependency surface stays visible.
 * The one other importer is `bench/redis_clients/deps.ts`, for the two Redis
 * clients the benchmark compares, kept out of main.ts's module graph so the
 * server, its compiled binary and its offline cache never carry them.
 *
 * @module
 */
// @ts-types="@types/pg"
export { default as pg } from "pg";
export type { Pool, PoolClient, PoolConfig, QueryResult } from "pg";
export { parseFragment } from "parse5";
export type { DefaultTreeAdapterMap } from "parse5";
