import type { Connection } from "@/lib/api";
import { formatBytes } from "@/lib/format";

/** How full a connection's quota is: ok, warn (from 80 %), over (at 100 % or cut off), or unlimited. */
export type UsageLevel = "ok" | "warn" | "over" | "unlimited";

/** The warn threshold of the usage bar. */
export const warnRatio = 0.8;

type Usage = Pick<Connection, "bandwidth_used" | "bandwidth_limit" | "cut_off">;

/** usageLevel tells how full c's quota is. */
export function usageLevel(c: Usage): UsageLevel {
  if (c.cut_off) return "over";
  if (c.bandwidth_limit <= 0) return "unlimited";
  const ratio = c.bandwidth_used / c.bandwidth_limit;
  if (ratio >= 1) return "over";
  if (ratio >= warnRatio) return "warn";
  return "ok";
}

/** usagePercent is the used share of the limit in percent (0 to 100), or null when unlimited. */
export function usagePercent(c: Usage): number | null {
  if (c.bandwidth_limit <= 0) return null;
  return Math.min(100, (c.bandwidth_used / c.bandwidth_limit) * 100);
}

/** usageText is "750 MB / 1 GB", or "750 MB / unlimited". */
export function usageText(c: Usage): string {
  const limit = c.bandwidth_limit > 0 ? formatBytes(c.bandwidth_limit) : "unlimited";
  return `${formatBytes(c.bandwidth_used)} / ${limit}`;
}
