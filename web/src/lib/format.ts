// Formatting of bytes, times and durations for display. Byte units are decimal (1 GB is
// 1,000,000,000 bytes), as carriers and the bandwidth limit form count them.

const byteUnits = ["B", "KB", "MB", "GB", "TB", "PB"];

/** formatBytes(750e6) = "750 MB"; at most three significant digits. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "—";
  let i = 0;
  let v = n;
  while (v >= 1000 && i < byteUnits.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${Number(v.toFixed(digits))} ${byteUnits[i]}`;
}

/** Bytes per unit of the bandwidth limit form. */
export const limitUnits = { MB: 1e6, GB: 1e9, TB: 1e12 } as const;
export type LimitUnit = keyof typeof limitUnits;

/** splitLimit(2e9) = {value: "2", unit: "GB"}: a limit in the largest unit it is a whole number of. */
export function splitLimit(bytes: number): { value: string; unit: LimitUnit } {
  for (const unit of ["TB", "GB", "MB"] as const) {
    const v = bytes / limitUnits[unit];
    if (v >= 1 && Number.isInteger(v)) return { value: String(v), unit };
  }
  return { value: String(Number((bytes / limitUnits.MB).toFixed(3))), unit: "MB" };
}

/** formatAgo(12_400) = "12 s ago": how long ago something was, coarsely. */
export function formatAgo(ms: number): string {
  if (ms < 0) ms = 0;
  return `${formatDuration(ms)} ago`;
}

/** formatDuration(90_000) = "1 min 30 s": a duration in its two largest units. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 && m < 10 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** formatTime("2026-01-02T10:04:05Z") = "Jan 2, 10:04:05" in the browser's time zone. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return d.toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** since returns the milliseconds from iso until now, or null without a time. */
export function since(iso: string | null | undefined, now: number): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : now - t;
}
