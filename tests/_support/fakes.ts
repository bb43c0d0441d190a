/**
 * Fakes for unit tests of pure logic: a viewer, a hub over a recording fake
 * Redis, a recording WebSocket port, and an access database answering from
 * fixed rules. Integration tests use the real parts (see stack.ts).
 *
 * @module
 */
import { Access } from "../../src/access.ts";
import type { Viewer } from "../../src/auth.ts";
import { QueueWatch } from "../../src/_queue_watch.ts";
import type { ClientContext } from "../../src/client.ts";
import { DEFAULT_LIMITS } from "../../src/config.ts";
import type { FactsSource } from "../../src/hub.ts";
import { Hub } from "../../src/hub.ts";
import { silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import type { ClientPort, SessionContext } from "../../src/websocket.ts";

/** A viewer (account 1, token 1, `read write`), with overrides. */
export function viewer(overrides: Partial<Viewer> = {}): Viewer {
  return {
    accessTokenId: "1",
    accountId: "1",
    scopes: ["read", "write"],
    chosenLanguages: null,
    permissions: 0,
    ...overrides,
  };
}

/** A hub whose Redis subscriptions and `subscribed:` keys are recorded in `calls`. */
export function fakeHub(options: { filter?: FactsSource } = {}) {
  const calls: string[] = [];
  const subscribed = new Set<string>();
  const metrics = new Metrics();
  const hub = new Hub({
    subscriber: {
      subscribe: (c) => (calls.push(`SUBSCRIBE ${c}`), subscribed.add(c)),
      unsubscribe: (c) => (calls.push(`UNSUBSCRIBE ${c}`), subscribed.delete(c)),
    },
    keys: { add: (c) => calls.push(`KEY+ ${c}`), remove: (c) => calls.push(`KEY- ${c}`) },
    log: silentLogger,
    metrics,
    filter: options.filter,
  });
  return { hub, metrics, calls, subscribed };
}

/** The context every client of a fake hub shares. */
export function clientContext(clientQueueBytes = 1 << 20) {
  const fake = fakeHub();
  // No timer: a test runs the queue watch's checks with tick().
  const queues = new QueueWatch({ budgetBytes: 1 << 30, clientQueueBytes, tickMs: 0 });
  const context: ClientContext = { hub: fake.hub, metrics: fake.metrics, clientQueueBytes, queues };
  return { ...fake, context };
}

/** A WebSocket port that records what the session sends and how it closes. */
export class FakePort implements ClientPort {
  sent: string[] = [];
  closed?: { code?: number; reason?: string };
  bufferedAmount = 0;
  open = true;
  send(text: string): void {
    this.sent.push(text);
  }
  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
  }
}

/** The database `Access` reads. */
export type AccessDb = ConstructorParameters<typeof Access>[0]["db"];

/** An access database: list 1 belongs to account 1, every feed is open; both overridable. */
export function accessDb(overrides: Partial<AccessDb> = {}): AccessDb {
  return {
    ownsList: (id: unknown, account: string) =>
      Promise.resolve(String(id) === "1" && account === "1"),
    feedAccess: () => Promise.resolve({ localDisabled: false, remoteDisabled: false }),
    ...overrides,
  };
}

/** A WebSocket session's context over a fake hub and `db`. */
export function sessionContext(
  clientQueueBytes = 1 << 20,
  db: AccessDb = accessDb(),
  limits: Partial<SessionContext["limits"]> = {},
) {
  const fake = clientContext(clientQueueBytes);
  const context: SessionContext = {
    ...fake.context,
    access: new Access({ db }),
    log: silentLogger,
    limits: { ...DEFAULT_LIMITS, ...limits },
  };
  return { ...fake, context };
}
