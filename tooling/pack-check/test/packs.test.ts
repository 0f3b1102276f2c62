// The tarball checks on packages made up for the purpose: each flaw is found, a sound package
// passes.
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { importedPackages, packageProblems, tarballName, unreplacedRanges } from "../packs.ts";

async function packageDir(pkg: object, files: Record<string, string>, mode = 0o755) {
  const dir = await mkdtemp(join(tmpdir(), "pack-check-test-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "package.json"), JSON.stringify(pkg));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), text);
    if (name.endsWith("cli.js")) await chmod(join(dir, name), mode);
  }
  return dir;
}

const SOUND = {
  name: "@bottle/x",
  version: "1.2.3",
  bin: { x: "./dist/cli.js" },
  exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
  files: ["dist"],
  dependencies: { "@bottle/errors": "^0.1.0", commander: "^15.1.0" },
};
const SOUND_FILES = {
  "dist/cli.js":
    '#!/usr/bin/env node\nimport { Command } from "commander";\nawait import("./index.js");\n',
  "dist/index.js": 'import { isBottleError } from "@bottle/errors";\nimport "node:fs";\n',
  "dist/index.d.ts": 'export type { BottleError } from "@bottle/errors";\n',
};

describe("packageProblems", () => {
  it("finds nothing wrong with a sound package", async () => {
    expect(packageProblems(await packageDir(SOUND, SOUND_FILES))).toEqual([]);
  });

  it("takes a bin whose shebang passes Node flags through env -S, and no other interpreter", async () => {
    const flags = "#!/usr/bin/env -S node --max-semi-space-size=1 --no-concurrent-recompilation\n";
    const body = 'import { Command } from "commander";\n';
    expect(
      packageProblems(await packageDir(SOUND, { ...SOUND_FILES, "dist/cli.js": flags + body })),
    ).toEqual([]);
    for (const shebang of ["#!/usr/bin/env -S bash -c x\n", "#!/usr/bin/env -S node; rm\n"]) {
      const dir = await packageDir(SOUND, { ...SOUND_FILES, "dist/cli.js": shebang + body });
      expect(packageProblems(dir)).toEqual([
        "bin x: ./dist/cli.js does not start with #!/usr/bin/env node",
      ]);
    }
  });

  it("finds unreplaced ranges, a bad bin, a missing export and an undeclared import", async () => {
    const dir = await packageDir(
      {
        ...SOUND,
        exports: { ".": "./dist/index.js", "./schema.json": "./schema.json" },
        dependencies: { "@bottle/errors": "workspace:^" },
        devDependencies: { commander: "catalog:" },
      },
      { ...SOUND_FILES, "dist/cli.js": 'import { Command } from "commander";\n' },
      0o644,
    );
    expect(packageProblems(dir)).toEqual([
      "unreplaced range dependencies.@bottle/errors: workspace:^",
      "unreplaced range devDependencies.commander: catalog:",
      "bin x: ./dist/cli.js does not start with #!/usr/bin/env node",
      "bin x: ./dist/cli.js is not executable",
      "exports: ./schema.json is not in the tarball",
      "dist/cli.js imports commander, which is not a dependency",
    ]);
  });

  it("finds a bin, and files, missing from the tarball", async () => {
    const dir = await packageDir(
      { ...SOUND, files: ["dist", "systemd"] },
      {
        "dist/index.js": "",
        "dist/index.d.ts": "",
      },
    );
    expect(packageProblems(dir)).toEqual([
      "bin x: ./dist/cli.js is not in the tarball",
      "files: systemd is not in the tarball",
    ]);
  });
});

describe("importedPackages", () => {
  it("names the packages of static, bare and dynamic imports and re-exports", () => {
    const source = [
      'import { a } from "alpha";',
      'import "beta/register";',
      'export { c } from "@scope/gamma/sub";',
      'const d = await import("delta");',
      'import { e } from "./local.js";',
      'import { f } from "node:path";',
      'import { g } from "fs";',
    ].join("\n");
    expect(importedPackages(source)).toEqual(["alpha", "beta", "@scope/gamma", "delta"]);
  });
});

describe("unreplacedRanges", () => {
  it("lists workspace: and catalog: ranges in every dependency field", () => {
    expect(
      unreplacedRanges({
        name: "a",
        version: "1.0.0",
        peerDependencies: { b: "workspace:*" },
        optionalDependencies: { c: "catalog:tools" },
        dependencies: { d: "^1.0.0" },
      }),
    ).toEqual(["peerDependencies.b: workspace:*", "optionalDependencies.c: catalog:tools"]);
  });
});

describe("tarballName", () => {
  it("drops the scope's @ and joins it to the name", () => {
    expect(tarballName({ name: "@bottle/gate-server", version: "0.2.0" })).toBe(
      "bottle-gate-server-0.2.0.tgz",
    );
    expect(tarballName({ name: "plain", version: "1.0.0" })).toBe("plain-1.0.0.tgz");
  });
});
