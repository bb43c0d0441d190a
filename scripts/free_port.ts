/**
 * A free TCP port on the loopback interface, for throwaway servers started by
 * the scripts, the benchmarks and the tests.
 *
 * @module
 */

/** Asks the kernel for a free port on 127.0.0.1 and releases it at once. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}
