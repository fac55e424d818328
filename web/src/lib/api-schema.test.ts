import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { committed, generate } from "../../scripts/api-schema";

// The dashboard's API types are generated from the OpenAPI document (api/openapi.yaml); a
// document changed without `npm run gen:api` fails here, and so `make test`.
describe("api-schema.ts", () => {
  it("is what api/openapi.yaml generates", async () => {
    const [want, got] = await Promise.all([generate(), committed()]);
    assert.ok(got === want, "src/lib/api-schema.ts is not what api/openapi.yaml generates: run `cd web && npm run gen:api`");
  });
});
