import type { PasswordMigration } from "@/lib/api";

type Progress = Pick<PasswordMigration, "status" | "total" | "done" | "failed">;

/** migrationPercent is the share of rows done (hashed or failed), 0 to 100. */
export function migrationPercent(m: Progress): number {
  if (m.total <= 0) return m.status === "completed" ? 100 : 0;
  return Math.min(100, ((m.done + m.failed) * 100) / m.total);
}

/**
 * migrationPercentText is "12.5 %" or "100 %": the percent rounded down to one decimal (so
 * "100 %" means every row), without a trailing ".0".
 */
export function migrationPercentText(m: Progress): string {
  // The epsilon keeps float noise (29 / 100 * 100 = 28.999…) from rounding a whole tenth down.
  return `${Math.floor(migrationPercent(m) * 10 + 1e-9) / 10} %`;
}

/** migrationProgressText is "12 of 40 rows": the rows hashed of those the migration takes. */
export function migrationProgressText(m: Progress): string {
  return `${m.done.toLocaleString("en-US")} of ${m.total.toLocaleString("en-US")} rows`;
}

/**
 * migrationRefreshMs is how often the page asks again: every 2 s while the migration runs (or its
 * status is not known yet), every 5 s before it started (so a start from `cellgate migrate` shows
 * soon), every 30 s once it finished.
 */
export function migrationRefreshMs(m: Pick<PasswordMigration, "status"> | undefined): number {
  switch (m?.status) {
    case undefined:
    case "running":
      return 2000;
    case "not_started":
      return 5000;
    default:
      return 30000;
  }
}

/** migrationRemainingMs is the time left at the current rate while it runs, else null. */
export function migrationRemainingMs(m: Progress & Pick<PasswordMigration, "rows_per_second">): number | null {
  const left = m.total - m.done - m.failed;
  if (m.status !== "running" || m.rows_per_second <= 0 || left <= 0) return null;
  return (left / m.rows_per_second) * 1000;
}
