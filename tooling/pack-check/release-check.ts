/**
 * A release rehearsal in a temporary copy of the workspace (never in the working tree):
 * `pnpm changeset version`, then `pnpm pack` of every published package. Checks that each
 * version moved as the changesets say, that each bumped package has its CHANGELOG.md entry, and
 * that no packed package.json keeps a `workspace:` or `catalog:` range.
 * Run it on its own: `node tooling/pack-check/release-check.ts` (exit 1 on any problem).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import {
  type PackageJson,
  packAll,
  publishedPackages,
  ROOT,
  readJson,
  runOk,
  timed,
  unpack,
  unreplacedRanges,
} from "./packs.ts";

/** A semver bump a changeset asks for. */
export type Bump = "patch" | "minor" | "major";

const BUMPS: readonly Bump[] = ["patch", "minor", "major"];

/** A changeset file: the bump of each package it names, and its summary. */
export interface Changeset {
  readonly file: string;
  readonly bumps: ReadonlyMap<string, Bump>;
  readonly summary: string;
}

/** Parses a changeset's markdown: a `---` frontmatter of `"name": bump` lines, then the summary. */
export function parseChangeset(file: string, text: string): Changeset {
  const match = text.match(/^---\r?\n([\s\S]*?)\r?\n---\r?\n([\s\S]*)$/);
  if (match === null) throw new Error(`${file}: no frontmatter`);
  const bumps = new Map<string, Bump>();
  for (const line of (match[1] ?? "").split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const entry = line.match(/^\s*["']?([^"':]+)["']?\s*:\s*(patch|minor|major)\s*$/);
    if (entry === null) throw new Error(`${file}: cannot read "${line}"`);
    bumps.set(entry[1] as string, entry[2] as Bump);
  }
  return { file, bumps, summary: (match[2] ?? "").trim() };
}

/** The changesets waiting in `<root>/.changeset`. */
export function readChangesets(root: string): Changeset[] {
  const dir = join(root, ".changeset");
  return readdirSync(dir)
    .filter((name) => name.endsWith(".md") && name !== "README.md")
    .sort()
    .map((name) => parseChangeset(name, readFileSync(join(dir, name), "utf8")));
}

/** `version` bumped by `bump` (semver: 0.1.0 minor → 0.2.0, patch → 0.1.1, major → 1.0.0). */
export function bumpVersion(version: string, bump: Bump): string {
  const [major = 0, minor = 0, patch = 0] = version.split("-")[0]?.split(".").map(Number) ?? [];
  if (bump === "major") return `${major + 1}.0.0`;
  if (bump === "minor") return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

/** The highest bump the changesets ask for, by package name. */
export function plannedBumps(changesets: readonly Changeset[]): Map<string, Bump> {
  const planned = new Map<string, Bump>();
  for (const changeset of changesets) {
    for (const [name, bump] of changeset.bumps) {
      const before = planned.get(name);
      if (before === undefined || BUMPS.indexOf(bump) > BUMPS.indexOf(before)) {
        planned.set(name, bump);
      }
    }
  }
  return planned;
}

/** Copies the files git tracks or would track (not ignored), plus each package's `dist`. */
async function copyWorkspace(dest: string): Promise<void> {
  const listed = await runOk("git", ["ls-files", "-z", "-c", "-o", "--exclude-standard"]);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(ROOT, file))) continue; // deleted in the working tree
    await mkdir(dirname(join(dest, file)), { recursive: true });
    await cp(join(ROOT, file), join(dest, file));
  }
  for (const { dir } of publishedPackages()) {
    if (existsSync(join(dir, "dist"))) {
      await cp(join(dir, "dist"), join(dest, relative(ROOT, dir), "dist"), { recursive: true });
    }
  }
  // An install of its own (from the store, no scripts): changesets runs from it, and pnpm pack
  // reads the sibling versions that replace `workspace:` ranges through its links.
  await runOk("pnpm", ["install", "--prefer-offline", "--frozen-lockfile", "--ignore-scripts"], {
    cwd: dest,
    timeoutMs: 300_000,
  });
}

/** One package after the rehearsal. */
export interface Released {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  readonly planned: Bump | undefined;
}

/** Runs the rehearsal; returns each package's versions and every problem found. */
export async function rehearseRelease(): Promise<{ released: Released[]; problems: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "bottle-release-"));
  try {
    const copy = join(dir, "workspace");
    await timed("copy of the workspace, pnpm install --prefer-offline", () => copyWorkspace(copy));
    const before = publishedPackages(copy);
    const changesets = readChangesets(copy);
    await timed("pnpm changeset version", () =>
      runOk("pnpm", ["changeset", "version"], { cwd: copy }),
    );
    const after = publishedPackages(copy);
    const tarballs = await timed("pnpm pack (after version)", () =>
      packAll(after, join(dir, "tarballs"), copy),
    );
    const planned = plannedBumps(changesets);
    const versions = new Map(after.map(({ pkg }) => [pkg.name, pkg.version]));
    const problems: string[] = [];
    for (const name of planned.keys()) {
      if (!versions.has(name)) problems.push(`a changeset names ${name}, no published package`);
    }
    const left = readChangesets(copy).map((changeset) => changeset.file);
    if (left.length > 0) problems.push(`changesets left after version: ${left.join(", ")}`);
    const released: Released[] = [];
    for (const { dir: pkgDir, pkg } of before) {
      const to = versions.get(pkg.name) ?? "";
      const bump = planned.get(pkg.name);
      released.push({ name: pkg.name, from: pkg.version, to, planned: bump });
      problems.push(...versionProblems(pkg, to, bump));
      if (to !== pkg.version) {
        const changelog = join(copy, relative(copy, pkgDir), "CHANGELOG.md");
        const text = existsSync(changelog) ? readFileSync(changelog, "utf8") : "";
        if (!text.includes(`\n## ${to}\n`))
          problems.push(`${pkg.name}: no "## ${to}" in CHANGELOG.md`);
        for (const changeset of changesets.filter((c) => c.bumps.has(pkg.name))) {
          const firstLine = changeset.summary.split("\n")[0] ?? "";
          if (!text.includes(firstLine)) {
            problems.push(`${pkg.name}: CHANGELOG.md lacks the summary of ${changeset.file}`);
          }
        }
      }
      const packed = readJson<PackageJson>(
        join(
          await unpack(tarballs.get(pkg.name) ?? "", join(dir, "unpacked", pkg.name)),
          "package.json",
        ),
      );
      problems.push(...packedRangeProblems(packed, versions));
    }
    return { released, problems };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A package's new version against its planned bump (a dependency's update may add a patch). */
export function versionProblems(pkg: PackageJson, to: string, planned: Bump | undefined): string[] {
  if (planned !== undefined) {
    const expected = bumpVersion(pkg.version, planned);
    return to === expected
      ? []
      : [`${pkg.name}: ${pkg.version} → ${to}, the changesets say ${expected}`];
  }
  const patched = bumpVersion(pkg.version, "patch");
  return to === pkg.version || to === patched
    ? []
    : [`${pkg.name}: ${pkg.version} → ${to} with no changeset (at most ${patched})`];
}

/**
 * A packed package.json's unreplaced ranges, and any sibling dependency whose range is not
 * `^` its released version (what `workspace:^` must become).
 */
export function packedRangeProblems(
  packed: PackageJson,
  versions: ReadonlyMap<string, string>,
): string[] {
  const problems = unreplacedRanges(packed).map((range) => `${packed.name}: packed ${range}`);
  for (const field of ["dependencies", "peerDependencies", "optionalDependencies"] as const) {
    for (const [name, range] of Object.entries(packed[field] ?? {})) {
      const version = versions.get(name);
      if (version !== undefined && range !== `^${version}`) {
        problems.push(`${packed.name}: packed ${field}.${name} is ${range}, not ^${version}`);
      }
    }
  }
  return problems;
}

async function main(): Promise<number> {
  const { released, problems } = await rehearseRelease();
  for (const { name, from, to, planned } of released) {
    process.stderr.write(
      `[release-check] ${name}: ${from} → ${to} (${planned ?? "no changeset"})\n`,
    );
  }
  for (const problem of problems) process.stderr.write(`[release-check] FAILED ${problem}\n`);
  return problems.length === 0 ? 0 : 1;
}

if (import.meta.main) process.exitCode = await main();
