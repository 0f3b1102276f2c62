// `changeset version` and `pnpm pack` rehearsed in a copy of the workspace (release-check.ts),
// and the rules it checks by, on made-up input.
import { describe, expect, it } from "vitest";
import { publishedPackages, ROOT } from "../packs.ts";
import {
  bumpVersion,
  packedRangeProblems,
  parseChangeset,
  plannedBumps,
  readChangesets,
  rehearseRelease,
  versionProblems,
} from "../release-check.ts";

describe("a release rehearsal of this workspace", { tags: ["slow"] }, () => {
  it("bumps as the changesets say, writes changelogs and packs real ranges", async () => {
    const planned = plannedBumps(readChangesets(ROOT));
    const { released, problems } = await rehearseRelease();
    expect(problems).toEqual([]);
    expect(released.map((r) => r.name)).toEqual(publishedPackages().map(({ pkg }) => pkg.name));
    for (const { name, from, to } of released) {
      const bump = planned.get(name);
      if (bump !== undefined) expect(to, name).toBe(bumpVersion(from, bump));
    }
    // The working tree is untouched: its changesets and versions are as they were.
    expect(plannedBumps(readChangesets(ROOT))).toEqual(planned);
    expect(publishedPackages().map(({ pkg }) => pkg.version)).toEqual(released.map((r) => r.from));
  });
});

describe("parseChangeset", () => {
  it("reads each package's bump, quoted or not, and the summary", () => {
    const changeset = parseChangeset(
      "a.md",
      '---\n"@bottle/cli": minor\n@bottle/log: patch\n---\n\nThe summary.\nMore.\n',
    );
    expect([...changeset.bumps]).toEqual([
      ["@bottle/cli", "minor"],
      ["@bottle/log", "patch"],
    ]);
    expect(changeset.summary).toBe("The summary.\nMore.");
  });

  it("refuses a file without frontmatter or with a line it cannot read", () => {
    expect(() => parseChangeset("a.md", "no frontmatter\n")).toThrow(/a\.md: no frontmatter/);
    expect(() => parseChangeset("b.md", '---\n"@bottle/cli": huge\n---\nx\n')).toThrow(/b\.md/);
  });
});

describe("the version rules", () => {
  it("bumps semver versions and keeps the highest bump a package gets", () => {
    expect(["patch", "minor", "major"].map((b) => bumpVersion("0.1.3", b as "patch"))).toEqual([
      "0.1.4",
      "0.2.0",
      "1.0.0",
    ]);
    const one = parseChangeset("1.md", "---\na: patch\nb: minor\n---\nx\n");
    const two = parseChangeset("2.md", "---\na: major\nb: patch\n---\ny\n");
    expect(plannedBumps([one, two])).toEqual(
      new Map([
        ["a", "major"],
        ["b", "minor"],
      ]),
    );
  });

  it("finds a version that moved otherwise than planned", () => {
    const pkg = { name: "a", version: "0.1.0" };
    expect(versionProblems(pkg, "0.2.0", "minor")).toEqual([]);
    expect(versionProblems(pkg, "0.1.1", "minor")).toEqual([
      "a: 0.1.0 → 0.1.1, the changesets say 0.2.0",
    ]);
    expect(versionProblems(pkg, "0.1.1", undefined)).toEqual([]);
    expect(versionProblems(pkg, "0.2.0", undefined)).toEqual([
      "a: 0.1.0 → 0.2.0 with no changeset (at most 0.1.1)",
    ]);
  });

  it("finds workspace: and catalog: ranges and sibling ranges that are not ^ the release", () => {
    const versions = new Map([
      ["b", "0.2.0"],
      ["c", "1.0.0"],
    ]);
    const packed = {
      name: "a",
      version: "0.2.0",
      dependencies: { b: "^0.1.0", c: "^1.0.0", d: "catalog:" },
      devDependencies: { e: "workspace:*" },
    };
    expect(packedRangeProblems(packed, versions)).toEqual([
      "a: packed dependencies.d: catalog:",
      "a: packed devDependencies.e: workspace:*",
      "a: packed dependencies.b is ^0.1.0, not ^0.2.0",
    ]);
  });
});
