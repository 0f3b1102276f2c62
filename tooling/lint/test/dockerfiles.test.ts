import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ValidationSeverity, type ValidatorSettings, validate } from "dockerfile-utils";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../../..");
const NAMES = readdirSync(join(ROOT, "images"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);
const read = (name: string) => readFileSync(join(ROOT, "images", name, "Dockerfile"), "utf8");

// Every check dockerfile-utils has, as an error.
const STRICT: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/** The instructions of a Dockerfile, continuation lines joined, comments dropped. */
function instructions(text: string): string[] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim().replace(/\s+/g, " "))
    .filter((line) => line !== "" && !line.startsWith("#"));
}

/** The instructions of the last stage (the image that ships). */
function finalStage(text: string): string[] {
  const all = instructions(text);
  const from = all.findLastIndex((line) => line.startsWith("FROM "));
  return all.slice(from);
}

describe("the sidecar Dockerfiles", () => {
  it("are the three sidecars", () => {
    expect(NAMES.sort()).toEqual(["cred-proxy", "gate", "tokman"]);
  });

  it.each(NAMES)("%s passes dockerfile-utils with every check an error", (name) => {
    const problems = validate(read(name), STRICT).map(
      (d) => `${d.range.start.line + 1}: ${d.message}`,
    );
    expect(problems).toEqual([]);
  });

  it.each(NAMES)("%s ships a non-root user, an init, a health check and no secret", (name) => {
    const stage = finalStage(read(name));
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile's variable, not a template
    expect(stage[0]).toBe("FROM ${BASE_IMAGE}");
    // The last USER before the entrypoint is not root.
    const users = stage.filter((line) => line.startsWith("USER "));
    expect(users.at(-1)).toBe("USER node");
    // Exec form, with an init as pid 1 so a SIGTERM reaches the sidecar.
    expect(stage).toContain('ENTRYPOINT ["/usr/bin/tini", "--"]');
    expect(stage.find((line) => line.startsWith("CMD "))).toMatch(/^CMD \[/);
    expect(stage.find((line) => line.startsWith("HEALTHCHECK "))).toMatch(
      / CMD \["node", "\/app\/healthcheck\.mjs"\]$/,
    );
    // Only tini, the deployed package and the health check are copied in.
    const copies = stage.filter((line) => line.startsWith("COPY ") || line.startsWith("ADD "));
    expect(copies).toEqual([
      "COPY --from=build /usr/bin/tini-static /usr/bin/tini",
      expect.stringMatching(/^COPY --from=build \/out\/[a-z-]+ \/app$/),
      "COPY images/healthcheck.mjs /app/healthcheck.mjs",
    ]);
    // apt without recommends, lists removed in the same layer.
    for (const run of stage.filter((line) => line.includes("apt-get install"))) {
      expect(run).toContain("--no-install-recommends");
      expect(run).toContain("rm -rf /var/lib/apt/lists/*");
    }
  });

  it.each(NAMES)("%s passes no secret through ARG, ENV or the command line", (name) => {
    const lines = instructions(read(name));
    const declared = lines.filter((line) => /^(ARG|ENV|LABEL) /.test(line));
    for (const line of declared) expect(line).not.toMatch(/TOKEN|SECRET|PASSWORD|_KEY\b|PRIVATE/i);
    // The only secret a build sees is the optional CA bundle, mounted, never copied.
    const secrets = lines.flatMap((line) => line.match(/--mount=type=secret,[^ ]+/g) ?? []);
    expect(new Set(secrets)).toEqual(new Set(["--mount=type=secret,id=ca"]));
  });

  it("share one build stage, so one build serves the three images from the layer cache", () => {
    const buildStage = (text: string) => {
      const all = instructions(text);
      return all.slice(
        0,
        all.findLastIndex((line) => line.startsWith("FROM ")),
      );
    };
    const [first, ...rest] = NAMES.map((name) => buildStage(read(name)));
    expect(first?.join("\n")).toContain("deploy --prod");
    for (const other of rest) expect(other).toEqual(first);
  });
});
