import type { DeviceStatus, StatusEvent } from "@/lib/api";

/** A stretch of time with one status. Times are milliseconds since the epoch. */
export interface Segment {
  status: DeviceStatus;
  start: number;
  end: number;
}

/**
 * uptimeSegments cuts [from, to] into stretches of one status from a device's transitions (in
 * any order). Before the first transition the status is unknown.
 */
export function uptimeSegments(events: StatusEvent[], from: number, to: number): Segment[] {
  const sorted = events
    .map((e) => ({ status: e.status, t: Date.parse(e.occurred_at) }))
    .filter((e) => !Number.isNaN(e.t))
    .sort((a, b) => a.t - b.t);
  let status: DeviceStatus = "unknown";
  let i = 0;
  for (; i < sorted.length && sorted[i].t <= from; i++) status = sorted[i].status;
  const out: Segment[] = [];
  let start = from;
  for (; i < sorted.length && sorted[i].t < to; i++) {
    const e = sorted[i];
    if (e.status === status) continue;
    if (e.t > start) out.push({ status, start, end: e.t });
    status = e.status;
    start = e.t;
  }
  if (to > start) out.push({ status, start, end: to });
  return out;
}

/** uptimeShare is the online part of the time whose status is known, or null when none is. */
export function uptimeShare(segments: Segment[]): number | null {
  let online = 0;
  let known = 0;
  for (const s of segments) {
    if (s.status === "unknown") continue;
    known += s.end - s.start;
    if (s.status === "online") online += s.end - s.start;
  }
  return known > 0 ? online / known : null;
}
