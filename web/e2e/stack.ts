// The real cellgate stack for the dashboard's browser tests: `cellgate dev` in a temp dir on free
// ports (a private Postgres, the Temporal dev server from bin/temporal, migrations, api + worker
// with short OfflineAfter and Cooldown, the demo fleet of simulated devices and its webhook
// receiver), with an OpenVPN server directory from `cellgate openvpn init` so connections get
// profiles. Nothing listens beyond 127.0.0.1, and nothing is fetched from the network.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import type { components } from "../src/lib/api-schema";

/** A running stack and what the tests need to drive it. */
export interface Stack {
  apiURL: string;
  /** The API's internal listener (CELLGATE_INTERNAL_URL of dev.env), which alone serves /internal/v1. */
  internalURL: string;
  email: string;
  password: string;
  internalToken: string;
  temporalUI: string;
  /** The stack's Postgres (DATABASE_URL of dev.env), for the commands that need it. */
  databaseURL: string;
  /** The Temporal dev server's frontend, host:port (TEMPORAL_ADDRESS of dev.env). */
  temporalAddress: string;
  /** The temp dir holding the stack's data; removed by stop. */
  dir: string;
  bin: string;
  temporalBin: string;
  /** The stack's log, which the commands run against it write to too; ended by stop. */
  log: WriteStream;
  /** Stops the stack (SIGINT, as Ctrl-C) and removes its data. */
  stop: () => Promise<void>;
}

export interface StackOptions {
  /** The cellgate binary, built with the dashboard (make build). */
  bin: string;
  /** The Temporal CLI (make bin/temporal). */
  temporalBin: string;
  /** Where the stack's log goes. */
  logFile: string;
  /** A device is offline this long after its last heartbeat. */
  offlineAfter: string;
  /** Least time between two offline alerts of a device. */
  cooldown: string;
  /** Simulated devices of the demo fleet (device 1 flaps). */
  demoDevices: number;
}

/** freePort returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** readEnv reads the KEY='value' lines of a dev.env. */
export async function readEnv(file: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const line of (await readFile(file, "utf8")).split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) v = v.slice(1, -1).replaceAll(`'\\''`, "'");
    env[m[1]] = v;
  }
  return env;
}

/** A child process whose output is logged and searchable. */
export class Proc {
  readonly child: ChildProcess;
  private out = "";
  private exited: Promise<number | null>;

  constructor(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, log: WriteStream) {
    this.child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const tee = (chunk: Buffer) => {
      const s = chunk.toString();
      this.out += s;
      if (this.out.length > 1 << 20) this.out = this.out.slice(-(1 << 19));
      log.write(s.replace(/^(?=.)/gm, `[${name}] `));
    };
    this.child.stdout!.on("data", tee);
    this.child.stderr!.on("data", tee);
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  get output(): string {
    return this.out;
  }

  /** waitOutput waits until the output holds s, failing when the process exits or time runs out. */
  async waitOutput(s: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.out.includes(s)) {
      if (this.child.exitCode !== null) {
        throw new Error(`exited with ${this.child.exitCode} before printing ${JSON.stringify(s)}:\n${this.out.slice(-4000)}`);
      }
      if (Date.now() > deadline) throw new Error(`did not print ${JSON.stringify(s)} in ${timeoutMs} ms:\n${this.out.slice(-4000)}`);
      await sleep(100);
    }
  }

  /** wait waits for the exit and returns its code (null: killed by a signal); kills it after timeoutMs. */
  async wait(timeoutMs: number): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  /** stop sends sig (SIGINT by default) and waits for the exit, killing it after graceMs. */
  async stop(sig: NodeJS.Signals = "SIGINT", graceMs = 60000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(sig);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** startStack starts `cellgate dev` and waits until the API is ready. */
export async function startStack(o: StackOptions): Promise<Stack> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "cellgate-web-"));
  // The private Postgres runs as the postgres user when we are root: it must enter the dir.
  await chmod(dir, 0o755);
  const log = createWriteStream(o.logFile, { flags: "w" });
  const [pgPort, temporalPort, uiPort, apiPort, internalPort, receiverPort, mgmtPort] = await Promise.all(
    Array.from({ length: 7 }, freePort),
  );
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CELLGATE_API_LISTEN: `127.0.0.1:${apiPort}`,
    CELLGATE_INTERNAL_LISTEN: `127.0.0.1:${internalPort}`,
    CELLGATE_OFFLINE_AFTER: o.offlineAfter,
    CELLGATE_ALERT_COOLDOWN: o.cooldown,
    CELLGATE_WEBHOOK_ALLOW_PRIVATE: "true",
    CELLGATE_OPENVPN_DIR: path.join(dir, "openvpn"),
    CELLGATE_LOG_LEVEL: "info",
  };
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;

  const init = new Proc("openvpn-init", o.bin, [
    "openvpn", "init", "--dir", path.join(dir, "openvpn"), "--public-host", "127.0.0.1",
    "--management", `127.0.0.1:${mgmtPort}`, "--internal-url", `http://127.0.0.1:${internalPort}`,
    "--internal-token", "web-test-internal-token-0123456789",
  ], env, log);
  if ((await init.wait(60000)) !== 0) {
    throw new Error(`cellgate openvpn init failed:\n${init.output}`);
  }

  const dev = new Proc("dev", o.bin, [
    "dev", "--data-dir", path.join(dir, "data"), "--temporal-bin", o.temporalBin,
    "--pg-port", String(pgPort), "--temporal-port", String(temporalPort), "--temporal-ui-port", String(uiPort),
    "--demo", String(o.demoDevices), "--demo-receiver-port", String(receiverPort), "--tunnel", "false",
  ], env, log);
  const stop = async () => {
    const code = await dev.stop("SIGINT", 60000);
    log.write(`[harness] cellgate dev exited with ${code}\n`);
    await new Promise((r) => log.end(r));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await dev.waitOutput("cellgate dev is running", 180000);
    const vars = await readEnv(path.join(dir, "data", "dev.env"));
    const stack: Stack = {
      apiURL: vars.CELLGATE_API_URL,
      internalURL: vars.CELLGATE_INTERNAL_URL,
      email: vars.CELLGATE_OPERATOR_EMAIL,
      password: vars.CELLGATE_OPERATOR_PASSWORD,
      internalToken: vars.CELLGATE_INTERNAL_TOKEN,
      temporalUI: vars.TEMPORAL_UI_URL,
      databaseURL: vars.DATABASE_URL,
      temporalAddress: vars.TEMPORAL_ADDRESS,
      dir,
      bin: o.bin,
      temporalBin: o.temporalBin,
      log,
      stop,
    };
    await waitReady(stack.apiURL, 120000);
    return stack;
  } catch (e) {
    await stop();
    throw e;
  }
}

/** waitReady waits until GET /readyz answers 200 (Postgres and Temporal up). */
async function waitReady(apiURL: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${apiURL}/readyz`);
      if (res.ok) return;
      last = `${res.status} ${await res.text()}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(250);
  }
  throw new Error(`${apiURL}/readyz not ready in ${timeoutMs} ms: ${last}`);
}

/** startSimulator runs `cellgate agent --simulate n` as the stack's operator, heartbeating every second. */
export function startSimulator(s: Stack, n: number, prefix: string, log: WriteStream): Proc {
  return new Proc(`agent ${prefix}`, s.bin, [
    "agent", "--simulate", String(n), "--api", s.apiURL, "--prefix", prefix,
    "--state", path.join(s.dir, `${prefix}state.json`), "--interval", "1s", "--jitter", "0%", "--report-every", "0",
  ], { ...process.env, CELLGATE_OPERATOR_EMAIL: s.email, CELLGATE_OPERATOR_PASSWORD: s.password }, log);
}

/** postUsage reports cumulative usage through the relay's internal API, as a relay would. */
export async function postUsage(
  s: Stack,
  entries: { connection_id: string; session_id: string; epoch: number; rx_bytes: number; tx_bytes: number }[],
): Promise<void> {
  const res = await fetch(`${s.internalURL}/internal/v1/usage`, {
    method: "POST",
    headers: { Authorization: `Bearer ${s.internalToken}`, "Content-Type": "application/json" },
    body: JSON.stringify(entries),
  });
  if (!res.ok) throw new Error(`POST /internal/v1/usage = ${res.status} ${await res.text()}`);
}

/** A device enrolled by the tests, heartbeating through the device API. */
export class TestDevice {
  private constructor(
    private readonly apiURL: string,
    readonly id: string,
    private readonly token: string,
  ) {}

  /** enroll spends an enrollment token, as the agent does. */
  static async enroll(apiURL: string, enrollmentToken: string): Promise<TestDevice> {
    const res = await fetch(`${apiURL}/api/v1/device/enroll`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ enrollment_token: enrollmentToken }),
    });
    if (!res.ok) throw new Error(`POST /api/v1/device/enroll = ${res.status} ${await res.text()}`);
    const body = (await res.json()) as components["schemas"]["Enrollment"];
    return new TestDevice(apiURL, body.device_id, body.device_token);
  }

  /** heartbeat sends one heartbeat with telemetry. */
  async heartbeat(telemetry: components["schemas"]["TelemetryRequest"]): Promise<void> {
    const res = await fetch(`${this.apiURL}/api/v1/device/heartbeat`, {
      method: "POST",
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(telemetry),
    });
    if (res.status !== 204) throw new Error(`POST /api/v1/device/heartbeat = ${res.status} ${await res.text()}`);
  }
}

/** A proxy connection of an older system, with its password in plaintext. */
export interface LegacyRow {
  username: string;
  password: string;
  /** The name of one of the operator's devices. */
  device: string;
  protocol?: "openvpn" | "http" | "socks5";
  bandwidthLimit?: number;
  bandwidthUsed?: number;
}

/** csvField quotes a CSV field when it needs it. */
function csvField(v: string | number | undefined): string {
  const s = v === undefined ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/**
 * importLegacy writes rows to a CSV file (with a header row) and imports them as the stack's
 * operator's connections with plaintext passwords, as a deploy from an older system starts:
 * `cellgate import-legacy --operator EMAIL --file F` with the stack's DATABASE_URL. It returns
 * the command's output and fails unless every row was imported.
 */
export async function importLegacy(s: Stack, rows: LegacyRow[]): Promise<string> {
  const file = path.join(s.dir, `legacy-${Date.now()}.csv`);
  const lines = ["username,password,device,protocol,bandwidth_limit,bandwidth_used"];
  for (const r of rows) {
    lines.push([r.username, r.password, r.device, r.protocol, r.bandwidthLimit, r.bandwidthUsed].map(csvField).join(","));
  }
  await writeFile(file, lines.join("\n") + "\n", { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: s.databaseURL };
  const p = new Proc("import-legacy", s.bin, ["import-legacy", "--operator", s.email, "--file", file], env, s.log);
  const code = await p.wait(60000);
  if (code !== 0 || !p.output.includes(`imported ${rows.length} legacy connections`)) {
    throw new Error(`cellgate import-legacy exited with ${code}, want 0 and ${rows.length} rows imported:\n${p.output}`);
  }
  return p.output;
}

/**
 * startPasswordMigration starts the PasswordMigration workflow with the Temporal CLI on the
 * stack's dev server, as the runbook does (temporal workflow start --type PasswordMigration
 * --task-queue cellgate --workflow-id password-migration), with input (e.g. {BatchSize: 4}:
 * rows per batch, so that a few rows make several batches). It returns the run's ID.
 */
export async function startPasswordMigration(s: Stack, input: { BatchSize?: number } = {}): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TEMPORAL_ADDRESS;
  const p = new Proc("temporal", s.temporalBin, [
    "workflow", "start", "--type", "PasswordMigration", "--task-queue", "cellgate", "--workflow-id", "password-migration",
    "--address", s.temporalAddress, "--namespace", "default", "--input", JSON.stringify(input), "--output", "json",
  ], env, s.log);
  const code = await p.wait(60000);
  const runID = /"runId"\s*:\s*"([^"]+)"/.exec(p.output)?.[1];
  if (code !== 0 || !runID) {
    throw new Error(`temporal workflow start --type PasswordMigration exited with ${code}, want 0 and a run ID:\n${p.output}`);
  }
  return runID;
}
