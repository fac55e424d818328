"use client";

import { useState } from "react";

import { Skeleton } from "@/components/ui/skeleton";
import { api, type StatusEvent } from "@/lib/api";
import { formatDuration, formatTime } from "@/lib/format";
import { useResource } from "@/lib/use-resource";
import { cn } from "@/lib/utils";
import { uptimeSegments, uptimeShare } from "./uptime";

const day = 24 * 60 * 60 * 1000;

/** eventsSince loads a device's transitions back to (and including the last one before) from. */
async function eventsSince(deviceID: string, from: number): Promise<StatusEvent[]> {
  const all: StatusEvent[] = [];
  let before: number | undefined;
  for (let page = 0; page < 20; page++) {
    const res = await api.deviceEvents(deviceID, before);
    all.push(...res.events);
    const oldest = res.events[res.events.length - 1];
    if (!res.next_before || !oldest || Date.parse(oldest.occurred_at) <= from) break;
    before = res.next_before;
  }
  return all;
}

const colors = {
  online: "bg-green-600",
  offline: "bg-destructive",
  unknown: "bg-muted",
} as const;

/** UptimeBar draws a device's last 24 hours from its status events, refreshed every 15 s. */
export function UptimeBar({ deviceID }: { deviceID: string }) {
  // The window's end moves with each refresh; fixed between them so the bar does not jitter.
  const [to, setTo] = useState(() => Date.now());
  const events = useResource(
    `uptime:${deviceID}`,
    async () => {
      const now = Date.now();
      const ev = await eventsSince(deviceID, now - day);
      setTo(now);
      return ev;
    },
    15000,
  );
  if (events.loading) return <Skeleton className="h-8 w-full" />;
  if (!events.data) return <p className="text-muted-foreground text-sm">The status history could not be loaded.</p>;
  const from = to - day;
  const segments = uptimeSegments(events.data, from, to);
  const share = uptimeShare(segments);
  const label =
    share === null
      ? "No status known in the last 24 hours"
      : `Online ${(share * 100).toFixed(1)} % of the known time in the last 24 hours`;
  return (
    <div className="grid gap-2" data-testid="uptime">
      <div className="flex items-baseline justify-between gap-2 text-sm">
        <span className="font-medium" data-testid="uptime-share">
          {share === null ? "No data yet" : `${(share * 100).toFixed(1)} % online`}
        </span>
        <span className="text-muted-foreground text-xs">last 24 hours</span>
      </div>
      <div className="bg-muted flex h-8 w-full overflow-hidden rounded-md" role="img" aria-label={label}>
        {segments.map((s) => (
          <div
            key={s.start}
            // Known stretches stay visible however short (an outage of seconds in 24 hours);
            // unknown ones give way.
            className={cn("h-full", colors[s.status], s.status === "unknown" ? "shrink" : "min-w-[3px] shrink-0")}
            style={{ width: `${((s.end - s.start) / day) * 100}%` }}
            title={`${s.status} from ${formatTime(new Date(s.start).toISOString())} for ${formatDuration(s.end - s.start)}`}
            data-status={s.status}
          />
        ))}
      </div>
      <div className="text-muted-foreground flex justify-between text-xs">
        <span>24 h ago</span>
        <span className="flex gap-3">
          <Legend className={colors.online}>online</Legend>
          <Legend className={colors.offline}>offline</Legend>
          <Legend className={cn(colors.unknown, "border")}>unknown</Legend>
        </span>
        <span>now</span>
      </div>
    </div>
  );
}

function Legend({ className, children }: { className: string; children: React.ReactNode }) {
  return (
    <span className="inline-flex items-center gap-1">
      <span className={cn("size-2.5 rounded-sm", className)} aria-hidden />
      {children}
    </span>
  );
}
