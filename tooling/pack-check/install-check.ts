/**
 * Installs every packed tarball together into an empty project (with npm, or with pnpm) and
 * runs what a user would (actions.ts): each bin's --help, then one real action per package.
 * Run it on its own: `node tooling/pack-check/install-check.ts` (exit 1 on any failure).
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ACTIONS } from "./actions.ts";
import {
  type PackageJson,
  packAll,
  packageProblems,
  publishedPackages,
  readJson,
  runOk,
  timed,
  timings,
  unpack,
} from "./packs.ts";

/** The package managers a project installs the tarballs with. */
export type Installer = "npm" | "pnpm";

/**
 * An installed project: its directory, the packages installed from tarballs, their bins by name,
 * and a scratch directory for actions.
 */
export interface Installed {
  readonly installer: Installer;
  readonly dir: string;
  readonly packages: readonly string[];
  readonly bins: ReadonlyMap<string, string>;
  readonly work: string;
}

/** Packs every published package into a new temporary directory; returns it and the tarballs. */
export async function packTarballs(): Promise<{ dir: string; tarballs: Map<string, string> }> {
  const dir = await mkdtemp(join(tmpdir(), "bottle-pack-"));
  return { dir, tarballs: await packAll(publishedPackages(), join(dir, "tarballs")) };
}

/** What is wrong with each tarball ({@link packageProblems}), as `name: problem` lines. */
export async function tarballProblems(
  tarballs: ReadonlyMap<string, string>,
  root: string,
): Promise<string[]> {
  const problems: string[] = [];
  for (const [name, tarball] of tarballs) {
    const dir = await unpack(tarball, join(root, "unpacked", name));
    problems.push(...packageProblems(dir).map((problem) => `${name}: ${problem}`));
  }
  return problems;
}

/**
 * Installs all `tarballs` together into `<root>/<installer>`, an empty project: npm with
 * `--prefer-offline`, or pnpm with each `@bottle/*` dependency overridden by its tarball (as
 * a user installing local tarballs must) and node-pty's build allowed. Third-party
 * dependencies come from the local cache where it has them, otherwise from the npm registry.
 */
export async function install(
  installer: Installer,
  tarballs: ReadonlyMap<string, string>,
  root: string,
): Promise<Installed> {
  const dir = join(root, installer);
  await mkdir(dir, { recursive: true });
  // Native addons (node-pty, ssh2's optional ones) build against this Node's own headers when
  // it carries them (the npm registry's Node does), not whatever a user config names.
  const nodeDir = dirname(dirname(process.execPath));
  const env = existsSync(join(nodeDir, "include", "node", "node.h"))
    ? { ...process.env, npm_config_nodedir: nodeDir }
    : process.env;
  const files = Object.fromEntries([...tarballs].map(([name, file]) => [name, `file:${file}`]));
  if (installer === "npm") {
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "try", private: true }));
    await runOk(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", ...tarballs.values()],
      { cwd: dir, env, timeoutMs: 300_000 },
    );
  } else {
    const pnpm = {
      overrides: files,
      onlyBuiltDependencies: ["node-pty"],
      ignoredBuiltDependencies: ["cpu-features", "ssh2"],
    };
    const pkg = { name: "try", private: true, dependencies: files, pnpm };
    await writeFile(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
    await runOk("pnpm", ["install", "--prefer-offline"], { cwd: dir, env, timeoutMs: 300_000 });
  }
  assertFromTarballs(installer, dir, tarballs);
  const bins = new Map<string, string>();
  for (const name of tarballs.keys()) {
    const pkg = readJson<PackageJson>(join(dir, "node_modules", name, "package.json"));
    for (const bin of Object.keys(typeof pkg.bin === "string" ? { [name]: 1 } : (pkg.bin ?? {}))) {
      bins.set(bin, join(dir, "node_modules", ".bin", bin));
    }
  }
  const work = join(dir, "work");
  await mkdir(work, { recursive: true, mode: 0o700 });
  return { installer, dir, packages: [...tarballs.keys()], bins, work };
}

/**
 * SECURITY: every `@bottle/*` package of the project is one of our tarballs, in one copy; none
 * came from the registry (where another owner could publish the same name).
 */
function assertFromTarballs(
  installer: Installer,
  dir: string,
  tarballs: ReadonlyMap<string, string>,
) {
  const foreign: string[] = [];
  if (installer === "npm") {
    const lock = readJson<{ packages: Record<string, { resolved?: string }> }>(
      join(dir, "package-lock.json"),
    );
    for (const [path, entry] of Object.entries(lock.packages)) {
      const name = path.match(/node_modules\/(@bottle\/[^/]+)$/)?.[1];
      if (name === undefined) continue;
      const top = path === `node_modules/${name}`;
      if (!top || !tarballs.has(name) || !entry.resolved?.startsWith("file:")) foreign.push(path);
    }
  } else {
    for (const entry of readdirSync(join(dir, "node_modules", ".pnpm"))) {
      if (entry.startsWith("@bottle+") && !entry.includes("@file+")) foreign.push(entry);
    }
  }
  if (foreign.length > 0) throw new Error(`@bottle packages not from the tarballs: ${foreign}`);
}

async function main(): Promise<number> {
  const failures: string[] = [];
  const packed = await timed("pnpm pack (all published packages)", packTarballs);
  try {
    const problems = await timed("tarball contents", () =>
      tarballProblems(packed.tarballs, packed.dir),
    );
    failures.push(...problems);
    for (const installer of ["npm", "pnpm"] as const) {
      let project: Installed;
      try {
        project = await timed(`${installer} install (all tarballs)`, () =>
          install(installer, packed.tarballs, packed.dir),
        );
      } catch (error) {
        failures.push(`${installer} install: ${(error as Error).message}`);
        continue;
      }
      for (const [step, action] of ACTIONS) {
        try {
          await timed(`${installer}: ${step}`, () => action(project));
        } catch (error) {
          failures.push(`${installer}: ${step}: ${(error as Error).message}`);
        }
      }
    }
  } finally {
    await rm(packed.dir, { recursive: true, force: true });
  }
  const total = timings.reduce((sum, t) => sum + t.seconds, 0);
  process.stderr.write(`[pack-check] total: ${total.toFixed(2)} s\n`);
  for (const failure of failures) process.stderr.write(`[pack-check] FAILED ${failure}\n`);
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) process.exitCode = await main();
