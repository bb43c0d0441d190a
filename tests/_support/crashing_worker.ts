/**
 * Sluice's real worker (`src/worker.ts`) that a test can make die: posting
 * a worker's number on the BroadcastChannel {@link CRASH_CHANNEL} throws an
 * uncaught error in that worker, as a bug would.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "../../src/worker.ts";

export const CRASH_CHANNEL = "sluice-test-crash";

let number = 0;
self.addEventListener("message", (event: MessageEvent) => {
  if (event.data?.type === "start") number = event.data.worker;
});
new BroadcastChannel(CRASH_CHANNEL).onmessage = (event: MessageEvent) => {
  if (event.data !== number) return;
  setTimeout(() => {
    throw new Error(`worker ${number} crashed on purpose`);
  });
};
