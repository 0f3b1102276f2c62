import { ManifestSchema } from "@bottle/manifest";
import { toJsonSchema } from "@valibot/to-json-schema";
import { describe, expect, it } from "vitest";

describe("schema.json", () => {
  // Regenerate after a schema change with: pnpm --filter @bottle/manifest schema
  it("matches the schema in the code", async () => {
    const generated = {
      $comment:
        "Generated from packages/manifest/src/schema.ts by `pnpm --filter @bottle/manifest schema`; do not edit.",
      $schema: "http://json-schema.org/draft-07/schema#",
      $id: "https://github.com/bottle-dev/bottle/blob/main/packages/manifest/schema.json",
      title: "bottle manifest",
      ...toJsonSchema(ManifestSchema, { errorMode: "ignore" }),
    };
    await expect(`${JSON.stringify(generated, null, 2)}\n`).toMatchFileSnapshot("../schema.json");
  });
});
