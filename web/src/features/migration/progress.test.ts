import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { PasswordMigration } from "@/lib/api";
import {
  migrationPercent,
  migrationPercentText,
  migrationProgressText,
  migrationRefreshMs,
  migrationRemainingMs,
} from "./progress";

type Status = PasswordMigration["status"];

const m = (status: Status, total: number, done: number, failed = 0, rowsPerSecond = 0) => ({
  status,
  total,
  done,
  failed,
  rows_per_second: rowsPerSecond,
});

describe("password migration progress", () => {
  for (const [in_, pct, text, rows] of [
    [m("not_started", 0, 0), 0, "0 %", "0 of 0 rows"],
    [m("not_started", 40, 0), 0, "0 %", "0 of 40 rows"],
    [m("running", 40, 5), 12.5, "12.5 %", "5 of 40 rows"],
    [m("running", 100, 29), 29, "29 %", "29 of 100 rows"],
    [m("running", 3, 2), 66.66666666666667, "66.6 %", "2 of 3 rows"],
    [m("running", 10000, 9999), 99.99, "99.9 %", "9,999 of 10,000 rows"],
    [m("completed", 40, 40), 100, "100 %", "40 of 40 rows"],
    [m("completed", 0, 0), 100, "100 %", "0 of 0 rows"],
    [m("failed", 40, 38, 2), 100, "100 %", "38 of 40 rows"],
    [m("running", 40, 45), 100, "100 %", "45 of 40 rows"],
  ] as const) {
    it(`${in_.status} ${in_.done}+${in_.failed}/${in_.total} is ${text}, ${rows}`, () => {
      const arg = JSON.stringify(in_);
      const gotPct = migrationPercent(in_);
      assert.equal(gotPct, pct, `migrationPercent(${arg}) = ${gotPct}, want ${pct}`);
      const gotText = migrationPercentText(in_);
      assert.equal(gotText, text, `migrationPercentText(${arg}) = ${gotText}, want ${text}`);
      const gotRows = migrationProgressText(in_);
      assert.equal(gotRows, rows, `migrationProgressText(${arg}) = ${gotRows}, want ${rows}`);
    });
  }

  it("migrationRefreshMs polls fast while it runs or is not known, slowly once it finished", () => {
    for (const [status, want] of [
      [undefined, 2000],
      ["running", 2000],
      ["not_started", 5000],
      ["completed", 30000],
      ["failed", 30000],
    ] as const) {
      const got = migrationRefreshMs(status ? { status } : undefined);
      assert.equal(got, want, `migrationRefreshMs(${status}) = ${got}, want ${want}`);
    }
  });

  it("migrationRemainingMs is the rows left at the current rate, only while it runs", () => {
    for (const [in_, want] of [
      [m("running", 40, 10, 2, 4), 7000],
      [m("running", 40, 10, 0, 0), null],
      [m("running", 40, 40, 0, 4), null],
      [m("completed", 40, 40, 0, 4), null],
      [m("not_started", 40, 0, 0, 0), null],
    ] as const) {
      const got = migrationRemainingMs(in_);
      assert.equal(got, want, `migrationRemainingMs(${JSON.stringify(in_)}) = ${got}, want ${want}`);
    }
  });
});
