/**
 * Which address a request came from: `TRUSTED_PROXY_IP` entries (the presets
 * `loopback`, `linklocal`, `uniquelocal`, plain IPv4/IPv6 addresses, CIDR
 * ranges and IPv4 netmasks) compiled into a predicate, and the client address
 * found by walking `X-Forwarded-For` from the right while each hop is
 * trusted, the way Express's `trust proxy` does. IPv4 addresses are compared
 * as IPv4-mapped IPv6, so `::ffff:127.0.0.1` is loopback. Pure: proxy_addr.ts
 * never reads the environment, a socket or a header itself.
 *
 * @module
 */

/** Whether a hop (an address as text) is a trusted proxy; text that is no IP is never trusted. */
export type TrustProxy = (address: string) => boolean;

/** An address range: 16 bytes (IPv4 mapped into IPv6) and a prefix length from 0 to 128. */
interface Range {
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** The named sets of ranges `TRUSTED_PROXY_IP` accepts. */
export const PRESETS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  loopback: ["127.0.0.1/8", "::1/128"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
  uniquelocal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
});

const V4_MAPPED_PREFIX = 96;

/**
 * Compiles trust entries into a predicate.
 * Throws a RangeError naming the first entry that is not a preset, an address or a range.
 */
export function compileTrust(entries: readonly string[]): TrustProxy {
  const ranges: Range[] = [];
  for (const entry of entries) {
    const parsed = (Object.hasOwn(PRESETS, entry) ? PRESETS[entry] : [entry]).map(parseRange);
    if (parsed.some((range) => range === undefined)) {
      throw new RangeError(
        `expected loopback, linklocal, uniquelocal, an IP address or a CIDR range, got ${
          JSON.stringify(entry)
        }`,
      );
    }
    ranges.push(...parsed as Range[]);
  }
  return (address) => {
    const bytes = parseIp(address);
    return bytes !== undefined && ranges.some((range) => contains(range, bytes));
  };
}

/**
 * The client address: the peer unless it is trusted, else the rightmost
 * `X-Forwarded-For` hop that is not trusted (or the leftmost when all are).
 * `peer` undefined is a unix-socket peer: a local process, trusted when the
 * loopback address is, and logged as no address when the walk ends there.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | null,
  trust: TrustProxy,
): string | undefined {
  if (forwardedFor === null || !trust(peer ?? "127.0.0.1")) return peer;
  const hops = forwardedFor.split(",").map((hop) => hop.trim());
  let index = hops.length - 1;
  while (index > 0 && trust(hops[index])) index--;
  return hops[index];
}

/** An address or range: `a.b.c.d`, `a.b.c.d/n`, `a.b.c.d/m.m.m.m`, `x:y::z`, `x:y::z/n`. */
function parseRange(text: string): Range | undefined {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(address);
  if (bytes === undefined || address.includes("%")) return undefined;
  const v4 = parseIpv4(address) !== undefined;
  if (slash < 0) return { bytes, prefix: 128 };
  const length = text.slice(slash + 1);
  const bits = /^\d{1,3}$/.test(length) ? Number(length) : v4 ? netmaskBits(length) : undefined;
  if (bits === undefined || bits > (v4 ? 32 : 128)) return undefined;
  return { bytes, prefix: v4 ? V4_MAPPED_PREFIX + bits : bits };
}

/** The prefix length of a contiguous IPv4 netmask such as 255.255.240.0. */
function netmaskBits(text: string): number | undefined {
  const mask = parseIpv4(text);
  if (mask === undefined) return undefined;
  const value = ((mask[0] << 24) | (mask[1] << 16) | (mask[2] << 8) | mask[3]) >>> 0;
  const ones = Math.clz32(~value); // leading one bits of the mask
  return ones === 32 || ((value << ones) >>> 0) === 0 ? ones : undefined;
}

function contains(range: Range, bytes: Uint8Array): boolean {
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((range.bytes[i] & mask) !== (bytes[i] & mask)) return false;
  }
  return true;
}

/** An IPv4 or IPv6 address (an IPv6 zone is ignored) as 16 bytes; IPv4 becomes `::ffff:a.b.c.d`. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4);
  return parseIpv6(text.replace(/%[^%]+$/, ""));
}

/** Dotted decimal only, four parts from 0 to 255 without leading zeros. */
function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p))) return undefined;
  const bytes = parts.map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

/** Eight groups of up to four hex digits, one `::`, an optional dotted IPv4 tail. */
function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const words = [...head, ...new Array<number>(missing).fill(0), ...tail];
  return Uint8Array.from(words.flatMap((w) => [w >> 8, w & 0xff]));
}

/** Colon-separated hex groups as 16-bit words; a dotted IPv4 last group (if `last`) counts as two. */
function groups(text: string, last: boolean): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const words: number[] = [];
  for (const [i, part] of parts.entries()) {
    const v4 = last && i === parts.length - 1 ? parseIpv4(part) : undefined;
    if (v4 !== undefined) words.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    else if (/^[0-9a-f]{1,4}$/i.test(part)) words.push(parseInt(part, 16));
    else return undefined;
  }
  return words;
}
