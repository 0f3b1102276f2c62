/**
 * What the tarball checks share: the published packages of the workspace, `pnpm pack` for all
 * of them, what a packed tarball must hold, child processes with a timeout, and timed steps.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { builtinModules } from "node:module";
import { basename, join, relative } from "node:path";

/** The workspace's root directory. */
export const ROOT = join(import.meta.dirname, "..", "..");

/** The dependency fields of a package.json, each checked for unreplaced ranges. */
export const DEPENDENCY_FIELDS = [
  "dependencies",
  "peerDependencies",
  "optionalDependencies",
  "devDependencies",
] as const;

/** The part of a package.json the checks read. */
export interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly bin?: string | Readonly<Record<string, string>>;
  readonly exports?: unknown;
  readonly files?: readonly string[];
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly devDependencies?: Readonly<Record<string, string>>;
}

/** A published package: its package.json and its directory. */
export interface WorkspacePackage {
  readonly dir: string;
  readonly pkg: PackageJson;
}

/** Reads a JSON file. */
export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/** Every package under packages/ and apps/ of `root` whose package.json is not `private`. */
export function publishedPackages(root = ROOT): WorkspacePackage[] {
  const found: WorkspacePackage[] = [];
  for (const group of ["packages", "apps"]) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const dir = join(root, group, name);
      if (!existsSync(join(dir, "package.json"))) continue;
      const pkg = readJson<PackageJson>(join(dir, "package.json"));
      if (pkg.private !== true) found.push({ dir, pkg });
    }
  }
  return found;
}

/** The tarball name `pnpm pack` gives a package: `@bottle/cli` 0.1.0 → bottle-cli-0.1.0.tgz. */
export function tarballName(pkg: Pick<PackageJson, "name" | "version">): string {
  return `${pkg.name.replace(/^@/, "").replace("/", "-")}-${pkg.version}.tgz`;
}

/** What a child process did. */
export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly input?: string;
  readonly timeoutMs?: number;
}

/** Runs `cmd` with an argument array (no shell); killed after `timeoutMs` (default 120 s). */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}) {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: options.timeoutMs ?? 120_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    // A child that exits without reading its input makes the write fail (EPIPE): its exit
    // code tells what happened.
    child.stdin.on("error", () => {}).end(options.input ?? "");
  });
}

/** Runs `cmd` and throws, with its output, unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[], options: RunOptions = {}) {
  const result = await run(cmd, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${basename(cmd)} ${args.join(" ")} exited ${result.code ?? result.signal}\n${result.stdout}${result.stderr}`,
    );
  }
  return result;
}

/** The time each step took, in order, as {@link timed} recorded it. */
export const timings: { step: string; seconds: number }[] = [];

/** Runs `fn`, prints `[pack-check] step: N.NN s` on stderr, and records the time. */
export async function timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    const seconds = (performance.now() - start) / 1000;
    timings.push({ step, seconds });
    process.stderr.write(`[pack-check] ${step}: ${seconds.toFixed(2)} s\n`);
  }
}

/**
 * Packs every package of `packages` with one `pnpm pack` run (in `root`) into `dest`; returns
 * the tarball of each package by name. Throws when a tarball is missing.
 */
export async function packAll(
  packages: readonly WorkspacePackage[],
  dest: string,
  root = ROOT,
): Promise<Map<string, string>> {
  await mkdir(dest, { recursive: true });
  const filters = packages.flatMap(({ pkg }) => ["--filter", pkg.name]);
  await runOk("pnpm", ["-r", ...filters, "pack", "--pack-destination", dest], { cwd: root });
  const tarballs = new Map<string, string>();
  for (const { pkg } of packages) {
    const file = join(dest, tarballName(pkg));
    if (!existsSync(file)) throw new Error(`pnpm pack left no ${tarballName(pkg)} in ${dest}`);
    tarballs.set(pkg.name, file);
  }
  return tarballs;
}

/** Unpacks `tarball` into `dir` with the system tar; returns the package directory. */
export async function unpack(tarball: string, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await runOk("tar", ["-xzf", tarball, "-C", dir]);
  return join(dir, "package");
}

/** The dependency ranges of `pkg` still written `workspace:` or `catalog:` (`field.name: range`). */
export function unreplacedRanges(pkg: PackageJson): string[] {
  const found: string[] = [];
  for (const field of DEPENDENCY_FIELDS) {
    for (const [name, range] of Object.entries(pkg[field] ?? {})) {
      if (/^(?:workspace|catalog):/.test(range)) found.push(`${field}.${name}: ${range}`);
    }
  }
  return found;
}

/** Every file path an `exports` value names (conditions and subpaths walked). */
function exportTargets(value: unknown): string[] {
  if (typeof value === "string") return [value];
  if (value === null || typeof value !== "object") return [];
  return Object.values(value).flatMap(exportTargets);
}

/** The bare specifiers a built module imports: `from "x"`, `import "x"`, `import("x")`. */
export function importedPackages(source: string): string[] {
  const names = new Set<string>();
  const pattern =
    /(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*["']([^"']+)["']|(?:^|[;\s])import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;
  for (const match of source.matchAll(pattern)) {
    const specifier = match[1] ?? match[2] ?? match[3] ?? "";
    if (specifier.startsWith(".") || specifier.startsWith("node:")) continue;
    if (builtinModules.includes(specifier)) continue;
    const parts = specifier.split("/");
    names.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? ""));
  }
  return [...names];
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/**
 * What is wrong with an unpacked package (`dir`, the tarball's `package/`): unreplaced ranges;
 * a bin that is missing, lacks a `#!/usr/bin/env node` line (or `#!/usr/bin/env -S node <flags>`)
 * or the exec bit; an `exports` target or
 * `files` entry that is missing; a package that the built code or its types import but that
 * is not in `dependencies`, `peerDependencies` or `optionalDependencies`.
 */
export function packageProblems(dir: string): string[] {
  const pkg = readJson<PackageJson>(join(dir, "package.json"));
  const problems = unreplacedRanges(pkg).map((range) => `unreplaced range ${range}`);
  const bins = typeof pkg.bin === "string" ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {});
  for (const [name, target] of Object.entries(bins)) {
    const file = join(dir, target);
    if (!existsSync(file)) {
      problems.push(`bin ${name}: ${target} is not in the tarball`);
      continue;
    }
    if (
      !/^#!\/usr\/bin\/env (?:node|-S node(?: --[a-z-]+(?:=[\w.]+)?)+)\n/.test(
        readFileSync(file, "utf8"),
      )
    ) {
      problems.push(`bin ${name}: ${target} does not start with #!/usr/bin/env node`);
    }
    if ((statSync(file).mode & 0o111) === 0)
      problems.push(`bin ${name}: ${target} is not executable`);
  }
  for (const target of exportTargets(pkg.exports)) {
    if (!existsSync(join(dir, target))) problems.push(`exports: ${target} is not in the tarball`);
  }
  for (const entry of pkg.files ?? []) {
    if (!existsSync(join(dir, entry))) problems.push(`files: ${entry} is not in the tarball`);
  }
  const declared = new Set([
    pkg.name,
    ...Object.keys(pkg.dependencies ?? {}),
    ...Object.keys(pkg.peerDependencies ?? {}),
    ...Object.keys(pkg.optionalDependencies ?? {}),
  ]);
  const undeclared = new Map<string, string>();
  for (const file of filesUnder(dir).filter((f) => /\.(?:js|d\.ts)$/.test(f))) {
    for (const name of importedPackages(readFileSync(file, "utf8"))) {
      if (!declared.has(name) && !undeclared.has(name)) undeclared.set(name, relative(dir, file));
    }
  }
  for (const [name, file] of undeclared) {
    problems.push(`${file} imports ${name}, which is not a dependency`);
  }
  return problems;
}
