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
