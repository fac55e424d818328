import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { formatAgo, formatBytes, formatDuration, splitLimit } from "./format";

describe("formatBytes", () => {
  for (const [n, want] of [
    [0, "0 B"],
    [999, "999 B"],
    [1000, "1 KB"],
    [750e6, "750 MB"],
    [1e9, "1 GB"],
    [1.5e9, "1.5 GB"],
    [12.34e9, "12.3 GB"],
    [123.4e9, "123 GB"],
    [2e15, "2 PB"],
    [-1, "—"],
  ] as const) {
    it(`formatBytes(${n}) = ${want}`, () => assert.equal(formatBytes(n), want, `formatBytes(${n}) = ${formatBytes(n)}, want ${want}`));
  }
});

describe("splitLimit", () => {
  for (const [n, value, unit] of [
    [1e9, "1", "GB"],
    [2e12, "2", "TB"],
    [1.5e9, "1500", "MB"],
    [500e6, "500", "MB"],
    [1234567, "1.235", "MB"],
  ] as const) {
    it(`splitLimit(${n}) = ${value} ${unit}`, () => assert.deepEqual(splitLimit(n), { value, unit }));
  }
});

describe("durations", () => {
  for (const [ms, want] of [
    [0, "0 s"],
    [12_400, "12 s"],
    [90_000, "1 min 30 s"],
    [15 * 60_000, "15 min"],
    [2 * 3600_000 + 5 * 60_000, "2 h 5 min"],
    [3 * 86400_000, "3 d"],
  ] as const) {
    it(`formatDuration(${ms}) = ${want}`, () => assert.equal(formatDuration(ms), want));
  }
  it("formatAgo clamps a time in the future to now", () => assert.equal(formatAgo(-500), "0 s ago"));
});
