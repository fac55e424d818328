import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { StatusEvent } from "@/lib/api";
import { uptimeSegments, uptimeShare } from "./uptime";

const t0 = Date.parse("2026-01-01T00:00:00Z");
const min = 60_000;
const ev = (id: number, status: StatusEvent["status"], atMin: number): StatusEvent => ({
  id,
  status,
  occurred_at: new Date(t0 + atMin * min).toISOString(),
});

describe("uptimeSegments", () => {
  it("is unknown before the first transition, then follows the transitions in time order", () => {
    // Newest first, as the API lists them.
    const events = [ev(3, "online", 50), ev(2, "offline", 30), ev(1, "online", 10)];
    const got = uptimeSegments(events, t0, t0 + 60 * min).map((s) => [s.status, (s.start - t0) / min, (s.end - t0) / min]);
    assert.deepEqual(got, [
      ["unknown", 0, 10],
      ["online", 10, 30],
      ["offline", 30, 50],
      ["online", 50, 60],
    ]);
  });
  it("starts with the status of the last transition before the window and merges repeats", () => {
    const events = [ev(1, "offline", -100), ev(2, "offline", 20), ev(3, "online", 40)];
    const got = uptimeSegments(events, t0, t0 + 60 * min).map((s) => [s.status, (s.start - t0) / min, (s.end - t0) / min]);
    assert.deepEqual(got, [
      ["offline", 0, 40],
      ["online", 40, 60],
    ]);
  });
  it("is one unknown stretch without events", () => {
    assert.deepEqual(uptimeSegments([], t0, t0 + min), [{ status: "unknown", start: t0, end: t0 + min }]);
  });
});

describe("uptimeShare", () => {
  it("is the online share of the known time", () => {
    const s = uptimeSegments([ev(1, "online", 10), ev(2, "offline", 40)], t0, t0 + 50 * min);
    assert.equal(uptimeShare(s), 0.75);
  });
  it("is null when nothing is known", () => assert.equal(uptimeShare(uptimeSegments([], t0, t0 + min)), null));
});
