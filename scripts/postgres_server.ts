/**
 * A throwaway PostgreSQL for tests and `deno task dev`: `initdb` into a fresh
 * temporary directory, `postgres` on a free port (TCP on 127.0.0.1 plus a
 * private unix socket), database `mastodon_test` with the Mastodon schema and
 * (optionally) the seed from `test_data/`; optionally TLS (`tls`) with a
 * certificate the caller made. `stop()` kills the server and removes the
 * directory. It never touches a system cluster.
 *
 * As root, `initdb` and `postgres` run as the `postgres` user (through
 * `setpriv`, which execs in place, or `runuser`).
 *
 * @module
 */

import { freePort } from "./free_port.ts";

/** A running throwaway server. */
export interface PostgresServer {
  port: number;
  /** Always 127.0.0.1; use {@link PostgresServer.socketDir} as host for a unix-socket connection. */
  host: string;
  /** Directory holding the unix socket `.s.PGSQL.<port>`. */
  socketDir: string;
  database: string;
  user: string;
  /** `postgres://user@127.0.0.1:port/database` */
  url: string;
  /** Runs `psql -c sql` (tuples only, unaligned) and returns its output without the final newline. */
  query(sql: string): Promise<string>;
  /** Stops the server and removes its directory; safe to call twice. */
  stop(): Promise<void>;
  /** Stops the server, keeping its port and data, until `restart()`; for outage tests. */
  halt(): Promise<void>;
  /** Stops the server (unless halted) and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** What to load besides the schema. */
export interface PostgresServerOptions {
  /** Load test_data/mastodon-seed.sql (default true). */
  seed?: boolean;
  /** Serve TLS (`ssl=on`) with this certificate. */
  tls?: PostgresTlsFiles;
  /**
   * Require this password over TCP (scram-sha-256); the unix socket in
   * `socketDir` stays open without one, for `query()`.
   */
  password?: string;
}

/** PEM files for a server with TLS; they are copied into the server's directory. */
export interface PostgresTlsFiles {
  /** The server's certificate (for 127.0.0.1). */
  certFile: string;
  keyFile: string;
  /** Refuse TCP clients that do not use TLS (`hostssl` lines in pg_hba.conf). */
  only?: boolean;
}

const DATABASE = "mastodon_test";
const USER = "postgres";
const READY_LINE = "database system is ready to accept connections";
const STOP_DEADLINE_MS = 10_000;
const START_ATTEMPTS = 3;
const MISSING_HINT = "Install the Debian package `postgresql` (sudo apt-get install postgresql) " +
  "or run `bash scripts/ensure_services.sh`.";

/** Starts a fresh server with the Mastodon schema (and seed unless `seed: false`). */
export async function startPostgresServer(
  options: PostgresServerOptions = {},
): Promise<PostgresServer> {
  const binDir = await findPostgresBinDir();
  const runAs = await runAsPrefix();
  const dir = await makeServerDir(runAs.owner);
  const server = new ThrowawayPostgres(binDir, runAs.prefix, dir);
  try {
    await server.initialise(
      options.seed ?? true,
      options.tls && await copyTls(options.tls, dir, runAs.owner),
      options.password && await writePasswordFile(options.password, dir, runAs.owner),
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** The directory holding `initdb`, `postgres` and (usually) `psql`. */
export async function findPostgresBinDir(): Promise<string> {
  const onPath = await which("initdb");
  if (onPath) {
    const dir = dirname(await Deno.realPath(onPath));
    if (await exists(`${dir}/postgres`)) return dir;
  }
  const versions = await listDebianVersions();
  for (const version of versions) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (await exists(`${dir}/initdb`) && await exists(`${dir}/postgres`)) return dir;
  }
  throw new Error(
    `PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin. ${MISSING_HINT}`,
  );
}

/** `psql` beside the server binaries, else the one on PATH. */
export async function findPsql(binDir: string): Promise<string> {
  if (await exists(`${binDir}/psql`)) return `${binDir}/psql`;
  const onPath = await which("psql");
  if (onPath) return onPath;
  throw new Error(`psql not found. ${MISSING_HINT}`);
}

class ThrowawayPostgres implements PostgresServer {
  readonly host = "127.0.0.1";
  readonly database = DATABASE;
  readonly user = USER;
  port = 0;
  readonly socketDir: string;
  readonly #binDir: string;
  readonly #runAs: string[];
  readonly #dataDir: string;
  #process?: PostgresProcess;
  #stopped?: Promise<void>;
  /** `-c` settings for TLS, when it is on. */
  #tlsSettings: string[] = [];

  constructor(binDir: string, runAs: string[], dir: string) {
    this.#binDir = binDir;
    this.#runAs = runAs;
    this.socketDir = dir;
    this.#dataDir = `${dir}/data`;
  }

  get url(): string {
    return `postgres://${USER}@127.0.0.1:${this.port}/${DATABASE}`;
  }

  async initialise(seed: boolean, tls?: CopiedTls, passwordFile?: string): Promise<void> {
    const auth = passwordFile === undefined
      ? ["-A", "trust"]
      : ["--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${passwordFile}`];
    await run(this.#command(`${this.#binDir}/initdb`, [
      ...["-D", this.#dataDir, ...auth, "-U", USER, "-E", "UTF8"],
      ...["--no-locale", "--no-sync", "--no-instructions"],
    ]));
    if (tls !== undefined) {
      this.#tlsSettings = ["ssl=on", `ssl_cert_file=${tls.certFile}`, `ssl_key_file=${tls.keyFile}`]
        .flatMap((setting) => ["-c", setting]);
      if (tls.only) await requireTls(`${this.#dataDir}/pg_hba.conf`);
    }
    await this.#launchOnFreePort();
    await this.#psql("postgres", ["-c", `CREATE DATABASE ${DATABASE}`]);
    const files = ["mastodon-schema.sql", ...(seed ? ["mastodon-seed.sql"] : [])];
    await this.#psql(DATABASE, files.flatMap((file) => ["-f", testDataPath(file)]));
  }

  query(sql: string): Promise<string> {
    return this.#psql(DATABASE, ["-c", sql]);
  }

  halt(): Promise<void> {
    return this.#shutdown();
  }

  async restart(): Promise<void> {
    await this.#shutdown();
    this.#process = await PostgresProcess.launch(this.#postgresCommand());
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#shutdown();
      await Deno.remove(this.socketDir, { recursive: true }).catch(() => {});
    })();
    return this.#stopped;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #launchOnFreePort(): Promise<void> {
    for (let attempt = 1;; attempt++) {
      this.port = freePort();
      try {
        this.#process = await PostgresProcess.launch(this.#postgresCommand());
        return;
      } catch (error) {
        // Someone may have taken the port between freePort() and the bind.
        if (attempt >= START_ATTEMPTS) throw error;
      }
    }
  }

  async #shutdown(): Promise<void> {
    const process = this.#process;
    this.#process = undefined;
    await process?.stop(await this.#postmasterPid());
  }

  async #postmasterPid(): Promise<number | undefined> {
    const text = await Deno.readTextFile(`${this.#dataDir}/postmaster.pid`).catch(() => "");
    const pid = Number.parseInt(text.split("\n")[0], 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  #postgresCommand(): Deno.Command {
    return this.#command(`${this.#binDir}/postgres`, [
      ...["-D", this.#dataDir, "-p", String(this.port), "-k", this.socketDir],
      ...["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "lc_messages=C"],
      ...["-c", "full_page_writes=off", "-c", "synchronous_commit=off"],
      ...this.#tlsSettings,
    ], "null");
  }

  /** A server binary, run as the postgres user when we are root; stderr is always piped. */
  #command(program: string, args: string[], stdout: "piped" | "null" = "piped"): Deno.Command {
    const [runner, ...prefix] = [...this.#runAs, program];
    return new Deno.Command(runner, {
      args: [...prefix, ...args],
      stdin: "null",
      stdout,
      stderr: "piped",
      env: { LC_ALL: "C" },
    });
  }

  async #psql(database: string, args: string[]): Promise<string> {
    const psql = await findPsql(this.#binDir);
    const output = await run(
      new Deno.Command(psql, {
        args: [
          ...["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
          ...["-h", this.socketDir, "-p", String(this.port), "-U", USER, "-d", database],
          ...args,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
    );
    return output.replace(/\n$/, "");
  }
}

/** One `postgres` child: its stderr is drained (and the tail kept for errors). */
class PostgresProcess {
  readonly #child: Deno.ChildProcess;
  readonly #log: string[] = [];
  readonly #drained: Promise<void>;
  readonly #ready = Promise.withResolvers<void>();

  private constructor(command: Deno.Command) {
    this.#child = command.spawn();
    this.#drained = this.#drain();
  }

  /** Spawns the server and resolves once it accepts connections. */
  static async launch(command: Deno.Command): Promise<PostgresProcess> {
    const process = new PostgresProcess(command);
    try {
      await process.#ready.promise;
    } catch (error) {
      await process.#drained;
      await process.#child.status;
      throw error;
    }
    return process;
  }

  /** Fast shutdown (SIGINT to the postmaster), SIGQUIT after a deadline. */
  async stop(postmasterPid: number | undefined): Promise<void> {
    this.#signal(postmasterPid, "SIGINT");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), STOP_DEADLINE_MS);
    });
    const result = await Promise.race([this.#child.status, deadline]);
    if (result === "late") this.#signal(postmasterPid, "SIGQUIT");
    clearTimeout(timer);
    await this.#child.status;
    await this.#drained;
  }

  #signal(postmasterPid: number | undefined, signal: Deno.Signal): void {
    try {
      // Through runuser the child is not the postmaster, so prefer the pid file.
      if (postmasterPid === undefined) this.#child.kill(signal);
      else Deno.kill(postmasterPid, signal);
    } catch {
      // Already gone (e.g. Ctrl-C reached the whole process group).
    }
  }

  async #drain(): Promise<void> {
    let pending = "";
    const lines = this.#child.stderr.pipeThrough(new TextDecoderStream());
    for await (const chunk of lines) {
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const line of parts) this.#record(line);
    }
    this.#record(pending);
    const tail = this.#log.join("\n");
    this.#ready.reject(new Error(`postgres exited before accepting connections:\n${tail}`));
  }

  #record(line: string): void {
    if (line.includes(READY_LINE)) this.#ready.resolve();
    this.#log.push(line);
    if (this.#log.length > 40) this.#log.shift();
  }
}

/** How to run server binaries: as the `postgres` user when we are root. */
async function runAsPrefix(): Promise<{ prefix: string[]; owner?: [number, number] }> {
  if (Deno.uid() !== 0) return { prefix: [] };
  const owner = await lookupUser(USER);
  if (await which("setpriv")) {
    return {
      prefix: ["setpriv", `--reuid=${USER}`, `--regid=${USER}`, "--init-groups", "--"],
      owner,
    };
  }
  return { prefix: ["runuser", "-u", USER, "--"], owner };
}

async function lookupUser(name: string): Promise<[number, number]> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return [Number(uid), Number(gid)];
  }
  throw new Error(
    `Running as root, but there is no "${name}" user to run PostgreSQL as. ${MISSING_HINT}`,
  );
}

async function makeServerDir(owner?: [number, number]): Promise<string> {
  // As root, use /tmp so the postgres user can reach the directory whatever TMPDIR says.
  const dir = await Deno.makeTempDir({ prefix: "sluice-pg-", dir: owner ? "/tmp" : undefined });
  if (owner) await Deno.chown(dir, ...owner);
  return dir;
}

/** Where the certificate and key were copied to, readable by the server only. */
interface CopiedTls {
  certFile: string;
  keyFile: string;
  only?: boolean;
}

/** Copies the PEM files into `dir` (mode 0600, owned by the server's user when we are root). */
async function copyTls(
  tls: PostgresTlsFiles,
  dir: string,
  owner?: [number, number],
): Promise<CopiedTls> {
  const copied = { certFile: `${dir}/server.crt`, keyFile: `${dir}/server.key`, only: tls.only };
  for (const [from, to] of [[tls.certFile, copied.certFile], [tls.keyFile, copied.keyFile]]) {
    await Deno.copyFile(from, to);
    await Deno.chmod(to, 0o600); // postgres refuses a key others can read
    if (owner) await Deno.chown(to, ...owner);
  }
  return copied;
}

/** Writes the superuser's password for `initdb --pwfile` into `dir`, readable by the server only. */
async function writePasswordFile(
  password: string,
  dir: string,
  owner?: [number, number],
): Promise<string> {
  const file = `${dir}/password`;
  await Deno.writeTextFile(file, password + "\n", { mode: 0o600 });
  if (owner) await Deno.chown(file, ...owner);
  return file;
}

/** Turns pg_hba.conf's TCP lines (`host`) into TLS-only ones (`hostssl`). */
async function requireTls(hbaFile: string): Promise<void> {
  const text = await Deno.readTextFile(hbaFile);
  await Deno.writeTextFile(hbaFile, text.replace(/^host(\s)/gm, "hostssl$1"));
}

/** Runs a command to completion; returns stdout or throws with its stderr. */
async function run(command: Deno.Command): Promise<string> {
  const { success, code, stdout, stderr } = await command.output();
  const decoder = new TextDecoder();
  if (!success) {
    throw new Error(`command failed with exit code ${code}:\n${decoder.decode(stderr).trim()}`);
  }
  return decoder.decode(stdout);
}

function testDataPath(file: string): string {
  return decodeURIComponent(new URL(`../test_data/${file}`, import.meta.url).pathname);
}

async function which(name: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

async function listDebianVersions(): Promise<string[]> {
  const versions: string[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) versions.push(entry.name);
  } catch {
    return [];
  }
  return versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}
