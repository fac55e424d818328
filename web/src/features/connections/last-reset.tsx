import type { ConnectionDetail } from "@/lib/api";
import { formatBytes, formatTime } from "@/lib/format";

/** LastReset shows a connection's last usage reset: when, and how much was used before it. */
export function LastReset({ connection: c, long }: { connection: ConnectionDetail; long?: boolean }) {
  if (c.last_reset === null) return <span className="text-muted-foreground">never</span>;
  const r = c.last_reset;
  return (
    <span title={`${formatBytes(r.used_before)} used before; by ${r.requested_by}`} data-testid="last-reset">
      {formatTime(r.reset_at)}
      {long && (
        <span className="text-muted-foreground">
          {" "}
          · {formatBytes(r.used_before)} before · by {r.requested_by}
        </span>
      )}
    </span>
  );
}
