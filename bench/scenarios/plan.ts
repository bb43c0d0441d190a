/**
 * The sizes and durations of the scenario cases (bench/scenarios.ts): the
 * full plan behind bench/RESULTS.md and the `--quick` smoke plan, and the
 * constants every case shares (seeded viewers, payload size, the `user`
 * stream's Redis channel).
 *
 * @module
 */
import type { Ladder } from "./analysis.ts";

/** Viewers seeded for cases c and e (bench/scenarios/seed.ts). */
export const VIEWERS = 1000;
/** Payload of every published status, in bytes. */
export const PAYLOAD_BYTES = 1500;
/** Redis channel of the `user` stream the cases read (account 1's home timeline). */
export const USER_CHANNEL = "timeline:1";

/** Sizes and durations of every case. */
export interface Plan {
  idleSizes: number[];
  idleWarmup: number;
  idleHold: number;
  fanoutClients: number;
  ladder: Ladder;
  /** Step factor of the filtered ladder when it starts from the unfiltered saturation. */
  filteredFactor: number;
  duration: number;
  warmup: number;
  drainMs: number;
  latencyClients: number;
  mixedClients: number;
  latencyDuration: number;
  stormClients: number;
  slowClients: number;
  slowRate: number;
  /** Case f publishes long enough to send each slow client this many bytes, within the bounds. */
  slowBytes: number;
  slowSeconds: { min: number; max: number };
  /** Case g: WebSocket clients, messages per second, seconds of publishing, drain in ms. */
  workers: { clients: number; rate: number; duration: number; drainMs: number };
}

/** The full run behind bench/RESULTS.md. */
export const FULL: Plan = {
  idleSizes: [1000, 5000, 10_000],
  idleWarmup: 2,
  idleHold: 1,
  fanoutClients: 1000,
  ladder: { start: 20, factor: 1.5, maxSteps: 9, minGap: 1.25 },
  filteredFactor: 1.3,
  duration: 5,
  warmup: 1,
  drainMs: 3000,
  latencyClients: 1000,
  mixedClients: 5000,
  latencyDuration: 10,
  stormClients: 5000,
  slowClients: 1000,
  slowRate: 100,
  slowBytes: 6 * 2 ** 20,
  slowSeconds: { min: 15, max: 75 },
  workers: { clients: 2000, rate: 100, duration: 10, drainMs: 30_000 },
};

/** `--quick`: a smoke run of a minute or two. */
export const QUICK: Plan = {
  idleSizes: [500],
  idleWarmup: 1,
  idleHold: 0.5,
  fanoutClients: 200,
  ladder: { start: 20, factor: 2, maxSteps: 2, minGap: 1.25 },
  filteredFactor: 2,
  duration: 2,
  warmup: 0.5,
  drainMs: 1000,
  latencyClients: 200,
  mixedClients: 500,
  latencyDuration: 2,
  stormClients: 1000,
  slowClients: 200,
  slowRate: 50,
  slowBytes: 0,
  slowSeconds: { min: 3, max: 3 },
  workers: { clients: 200, rate: 20, duration: 2, drainMs: 1000 },
};
