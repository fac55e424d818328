import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { Device } from "@/lib/api";
import { tunnelState } from "./status";

const base: Device = {
  id: "d",
  name: "phone",
  status: "online",
  status_changed_at: null,
  last_heartbeat_at: null,
  enrolled_at: "2026-01-01T00:00:00Z",
  tunnel_ip: "100.72.0.5",
  has_tunnel_key: true,
  telemetry: { battery: null, charging: null, signal_dbm: null, carrier: null, network_type: null, cellular_ip: null, app_version: null },
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

describe("tunnelState", () => {
  for (const [patch, label] of [
    [{ enrolled_at: null }, "Not enrolled"],
    [{ has_tunnel_key: false }, "No tunnel key"],
    [{}, "Key registered"],
    [{ tunnel_live: true }, "Session up"],
    [{ tunnel_live: false }, "No session"],
  ] as const) {
    it(`${JSON.stringify(patch)} is ${label}`, () => assert.equal(tunnelState({ ...base, ...patch }).label, label));
  }
});
