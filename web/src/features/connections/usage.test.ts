import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { usageLevel, usagePercent, usageText } from "./usage";

const c = (used: number, limit: number, cutOff = false) => ({ bandwidth_used: used, bandwidth_limit: limit, cut_off: cutOff });

describe("usage", () => {
  for (const [conn, level, text] of [
    [c(750e6, 1e9), "ok", "750 MB / 1 GB"],
    [c(799e6, 1e9), "ok", "799 MB / 1 GB"],
    [c(800e6, 1e9), "warn", "800 MB / 1 GB"],
    [c(1e9, 1e9), "over", "1 GB / 1 GB"],
    [c(1.2e9, 1e9), "over", "1.2 GB / 1 GB"],
    [c(10e6, 1e9, true), "over", "10 MB / 1 GB"],
    [c(5e9, 0), "unlimited", "5 GB / unlimited"],
  ] as const) {
    it(`${text}${conn.cut_off ? " (cut off)" : ""} is ${level}`, () => {
      assert.equal(usageLevel(conn), level);
      assert.equal(usageText(conn), text);
    });
  }
  it("usagePercent is capped at 100 and null when unlimited", () => {
    assert.equal(usagePercent(c(2e9, 1e9)), 100);
    assert.equal(usagePercent(c(250e6, 1e9)), 25);
    assert.equal(usagePercent(c(1, 0)), null);
  });
});
