// Generates src/lib/api-schema.ts, the TypeScript types of cellgate's API, from its OpenAPI
// document (../api/openapi.yaml), with openapi-typescript. `npm run gen:api` writes the file;
// src/lib/api-schema.test.ts (run by `npm run test:unit` and scripts/web-test.sh, hence by
// `make test`) fails when the committed file is not what the document generates.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

import openapiTS, { astToString } from "openapi-typescript";

/** The OpenAPI document, the one source of the API's types. */
export const documentURL = new URL("../../api/openapi.yaml", import.meta.url);
/** The generated types, committed. */
export const schemaFile = fileURLToPath(new URL("../src/lib/api-schema.ts", import.meta.url));

const header = `// Generated from api/openapi.yaml by \`npm run gen:api\` (scripts/api-schema.ts): do not edit.
// The dashboard's API types derive from these (src/lib/api.ts).

`;

/** generate returns the types the OpenAPI document makes. */
export async function generate(): Promise<string> {
  const ast = await openapiTS(documentURL, { silent: true });
  return header + astToString(ast);
}

/** committed returns the types in the repository. */
export async function committed(): Promise<string> {
  return readFile(schemaFile, "utf8");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await writeFile(schemaFile, await generate());
  console.log(`wrote ${schemaFile}`);
}
