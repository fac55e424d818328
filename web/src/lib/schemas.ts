// The forms' zod schemas: the same rules the API applies (api/errors.go, api/connections.go,
// credential.Validate), so most mistakes are caught before a request. The API still has the last
// word: its {"field"} errors are shown under the same inputs (see fieldErrors).
import { z } from "zod";

import { ApiError, type Protocol } from "@/lib/api";
import { limitUnits, type LimitUnit } from "@/lib/format";

/** The longest name of a device or connection, in characters (api.MaxNameLength). */
export const maxNameLength = 100;

const name = z
  .string()
  .trim()
  .min(1, "Enter a name.")
  .max(maxNameLength, `A name is at most ${maxNameLength} characters.`)
  .refine((s) => !/[\u0000-\u001f\u007f-\u009f]/.test(s), "A name cannot contain control characters.");

export const loginSchema = z.object({
  email: z.string().trim().min(1, "Enter your email.").max(254, "That email is too long."),
  password: z.string().min(1, "Enter your password."),
});

export const deviceSchema = z.object({ name });

/** The bandwidth limit as the form has it: a number and a unit, or unlimited. */
const limitFields = {
  unlimited: z.boolean(),
  limitValue: z.string().trim(),
  limitUnit: z.enum(Object.keys(limitUnits) as [LimitUnit, ...LimitUnit[]]),
};

function checkLimit(
  v: { unlimited: boolean; limitValue: string },
  ctx: z.RefinementCtx,
) {
  if (v.unlimited) return;
  const n = Number(v.limitValue);
  if (v.limitValue === "" || !Number.isFinite(n) || n <= 0) {
    ctx.addIssue({ code: "custom", path: ["bandwidth_limit"], message: "Enter a limit above 0, or choose unlimited." });
  }
}

/** toBandwidthLimit turns the form's limit into bytes; 0 is unlimited. */
export function toBandwidthLimit(v: { unlimited: boolean; limitValue: string; limitUnit: LimitUnit }): number {
  if (v.unlimited) return 0;
  return Math.round(Number(v.limitValue) * limitUnits[v.limitUnit]);
}

export const createConnectionSchema = z
  .object({
    name,
    device_id: z.string().min(1, "Choose the device whose mobile IP this connection uses."),
    protocol: z.enum(["openvpn", "http", "socks5"] as const satisfies readonly Protocol[]),
    username: z
      .string()
      .trim()
      .refine(
        (s) => s === "" || /^[A-Za-z0-9_.@-]{3,64}$/.test(s),
        "A username is 3 to 64 characters of A-Z a-z 0-9 _ . @ -",
      ),
    password: z
      .string()
      .refine((s) => s === "" || [...s].length >= 8, "A password is at least 8 characters.")
      .refine((s) => new TextEncoder().encode(s).length <= 72, "A password is at most 72 bytes."),
    ...limitFields,
  })
  .superRefine(checkLimit);

export type CreateConnectionForm = z.input<typeof createConnectionSchema>;

export const editConnectionSchema = z
  .object({ name, enabled: z.boolean(), ...limitFields })
  .superRefine(checkLimit);

export type EditConnectionForm = z.input<typeof editConnectionSchema>;

export const webhookSchema = z.object({
  url: z
    .string()
    .trim()
    .min(1, "Enter the URL your endpoint receives events at.")
    .max(2048, "A URL is at most 2048 bytes.")
    .refine((s) => {
      try {
        const u = new URL(s);
        return u.protocol === "http:" || u.protocol === "https:";
      } catch {
        return false;
      }
    }, "Enter an http:// or https:// URL."),
  enabled: z.boolean(),
});

/** Field errors by field name: from a failed zod check, or the API's error for one field. */
export type FieldErrors = Partial<Record<string, string>>;

/** zodErrors lists the first message of each field of a failed parse. */
export function zodErrors(e: z.ZodError): FieldErrors {
  const out: FieldErrors = {};
  for (const issue of e.issues) {
    const key = String(issue.path[0] ?? "");
    if (!(key in out)) out[key] = issue.message;
  }
  return out;
}

/**
 * apiFieldError returns the API's error as a field error when it names one of fields, else
 * null (the caller toasts it). The API's message is kept as it is, with its first letter up.
 */
export function apiFieldError(e: unknown, fields: readonly string[]): FieldErrors | null {
  if (!(e instanceof ApiError) || !e.field || !fields.includes(e.field)) return null;
  const msg = e.message.charAt(0).toUpperCase() + e.message.slice(1);
  return { [e.field]: msg.endsWith(".") ? msg : `${msg}.` };
}
