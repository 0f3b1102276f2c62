// Build stage: links every bin of a deployed package and of the @bottle packages it carries
// into DIR/bin (relative links, so DIR can be copied anywhere), and makes each target
// executable. Usage: node link-bins.mjs DIR
import { chmodSync, existsSync, globSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const dir = process.argv[2];
if (dir === undefined) throw new Error("usage: node link-bins.mjs DIR");
const manifests = [
  join(dir, "package.json"),
  ...globSync("node_modules/.pnpm/@bottle+*/node_modules/@bottle/*/package.json", { cwd: dir }).map(
    (path) => join(dir, path),
  ),
];
mkdirSync(join(dir, "bin"), { recursive: true });
for (const manifest of manifests) {
  const { bin = {} } = JSON.parse(readFileSync(manifest, "utf8"));
  for (const [name, file] of Object.entries(bin)) {
    const target = join(dirname(manifest), file);
    const link = join(dir, "bin", name);
    if (existsSync(link)) continue;
    chmodSync(target, 0o755);
    symlinkSync(relative(join(dir, "bin"), target), link);
    process.stdout.write(`${name} -> ${relative(dir, target)}\n`);
  }
}
