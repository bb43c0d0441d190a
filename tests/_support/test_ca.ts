/**
 * A throwaway certificate authority for TLS tests, made with `openssl` in a
 * temporary directory: a CA, a server certificate it signed for 127.0.0.1 and
 * localhost (subjectAltName), and a second, unrelated CA for wrong-trust
 * cases. Keys are P-256, valid for two days.
 *
 * @module
 */

/** PEM file paths of a throwaway CA and the server certificate it signed. */
export interface TestCa {
  dir: string;
  /** The CA certificate that signed `certFile`. */
  caFile: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  otherCaFile: string;
  /** Server certificate for IP:127.0.0.1 and DNS:localhost. */
  certFile: string;
  keyFile: string;
  /** Removes the directory. */
  remove(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SERVER_EXTENSIONS = [
  "subjectAltName=IP:127.0.0.1,DNS:localhost",
  "basicConstraints=CA:FALSE",
  "keyUsage=digitalSignature,keyEncipherment",
  "extendedKeyUsage=serverAuth",
].join("\n");

/** Makes a CA, a server certificate signed by it, and another CA. */
export async function makeTestCa(): Promise<TestCa> {
  const dir = await Deno.makeTempDir({ prefix: "sluice-ca-" });
  const remove = () => Deno.remove(dir, { recursive: true }).catch(() => {});
  const at = (file: string) => `${dir}/${file}`;
  try {
    await selfSigned(at("ca.key"), at("ca.pem"), "Sluice test CA");
    await selfSigned(at("other.key"), at("other.pem"), "Sluice unrelated CA");
    await openssl(["req", "-newkey", ...EC_KEY, "-nodes", "-keyout", at("server.key")]
      .concat(["-out", at("server.csr"), "-subj", "/CN=localhost"]));
    await Deno.writeTextFile(at("server.ext"), SERVER_EXTENSIONS + "\n");
    await openssl(
      ["x509", "-req", "-in", at("server.csr"), "-days", "2"]
        .concat(["-CA", at("ca.pem"), "-CAkey", at("ca.key"), "-CAcreateserial"])
        .concat(["-extfile", at("server.ext"), "-out", at("server.pem")]),
    );
    await Deno.chmod(dir, 0o755); // a server running as another user reads the files
  } catch (error) {
    await remove();
    throw error;
  }
  return {
    dir,
    caFile: at("ca.pem"),
    otherCaFile: at("other.pem"),
    certFile: at("server.pem"),
    keyFile: at("server.key"),
    remove,
    [Symbol.asyncDispose]: remove,
  };
}

const EC_KEY = ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

function selfSigned(keyFile: string, certFile: string, name: string): Promise<void> {
  return openssl(["req", "-x509", "-newkey", ...EC_KEY, "-nodes", "-days", "2"]
    .concat(["-keyout", keyFile, "-out", certFile, "-subj", `/CN=${name}`]));
}

async function openssl(args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, stdin: "null" }).output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error("openssl is not installed: install the Debian package openssl");
  }
  if (!output.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(output.stderr).trim()}`);
  }
}
