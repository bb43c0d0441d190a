import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseConfig } from "../../src/config.ts";
import { certificateError, readinessDetail, TlsCertificateError } from "../../src/tls.ts";

const SERVER = { host: "db.internal", port: 5432 };
const DEFAULT = { kind: "default" } as const;
const SET_IT = "set NODE_EXTRA_CA_CERTS to the CA's PEM file";

/** A rejection as Deno.startTls (rustls) reports it. */
function rustls(detail: string): Error {
  return new Deno.errors.InvalidData(`invalid peer certificate: ${detail}`);
}

/** A rejection as node:tls reports it (what node-postgres passes on). */
function nodeTls(code: string): Error {
  return Object.assign(new Error("certificate problem"), { code });
}

Deno.test("certificateError explains each kind of rejected certificate in one line", async (t) => {
  const table: [string, Error, string][] = [
    [
      "rustls: unknown issuer",
      rustls("UnknownIssuer"),
      `is not trusted (unknown issuer); ${SET_IT}`,
    ],
    [
      "rustls: a CA of the same name",
      rustls("BadSignature"),
      `is not trusted (bad signature); ${SET_IT}`,
    ],
    [
      "rustls: another name",
      rustls('certificate not valid for name "db.internal"; certificate is only valid for …'),
      "is not valid for db.internal",
    ],
    ["rustls: expired", rustls("certificate expired: verification time 2, but …"), "has expired"],
    [
      "rustls: anything else",
      rustls("UnsupportedSignatureAlgorithm"),
      "is not accepted (invalid peer certificate: UnsupportedSignatureAlgorithm)",
    ],
    [
      "node:tls as Deno reports an unknown issuer",
      nodeTls("UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
      `is not trusted (unknown issuer or expired); ${SET_IT}`,
    ],
    [
      "node:tls: self-signed in chain",
      nodeTls("SELF_SIGNED_CERT_IN_CHAIN"),
      `is not trusted (unknown issuer); ${SET_IT}`,
    ],
    [
      "node:tls: self-signed",
      nodeTls("DEPTH_ZERO_SELF_SIGNED_CERT"),
      `is not trusted (self-signed); ${SET_IT}`,
    ],
    [
      "node:tls: another name",
      nodeTls("ERR_TLS_CERT_ALTNAME_INVALID"),
      "is not valid for db.internal",
    ],
    ["node:tls: expired", nodeTls("CERT_HAS_EXPIRED"), "has expired"],
  ];
  for (const [name, err, problem] of table) {
    await t.step(name, () => {
      const explained = certificateError(err, SERVER, DEFAULT);
      assert.ok(explained instanceof TlsCertificateError);
      assert.equal(explained.message, `TLS certificate of db.internal:5432 ${problem}`);
    });
  }
});

Deno.test("certificateError's hint follows where the trusted CAs come from", () => {
  const untrusted = rustls("UnknownIssuer");
  const extraCa = { file: "/etc/ssl/private-ca.pem", pem: "" };
  const message = (trust: Parameters<typeof certificateError>[2]) =>
    certificateError(untrusted, { host: "::1", port: 6380 }, trust)?.message;
  assert.equal(
    message({ kind: "default", extraCa }),
    "TLS certificate of [::1]:6380 is not trusted (unknown issuer); " +
      "NODE_EXTRA_CA_CERTS (/etc/ssl/private-ca.pem) does not hold the CA that signed it",
  );
  assert.equal(
    message({ kind: "sslrootcert" }),
    "TLS certificate of [::1]:6380 is not trusted (unknown issuer); " +
      "DATABASE_URL's sslrootcert does not hold the CA that signed it",
  );
});

Deno.test("certificateError leaves other failures alone", () => {
  const others = [
    new Deno.errors.ConnectionRefused("Connection refused (os error 111)"),
    new Deno.errors.InvalidData("received corrupt message of type InvalidContentType"),
    Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    "a string",
  ];
  for (const err of others) assert.equal(certificateError(err, SERVER, DEFAULT), undefined);
});

Deno.test("readinessDetail adds the certificate problem, and nothing for other failures", () => {
  const explained = certificateError(rustls("UnknownIssuer"), SERVER, DEFAULT);
  assert.equal(readinessDetail(explained), ": TLS certificate is not trusted (unknown issuer)");
  assert.equal(readinessDetail(new Error("ECONNREFUSED 10.0.0.5:5432")), "");
  assert.equal(readinessDetail(undefined), "");
});

const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

function configWith(entries: Record<string, string>, files: Record<string, string> = {}) {
  return parseConfig((name) => entries[name], { readTextFile: (path) => files[path] });
}

Deno.test("NODE_EXTRA_CA_CERTS is read once for Redis and PostgreSQL", async (t) => {
  await t.step("its file goes to both connections", () => {
    const config = configWith({ NODE_EXTRA_CA_CERTS: "/ca.pem" }, { "/ca.pem": CA_PEM });
    const extraCa = { file: "/ca.pem", pem: CA_PEM };
    assert.deepEqual(config.redis.extraCa, extraCa);
    assert.deepEqual(config.postgres.extraCa, extraCa);
  });
  await t.step("unset or empty: neither has one", () => {
    for (const entries of [{}, { NODE_EXTRA_CA_CERTS: "" }] as Record<string, string>[]) {
      const config = configWith(entries);
      assert.equal(config.redis.extraCa, undefined);
      assert.equal(config.postgres.extraCa, undefined);
    }
  });
});

Deno.test("a bad NODE_EXTRA_CA_CERTS stops start-up with one line", async (t) => {
  const table: [string, () => unknown, string][] = [
    [
      "a missing file",
      () => configWith({ NODE_EXTRA_CA_CERTS: "/missing.pem" }),
      'Cannot read NODE_EXTRA_CA_CERTS: no file "/missing.pem"',
    ],
    [
      "a file without a PEM certificate",
      () =>
        configWith({ NODE_EXTRA_CA_CERTS: "/key.pem" }, {
          "/key.pem": "-----BEGIN PRIVATE KEY-----",
        }),
      'Cannot parse NODE_EXTRA_CA_CERTS: "/key.pem" holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    ],
    [
      "set in the env file only",
      () =>
        parseConfig((name) => name === "NODE_EXTRA_CA_CERTS" ? "/ca.pem" : undefined, {
          readTextFile: () => CA_PEM,
          processEnv: () => undefined,
        }),
      "NODE_EXTRA_CA_CERTS is set in the env file: set it in the process environment instead " +
      "(e.g. Environment= in the systemd unit), where the TLS runtime reads it, as Node does",
    ],
  ];
  for (const [name, run, message] of table) {
    await t.step(name, () => {
      assert.throws(run, (error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.equal(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("loadConfig refuses NODE_EXTRA_CA_CERTS from the env file", () => {
  const saved = Deno.env.get("NODE_EXTRA_CA_CERTS");
  Deno.env.delete("NODE_EXTRA_CA_CERTS");
  const file = Deno.makeTempFileSync({ suffix: ".env" });
  try {
    Deno.writeTextFileSync(file, `NODE_EXTRA_CA_CERTS=${file}\n`);
    assert.throws(() => loadConfig({ envFile: file }), /set in the env file/);
  } finally {
    Deno.removeSync(file);
    if (saved !== undefined) Deno.env.set("NODE_EXTRA_CA_CERTS", saved);
  }
});
