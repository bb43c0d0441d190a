/**
 * Benchmark only: the two npm Redis clients `bench/redis_clients.ts` compares
 * with Sluice's own subscriber. Kept apart from the root `deps.ts` so that
 * main.ts's module graph (the server, `deno compile`, the offline cache)
 * never includes them. Loaded on demand, so a benchmark child pulls in, and
 * is granted permissions for, only the one it runs.
 *
 * @module
 */

/** ioredis (what Mastodon's streaming server uses), loaded on first call. */
export const loadIORedis = async () => (await import("ioredis")).Redis;
/** node-redis (`redis` on npm), loaded on first call. */
export const loadNodeRedis = async () => (await import("redis")).createClient;
