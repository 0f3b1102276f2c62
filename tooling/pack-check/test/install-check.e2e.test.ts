// The packed tarballs as users get them: installed together with npm and with pnpm, each bin
// run for real on loopback (see install-check.ts and actions.ts; step times go to stderr).
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTIONS } from "../actions.ts";
import { type Installed, install, packTarballs, tarballProblems } from "../install-check.ts";
import { publishedPackages, timed } from "../packs.ts";

let packed: Awaited<ReturnType<typeof packTarballs>>;

beforeAll(async () => {
  packed = await timed("pnpm pack (all published packages)", packTarballs);
});

afterAll(async () => {
  if (packed !== undefined) await rm(packed.dir, { recursive: true, force: true });
});

describe("pnpm pack", () => {
  it("gives one tarball per published package", () => {
    const names = publishedPackages().map(({ pkg }) => pkg.name);
    expect(names).toContain("@bottle/cli");
    expect([...packed.tarballs.keys()]).toEqual(names);
  });

  it("packs real ranges, bins with a shebang and the exec bit, every export, every dependency", async () => {
    const problems = await timed("tarball contents", () =>
      tarballProblems(packed.tarballs, packed.dir),
    );
    expect(problems).toEqual([]);
  });
});

describe.each(["npm", "pnpm"] as const)(
  "all tarballs installed with %s",
  { tags: ["slow"] },
  (installer) => {
    let project: Installed | undefined;

    it("installs into an empty project, every @bottle package from its tarball", async () => {
      project = await timed(`${installer} install (all tarballs)`, () =>
        install(installer, packed.tarballs, packed.dir),
      );
      expect([...project.bins.keys()].sort()).toEqual([
        "bottle",
        "bottle-cred-proxy",
        "bottle-gate",
        "bottle-gate-tokens",
        "bottle-git-gate",
        "bottle-scan",
        "bottle-tokman",
      ]);
    });

    it.each(ACTIONS)("%s", async (step, action) => {
      if (project === undefined) throw new Error(`the ${installer} install failed`);
      const installed = project;
      const outcome = await timed(`${installer}: ${step}`, () => action(installed));
      expect(outcome).not.toBe("");
    });
  },
);
