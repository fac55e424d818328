// The one typed client of cellgate's REST API (/api/v1, same origin). Every call goes through
// call(): it sends the session cookie, adds the CSRF token to writes, turns the API's
// {"error":{"code","message","field"}} into an ApiError, and reports a 401 to the session.

// The types of requests and answers are not written here: they derive from the API's OpenAPI
// document (api/openapi.yaml), whose types npm run gen:api generates into ./api-schema.ts.
import type { components, paths } from "./api-schema";

type Schemas = components["schemas"];

/** An operator, as /me and /session return it. */
export type Operator = Schemas["Operator"];
/** What a device reported with its last heartbeat. */
export type Telemetry = Schemas["Telemetry"];
export type DeviceStatus = Schemas["DeviceStatus"];
/** A device (an operator's phone), as lists and writes show it. */
export type Device = Schemas["Device"];
/** A device as GET /devices/{id} shows it: with its DeviceMonitor's workflow id and Web UI link, and its tunnel. */
export type DeviceDetail = Schemas["DeviceDetail"];
/** One online/offline transition of a device. */
export type StatusEvent = Schemas["StatusEvent"];
export type Protocol = Schemas["Protocol"];
/** A connection's last usage reset. */
export type UsageReset = Schemas["UsageReset"];
/** A proxy connection, as the writes that change it answer. */
export type Connection = Schemas["Connection"];
/** A connection as the reads show it (list, one, reset): with its last reset and quota workflow link. */
export type ConnectionDetail = Schemas["ConnectionDetail"];
/** The answer that shows a password: the only moment it exists in plaintext. */
export type ConnectionWithPassword = Schemas["ConnectionWithPassword"];
/** The operator's webhook setting. */
export type WebhookSetting = Schemas["WebhookSetting"];
/** What "Send test" reports. */
export type WebhookTestResult = Schemas["WebhookTestResult"];
export type DeliveryStatus = Schemas["DeliveryStatus"];
export type WebhookEventType = Schemas["WebhookEventType"];
/** One logged webhook event and its delivery attempts. */
export type Delivery = Schemas["Delivery"];
/** The one-time password migration (issue #7), as GET /admin/password-migration shows it. */
export type PasswordMigration = Schemas["PasswordMigration"];

// An operation is a path of the document (under /api/v1) and one of its methods.
type Path = keyof paths;
type Method = "get" | "put" | "post" | "delete" | "patch";
/** The methods the document has for path P. */
type MethodOf<P extends Path> = { [M in Method]-?: paths[P][M] extends { responses: unknown } ? M : never }[Method];
type Operation<P extends Path, M extends MethodOf<P>> = NonNullable<paths[P][M]>;
/** An operation's path or query parameters; never when it has none. */
type Params<P extends Path, M extends MethodOf<P>, In extends "path" | "query"> =
  Operation<P, M> extends { parameters: { [K in In]?: infer T } } ? NonNullable<T> : never;
type Success<R> = R[Extract<keyof R, 200 | 201 | 202 | 204>];
/** The JSON of an operation's successful answer (void for one without a body). */
type Answer<P extends Path, M extends MethodOf<P>> =
  Operation<P, M> extends { responses: infer R }
    ? Success<R> extends { content: { "application/json": infer B } }
      ? B
      : void
    : never;
type Body<P extends Path, M extends MethodOf<P>> =
  Operation<P, M> extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

/** What a call of an operation takes: its path parameters, query and body as the document has them. */
type CallOptions<P extends Path, M extends MethodOf<P>> = {
  /** Do not report a 401 to the session (login, and the first /me). */
  quiet401?: boolean;
} & ([Params<P, M, "path">] extends [never] ? { params?: never } : { params: Params<P, M, "path"> }) &
  ([Params<P, M, "query">] extends [never] ? { query?: never } : { query?: Params<P, M, "query"> }) &
  ([Body<P, M>] extends [never] ? { body?: never } : { body: Body<P, M> });

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
  let err: Partial<Schemas["Error"]> | undefined;
  try {
    err = (JSON.parse(text) as Partial<Schemas["ErrorResponse"]>).error;
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

/** target is the path of an operation with its parameters filled in, and its query. */
function target(path: string, params?: Record<string, string>, q?: Record<string, string | number | undefined | null>): string {
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined) throw new Error(`no value for {${name}} of ${path}`);
    return encodeURIComponent(v);
  });
  return filled + query(q ?? {});
}

/**
 * call makes the request of an operation of the API's document: method and path as the
 * document has them ("get", "/devices/{id}"), with the path parameters, query and body it
 * takes, and answers what its successful answer holds.
 */
async function call<P extends Path, M extends MethodOf<P>>(method: M, path: P, opts: CallOptions<P, M>): Promise<Answer<P, M>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const o: RequestOptions = { body: opts.body, quiet401: opts.quiet401 };
  const params = opts.params as Record<string, string> | undefined;
  const q = opts.query as Record<string, string | number | undefined> | undefined;
  const res = await send(method.toUpperCase(), target(path, params, q), headers, o);
  if (res.status === 204) return undefined as Answer<P, M>;
  const text = await res.text();
  if (!res.ok) throw failure(res, text, o);
  try {
    return (text ? JSON.parse(text) : undefined) as Answer<P, M>;
  } catch {
    throw new ApiError(res.status, "invalid_answer", "The API's answer is not JSON.");
  }
}

/** callText is call for an answer that is not JSON (an OpenVPN profile). */
async function callText(path: "/connections/{id}/ovpn", params: { id: string }): Promise<string> {
  const res = await send("GET", target(path, params), {}, {});
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

/** The filters of the webhook delivery log. */
type DeliveryFilter = NonNullable<Params<"/webhook-deliveries", "get", "query">>;

/** The cellgate API, one function per endpoint the dashboard uses. */
export const api = {
  login: (email: string, password: string) => call("post", "/session", { body: { email, password }, quiet401: true }),
  logout: () => call("delete", "/session", {}),
  me: (opts?: { quiet401?: boolean }) => call("get", "/me", { quiet401: opts?.quiet401 }),

  /** Every device of the operator, following the pages. */
  devices: () =>
    all((after) =>
      call("get", "/devices", { query: { limit: 500, after } }).then((r) => ({ items: r.devices, next: r.next_after })),
    ),
  device: (id: string) => call("get", "/devices/{id}", { params: { id } }),
  createDevice: (name: string) => call("post", "/devices", { body: { name } }),
  renameDevice: (id: string, name: string) => call("patch", "/devices/{id}", { params: { id }, body: { name } }),
  deleteDevice: (id: string) => call("delete", "/devices/{id}", { params: { id } }),
  deviceEvents: (id: string, before?: number) =>
    call("get", "/devices/{id}/events", { params: { id }, query: { limit: 500, before } }),
  resetDeviceUsage: (id: string) => call("post", "/devices/{id}/reset-usage", { params: { id } }),

  /** Every connection of the operator, or of one device, following the pages. */
  connections: (deviceID?: string) =>
    all((after) =>
      call("get", "/connections", { query: { device_id: deviceID, limit: 500, after } }).then((r) => ({
        items: r.connections,
        next: r.next_after,
      })),
    ),
  connection: (id: string) => call("get", "/connections/{id}", { params: { id } }),
  createConnection: (body: Schemas["CreateConnectionRequest"]) => call("post", "/connections", { body }),
  updateConnection: (id: string, body: Schemas["UpdateConnectionRequest"]) =>
    call("patch", "/connections/{id}", { params: { id }, body }),
  deleteConnection: (id: string) => call("delete", "/connections/{id}", { params: { id } }),
  /** The connection's OpenVPN profile without credentials (it prompts for them). */
  profile: (id: string) => callText("/connections/{id}/ovpn", { id }),
  regeneratePassword: (id: string) => call("post", "/connections/{id}/regenerate-password", { params: { id } }),
  /** Resets the connection's usage and answers the connection after it. */
  resetUsage: (id: string) =>
    call("post", "/connections/{id}/reset-usage", { params: { id } }).then((r) => r.connection),

  webhook: () => call("get", "/settings/webhook", {}),
  saveWebhook: (url: string, enabled: boolean) => call("put", "/settings/webhook", { body: { url, enabled } }),
  rotateWebhookSecret: () => call("post", "/settings/webhook/rotate-secret", {}),
  testWebhook: () => call("post", "/settings/webhook/test", {}),
  deliveries: (f: DeliveryFilter) => call("get", "/webhook-deliveries", { query: { ...f, limit: f.limit ?? 50 } }),
  redeliver: (id: string) => call("post", "/webhook-deliveries/{id}/redeliver", { params: { id } }),

  passwordMigration: () => call("get", "/admin/password-migration", {}),
};

/** A message for a failed call, for a toast. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
