// Sums vitest's JSON reports of the workspace's packages (every one with a test script must
// have left `vitest-report.json`; a package with another check script counts when it did, and
// so does a suite run on its own, `vitest-report.<suite>.json`) and prints
// `N passed, N failed` (and skipped). Exits 1 when a package left no report or a test failed.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const group of ["packages", "apps", "tooling"]) {
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    const pkgFile = join(dir, "package.json");
    if (!existsSync(pkgFile)) continue;
    const pkg = JSON.parse(readFileSync(pkgFile, "utf8"));
    if (!existsSync(join(dir, "vitest-report.json"))) {
      // A package without a test script (the release checks) reports only when CI ran it.
      if (pkg.scripts?.test) missing.push(`${group}/${name}`);
    }
    // The main report, and those of suites run on their own (`vitest-report.docker.json`).
    const reports = readdirSync(dir).filter((f) => /^vitest-report(\.[a-z-]+)?\.json$/.test(f));
    for (const file of reports) {
      const report = JSON.parse(readFileSync(join(dir, file), "utf8"));
      passed += report.numPassedTests ?? 0;
      failed += report.numFailedTests ?? 0;
      skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
    }
  }
}
if (missing.length > 0) console.error(`no test report from: ${missing.join(", ")}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 || missing.length > 0 || passed === 0 ? 1 : 0;
