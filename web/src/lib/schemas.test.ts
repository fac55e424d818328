import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ApiError } from "./api";
import { apiFieldError, createConnectionSchema, toBandwidthLimit, webhookSchema, zodErrors } from "./schemas";

const valid = {
  name: "customer-a",
  device_id: "0190e5e5-0000-7000-8000-000000000000",
  protocol: "openvpn" as const,
  username: "",
  password: "",
  unlimited: false,
  limitValue: "1",
  limitUnit: "GB" as const,
};

describe("createConnectionSchema", () => {
  it("accepts a valid form", () => assert.equal(createConnectionSchema.safeParse(valid).success, true));
  for (const [field, patch] of [
    ["name", { name: "  " }],
    ["name", { name: "x".repeat(101) }],
    ["device_id", { device_id: "" }],
    ["username", { username: "a b" }],
    ["username", { username: "ab" }],
    ["password", { password: "short" }],
    ["bandwidth_limit", { limitValue: "0" }],
    ["bandwidth_limit", { limitValue: "" }],
    ["bandwidth_limit", { limitValue: "-3" }],
  ] as const) {
    it(`refuses ${JSON.stringify(patch)} under ${field}`, () => {
      const r = createConnectionSchema.safeParse({ ...valid, ...patch });
      assert.equal(r.success, false);
      const errs = zodErrors(r.error!);
      assert.ok(errs[field], `errors = ${JSON.stringify(errs)}, want one for ${field}`);
    });
  }
  it("takes no limit when unlimited", () => {
    assert.equal(createConnectionSchema.safeParse({ ...valid, unlimited: true, limitValue: "" }).success, true);
  });
});

describe("toBandwidthLimit", () => {
  it("counts decimal units", () => {
    assert.equal(toBandwidthLimit({ unlimited: false, limitValue: "1.5", limitUnit: "GB" }), 1_500_000_000);
    assert.equal(toBandwidthLimit({ unlimited: false, limitValue: "750", limitUnit: "MB" }), 750_000_000);
  });
  it("is 0 when unlimited", () => assert.equal(toBandwidthLimit({ unlimited: true, limitValue: "5", limitUnit: "TB" }), 0));
});

describe("webhookSchema", () => {
  it("wants an http(s) URL", () => {
    assert.equal(webhookSchema.safeParse({ url: "https://example.com/h", enabled: true }).success, true);
    assert.equal(webhookSchema.safeParse({ url: "ftp://example.com/h", enabled: true }).success, false);
    assert.equal(webhookSchema.safeParse({ url: "example.com", enabled: true }).success, false);
  });
});

describe("apiFieldError", () => {
  it("puts the API's error under its field", () => {
    const e = new ApiError(409, "username_taken", "username is already taken", "username");
    assert.deepEqual(apiFieldError(e, ["username"]), { username: "Username is already taken." });
  });
  it("leaves errors of other fields, or of none, to the caller", () => {
    assert.equal(apiFieldError(new ApiError(400, "invalid", "x", "other"), ["username"]), null);
    assert.equal(apiFieldError(new ApiError(500, "internal", "internal error"), ["username"]), null);
    assert.equal(apiFieldError(new Error("boom"), ["username"]), null);
  });
});
