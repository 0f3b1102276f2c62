import { join } from "node:path";
import {
  AllowRuleSchema,
  AllowRulesSchema,
  METHODS,
  PATH_GLOB,
  READ_ONLY_ALLOW,
} from "@bottle/manifest/allow";
import { formatIssues } from "@bottle/manifest/policy";
import { importedModules } from "@bottle/test-utils";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { parse, parseError } from "./helpers.ts";

const problem = (rules: unknown) => formatIssues(v.safeParse(AllowRulesSchema, rules).issues ?? []);

describe("@bottle/manifest/allow", () => {
  it("accepts the rules a route may hold, read_only's among them", () => {
    const rules = [{ methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**", "/user"] }];
    expect(v.parse(AllowRulesSchema, rules)).toEqual(rules);
    expect(v.parse(AllowRulesSchema, READ_ONLY_ALLOW)).toEqual(READ_ONLY_ALLOW);
    expect(v.is(AllowRuleSchema, { methods: [...METHODS], paths: ["/%2F/x"] })).toBe(true);
    expect(PATH_GLOB.test("/a/**")).toBe(true);
  });

  it.each([
    [[], "Expected `allow` to hold at least one rule"],
    [[{ methods: ["TRACE"], paths: ["/**"] }], "[0].methods[0]: Expected a method: GET, HEAD"],
    [[{ methods: [], paths: ["/**"] }], "[0].methods: Expected `methods` to name at least one"],
    [[{ methods: ["GET"], paths: ["/a//b"] }], "[0].paths[0]: Expected a path glob"],
    [[{ methods: ["GET"], paths: ["/a/../b"] }], "[0].paths[0]: Expected a path glob without"],
    [[{ methods: ["GET"], paths: ["/**"], hosts: [] }], "[0].hosts: is not a known key"],
  ])("refuses %j", (rules, message) => {
    expect(problem(rules)).toContain(message);
  });

  it("is the schema the manifest validates `allow` with", () => {
    const route = (allow: string) =>
      `cred_proxy:\n  routes:\n    - { path: /a/, upstream: "https://a.example", auth: { scheme: Bearer }, token_ref: A, allow: ${allow} }\n`;
    const manifest = (allow: string) =>
      `version: 1\nname: demo\nagent:\n  command: [claude]\n${route(allow)}`;
    expect(
      parse(manifest("[{ methods: [GET], paths: ['/x/**'] }]")).cred_proxy.routes[0]?.allow,
    ).toEqual([{ methods: ["GET"], paths: ["/x/**"] }]);
    const error = parseError(manifest("[{ methods: [TRACE], paths: ['/x'] }]"));
    expect(error.issues[0]?.message).toBe(
      "Expected a method: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    );
  });

  it("loads valibot, and neither the YAML parser nor the manifest schema", async () => {
    const loaded = await importedModules("@bottle/manifest/allow", join(import.meta.dirname, ".."));
    expect(loaded.some((url) => url.endsWith("/dist/allow.js"))).toBe(true);
    expect(loaded.filter((url) => /\/yaml\/|ssh2|schema|parse/.test(url))).toEqual([]);
  });
});
