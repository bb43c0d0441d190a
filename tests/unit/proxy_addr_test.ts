import assert from "node:assert/strict";
import { clientAddress, compileTrust, parseIp, PRESETS } from "../../src/proxy_addr.ts";

Deno.test("Trust entries match the addresses of their ranges, IPv4-mapped peers included", async (t) => {
  const table: Array<[entry: string, trusted: string[], untrusted: string[]]> = [
    [
      "loopback",
      [
        "127.0.0.1",
        "127.255.255.254",
        "::1",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
      ],
      ["128.0.0.1", "126.255.255.255", "::2", "::", "::ffff:128.0.0.1"],
    ],
    [
      "linklocal",
      ["169.254.0.1", "169.254.255.255", "fe80::1", "febf:ffff::1", "fe80::1%eth0"],
      ["169.253.0.1", "169.255.0.1", "fec0::1", "fe7f::1"],
    ],
    [
      "uniquelocal",
      [
        "10.0.0.0",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.5.5",
        "fc00::1",
        "fdff:ffff::1",
        "::ffff:10.1.2.3",
        "::ffff:a01:203",
        "::FFFF:192.168.0.1",
      ],
      ["11.0.0.0", "172.15.255.255", "172.32.0.0", "192.169.0.0", "fe00::1", "fbff::1"],
    ],
    ["203.0.113.5", ["203.0.113.5", "::ffff:203.0.113.5"], ["203.0.113.6", "203.0.113.50"]],
    ["2001:db8::1", ["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:db8::0.0.0.1"], ["2001:db8::2"]],
    ["198.51.100.0/24", ["198.51.100.0", "198.51.100.255"], ["198.51.101.0", "198.51.99.255"]],
    ["198.51.100.77/24", ["198.51.100.1"], ["198.51.101.77"]],
    ["0.0.0.0/0", ["1.2.3.4", "255.255.255.255", "::ffff:8.8.8.8"], ["::1", "2001:db8::1"]],
    ["::/0", ["::1", "2001:db8::1", "1.2.3.4"], ["not-an-ip"]],
    ["2001:db8::/32", ["2001:db8::", "2001:db8:ffff:ffff::1"], ["2001:db9::", "2001:db7::"]],
    ["2001:db8::/33", ["2001:db8:7fff::1"], ["2001:db8:8000::1"]],
    ["10.0.0.0/255.255.0.0", ["10.0.9.9", "10.0.255.255"], ["10.1.0.0"]],
    ["10.0.0.0/255.255.255.255", ["10.0.0.0"], ["10.0.0.1"]],
    ["10.0.0.0/0.0.0.0", ["200.1.1.1"], ["::1"]],
    ["::ffff:192.0.2.0/120", ["192.0.2.77", "::ffff:192.0.2.1"], ["192.0.3.1"]],
    ["1:2:3:4:5:6:7:8", ["1:2:3:4:5:6:7:8"], ["1:2:3:4:5:6:7:9", "1:2:3:4:5:6:7"]],
  ];
  for (const [entry, trusted, untrusted] of table) {
    await t.step(entry, () => {
      const trust = compileTrust([entry]);
      for (const address of trusted) assert.ok(trust(address), `${address} is in ${entry}`);
      for (const address of untrusted) assert.ok(!trust(address), `${address} is not in ${entry}`);
    });
  }
});

Deno.test("Text that is not an IP address is never a trusted hop", () => {
  const trust = compileTrust(["0.0.0.0/0", "::/0"]);
  const notIps = [
    "",
    "unknown",
    "localhost",
    "1.2.3.4:80",
    "[::1]",
    "[::1]:80",
    "127.1",
    "010.0.0.1",
    "1.2.3.256",
    "1.2.3.4.5",
    "::1::",
    ":::",
    "1:2:3:4:5:6:7:8:9",
    "12345::",
    "1.2.3.4::",
    "g::1",
  ];
  for (const text of notIps) {
    assert.equal(parseIp(text), undefined, text);
    assert.ok(!trust(text), text);
  }
});

Deno.test("An entry that is no preset, address or range is refused by name", () => {
  const invalid = [
    "foo",
    "true",
    "LOOPBACK",
    "constructor",
    "10.0.0.0/33",
    "10.0.0.0/",
    "10.0.0.0/abc",
    "10.0.0.0/255.0.255.0",
    "::/129",
    "2001:db8::/ffff::",
    "256.0.0.1",
    "1.2.3",
    "fe80::1%eth0",
    "127.0.0.1:8080",
  ];
  for (const entry of invalid) {
    assert.throws(() => compileTrust(["loopback", entry]), {
      name: "RangeError",
      message: `expected loopback, linklocal, uniquelocal, an IP address or a CIDR range, got ${
        JSON.stringify(entry)
      }`,
    }, entry);
  }
});

Deno.test("The presets are Express's loopback, linklocal and uniquelocal", () => {
  assert.deepEqual(Object.keys(PRESETS), ["loopback", "linklocal", "uniquelocal"]);
  assert.ok(!compileTrust([])("127.0.0.1"), "an empty list trusts nobody");
});

Deno.test("The client address walks X-Forwarded-For from the right while hops are trusted", async (t) => {
  const local = compileTrust(["loopback", "uniquelocal"]);
  const onlyOne = compileTrust(["10.0.0.1"]);
  const table: Array<
    [name: string, peer: string | undefined, xff: string | null, trust: typeof local, string?]
  > = [
    ["no header: the peer", "127.0.0.1", null, local, "127.0.0.1"],
    ["untrusted peer: its header is ignored", "198.51.100.9", "203.0.113.7", local, "198.51.100.9"],
    ["trusted peer: the hop it forwarded", "127.0.0.1", "203.0.113.7", local, "203.0.113.7"],
    ["spoofed left hops are ignored", "127.0.0.1", "6.6.6.6, 203.0.113.7", local, "203.0.113.7"],
    [
      "a chain of trusted proxies",
      "10.0.0.2",
      "198.51.100.1, 203.0.113.7, 10.0.0.1",
      local,
      "203.0.113.7",
    ],
    ["all hops trusted: the leftmost", "127.0.0.1", "10.0.0.5, 192.168.1.1", local, "10.0.0.5"],
    ["spaces and tabs around hops", "127.0.0.1", " 203.0.113.7 ,\t10.0.0.1", local, "203.0.113.7"],
    ["a hop that is no IP stops the walk", "127.0.0.1", "1.1.1.1, junk", local, "junk"],
    ["IPv4-mapped peer", "::ffff:127.0.0.1", "203.0.113.7", local, "203.0.113.7"],
    ["IPv6 peer and hop", "::1", "2001:db8::7", local, "2001:db8::7"],
    ["one trusted address", "10.0.0.1", "203.0.113.7", onlyOne, "203.0.113.7"],
    ["one trusted address, another peer", "10.0.0.2", "203.0.113.7", onlyOne, "10.0.0.2"],
    ["unix peer, loopback trusted: the hop", undefined, "203.0.113.7", local, "203.0.113.7"],
    ["unix peer without a header: no address", undefined, null, local, undefined],
    ["unix peer, loopback not trusted: no address", undefined, "203.0.113.7", onlyOne, undefined],
  ];
  for (const [name, peer, xff, trust, expected] of table) {
    await t.step(name, () => assert.equal(clientAddress(peer, xff, trust), expected));
  }
});
