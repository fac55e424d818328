// The one typed client of cellgate's REST API (/api/v1, same origin). Every call goes through
// request(): it sends the session cookie, adds the CSRF token to writes, turns the API's
// {"error":{"code","message","field"}} into an ApiError, and reports a 401 to the session.

/** An operator, as /me and /session return it. */
export interface Operator {
  id: string;
  email: string;
  created_at: string;
}

/** What a device reports with each heartbeat; every field is optional. */
export interface Telemetry {
  battery: number | null;
  charging: boolean | null;
  signal_dbm: number | null;
  carrier: string | null;
  network_type: string | null;
  cellular_ip: string | null;
  app_version: string | null;
}

export type DeviceStatus = "online" | "offline" | "unknown";

/** A device (an operator's phone). */
export interface Device {
  id: string;
  name: string;
  status: DeviceStatus;
  status_changed_at: string | null;
  last_heartbeat_at: string | null;
  enrolled_at: string | null;
  tunnel_ip: string | null;
  has_tunnel_key: boolean;
  telemetry: Telemetry;
  created_at: string;
  updated_at: string;
  /** The device's DeviceMonitor in the Temporal Web UI, when the API knows the UI's address. */
  monitor_workflow_url?: string;
  /** Whether the relay holds a live tunnel session of the device; absent or null: unknown. */
  tunnel_live?: boolean | null;
}

/** One online/offline transition of a device. */
export interface StatusEvent {
  id: number;
  status: DeviceStatus;
  occurred_at: string;
}

export type Protocol = "openvpn" | "http" | "socks5";

/** The last usage reset of a connection (issue #6). */
export interface UsageReset {
  reset_at: string;
  used_before: number;
  requested_by: string;
}

/** A proxy connection. The fields marked optional arrive with issue #6. */
export interface Connection {
  id: string;
  device_id: string;
  name: string;
  protocol: Protocol;
  username: string;
  /** Bytes; 0 is unlimited. */
  bandwidth_limit: number;
  bandwidth_used: number;
  usage_epoch: number;
  cut_off: boolean;
  cut_off_at: string | null;
  enabled: boolean;
  password_changed_at: string;
  created_at: string;
  updated_at: string;
  last_reset?: UsageReset | null;
  quota_workflow_url?: string;
}

/** The answer that shows a password: the only moment it exists in plaintext. */
export interface ConnectionWithPassword {
  connection: Connection;
  password: string;
  /** The OpenVPN profile with the credentials inline, when the server has OpenVPN set up. */
  ovpn?: string;
}

/** The operator's webhook setting. */
export interface WebhookSetting {
  configured: boolean;
  url: string;
  enabled: boolean;
  secret: string;
  created_at: string | null;
  updated_at: string | null;
}

/** What "Send test" reports. */
export interface WebhookTestResult {
  event_id: string;
  status_code: number;
  latency_ms: number;
  error: string;
}

export type DeliveryStatus = "pending" | "delivered" | "failed" | "skipped";

/** One logged webhook event and its delivery attempts. */
export interface Delivery {
  id: string;
  device_id: string | null;
  connection_id: string | null;
  type: string;
  payload: unknown;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  latency_ms: number | null;
  last_attempt_at: string | null;
  delivered_at: string | null;
  created_at: string;
}

/**
 * The one-time password migration (issue #7), as GET /api/v1/admin/password-migration shows it
 * (api/admin.go, passwordMigrationJSON). Before it ever ran, status is not_started and total is
 * how many rows wait for it.
 */
export interface PasswordMigration {
  status: "not_started" | "running" | "completed" | "failed";
  /** Rows holding plaintext when it started (or waiting for it, before it started). */
  total: number;
  /** Rows that hold no plaintext now. */
  done: number;
  /** Rows left with plaintext. */
  failed: number;
  rows_per_second: number;
  started_at: string | null;
  /** Absent until it finished. */
  finished_at?: string;
  /** Why it failed; absent unless status is failed. */
  error?: string;
  /**
   * The run's history in the Temporal Web UI, or the list of the workflow's runs before it
   * started; "" when the server knows no Temporal Web UI.
   */
  workflow_url: string;
}

/** An error answer of the API, or a failure to reach it (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field?: string;

  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** Whether the API has no such route at all: the feature has not landed on this server. */
  get missingRoute(): boolean {
    return this.status === 404 && this.message === "no such route";
  }
}

// The session's CSRF token, from /session or /me: sent with every write. Kept in memory only.
let csrfToken = "";
// Called when the API answers 401 to a request made with a session.
let unauthorized: (() => void) | null = null;

/** Sets the CSRF token that writes carry. */
export function setCSRFToken(token: string) {
  csrfToken = token;
}

/** Sets what happens when the session turns out to be gone (expired or revoked). */
export function onUnauthorized(handler: (() => void) | null) {
  unauthorized = handler;
}

interface RequestOptions {
  body?: unknown;
  /** Do not report a 401 to the session (login, and the first /me). */
  quiet401?: boolean;
  signal?: AbortSignal;
}

/** send makes a request to the API, or throws the ApiError of a network failure. */
async function send(method: string, path: string, headers: Record<string, string>, opts: RequestOptions): Promise<Response> {
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  try {
    return await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The API cannot be reached. Check your connection and try again.");
  }
}

/** failure turns an error answer into an ApiError, reporting a 401 to the session. */
function failure(res: Response, text: string, opts: RequestOptions): ApiError {
  let err: { code?: string; message?: string; field?: string } | undefined;
  try {
    err = (JSON.parse(text) as { error?: typeof err }).error;
  } catch {
    err = undefined;
  }
  if (res.status === 401 && !opts.quiet401) unauthorized?.();
  return new ApiError(
    res.status,
    err?.code ?? "http_" + res.status,
    err?.message ?? `The API answered ${res.status} ${res.statusText}`.trim(),
    err?.field || undefined,
  );
}

async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await send(method, path, headers, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!res.ok) throw failure(res, text, opts);
  try {
    return (text ? JSON.parse(text) : undefined) as T;
  } catch {
    throw new ApiError(res.status, "invalid_answer", "The API's answer is not JSON.");
  }
}

/** requestText is request for an answer that is not JSON (an OpenVPN profile). */
async function requestText(path: string): Promise<string> {
  const res = await send("GET", path, {}, {});
  const text = await res.text();
  if (!res.ok) throw failure(res, text, {});
  return text;
}

/** Builds a query string from the defined, non-empty values. */
function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

const enc = encodeURIComponent;

/** The most pages all follows: 10,000 rows at 500 a page. */
const maxPages = 20;

/** all follows a list's next_after cursor and returns every row. */
async function all<T>(page: (after?: string) => Promise<{ items: T[]; next: string | null }>): Promise<T[]> {
  const out: T[] = [];
  let after: string | undefined;
  for (let i = 0; i < maxPages; i++) {
    const p = await page(after);
    out.push(...p.items);
    if (!p.next) break;
    after = p.next;
  }
  return out;
}

/** The cellgate API, one function per endpoint the dashboard uses. */
export const api = {
  login: (email: string, password: string) =>
    request<{ operator: Operator; csrf_token: string; expires_at: string }>("POST", "/session", {
      body: { email, password },
      quiet401: true,
    }),
  logout: () => request<void>("DELETE", "/session"),
  me: (opts?: { quiet401?: boolean }) =>
    request<{ operator: Operator; csrf_token?: string }>("GET", "/me", { quiet401: opts?.quiet401 }),

  /** Every device of the operator, following the pages. */
  devices: () =>
    all((after) =>
      request<{ devices: Device[]; next_after: string | null }>("GET", `/devices${query({ limit: 500, after })}`).then(
        (r) => ({ items: r.devices, next: r.next_after }),
      ),
    ),
  device: (id: string) => request<{ device: Device }>("GET", `/devices/${enc(id)}`),
  createDevice: (name: string) =>
    request<{ device: Device; enrollment_token: string }>("POST", "/devices", { body: { name } }),
  renameDevice: (id: string, name: string) =>
    request<{ device: Device }>("PATCH", `/devices/${enc(id)}`, { body: { name } }),
  deleteDevice: (id: string) => request<void>("DELETE", `/devices/${enc(id)}`),
  deviceEvents: (id: string, before?: number) =>
    request<{ events: StatusEvent[]; next_before: number | null }>(
      "GET",
      `/devices/${enc(id)}/events${query({ limit: 500, before })}`,
    ),
  resetDeviceUsage: (id: string) =>
    request<{ connections: Connection[] }>("POST", `/devices/${enc(id)}/reset-usage`),

  /** Every connection of the operator, or of one device, following the pages. */
  connections: (deviceID?: string) =>
    all((after) =>
      request<{ connections: Connection[]; next_after: string | null }>(
        "GET",
        `/connections${query({ device_id: deviceID, limit: 500, after })}`,
      ).then((r) => ({ items: r.connections, next: r.next_after })),
    ),
  connection: (id: string) => request<{ connection: Connection }>("GET", `/connections/${enc(id)}`),
  createConnection: (body: {
    device_id: string;
    name: string;
    protocol: Protocol;
    username?: string;
    password?: string;
    bandwidth_limit: number;
  }) => request<ConnectionWithPassword>("POST", "/connections", { body }),
  updateConnection: (id: string, body: { name?: string; bandwidth_limit?: number; enabled?: boolean }) =>
    request<{ connection: Connection }>("PATCH", `/connections/${enc(id)}`, { body }),
  deleteConnection: (id: string) => request<void>("DELETE", `/connections/${enc(id)}`),
  /** The connection's OpenVPN profile without credentials (it prompts for them). */
  profile: (id: string) => requestText(`/connections/${enc(id)}/ovpn`),
  regeneratePassword: (id: string) =>
    request<ConnectionWithPassword>("POST", `/connections/${enc(id)}/regenerate-password`),
  // The API answers 200 with the connection JSON after the reset (issue #6); it is wrapped
  // like every other connection answer, or bare: both are accepted.
  resetUsage: async (id: string): Promise<Connection> => {
    const res = await request<{ connection?: Connection } & Partial<Connection>>(
      "POST",
      `/connections/${enc(id)}/reset-usage`,
    );
    return (res.connection ?? res) as Connection;
  },

  webhook: () => request<WebhookSetting>("GET", "/settings/webhook"),
  saveWebhook: (url: string, enabled: boolean) =>
    request<WebhookSetting>("PUT", "/settings/webhook", { body: { url, enabled } }),
  rotateWebhookSecret: () => request<WebhookSetting>("POST", "/settings/webhook/rotate-secret"),
  testWebhook: () => request<WebhookTestResult>("POST", "/settings/webhook/test"),
  deliveries: (f: { device_id?: string; type?: string; status?: string; before?: string; limit?: number }) =>
    request<{ deliveries: Delivery[]; next_before: string | null }>(
      "GET",
      `/webhook-deliveries${query({ ...f, limit: f.limit ?? 50 })}`,
    ),
  redeliver: (id: string) =>
    request<{ id: string; workflow_id: string }>("POST", `/webhook-deliveries/${enc(id)}/redeliver`),

  passwordMigration: () => request<PasswordMigration>("GET", "/admin/password-migration"),
};

/** A message for a failed call, for a toast. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
