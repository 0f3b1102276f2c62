import { runProcess } from "./process.ts";

/**
 * The URLs of every module a fresh Node process resolves while importing `specifier` from
 * `cwd` (a package's directory, so its own dependencies resolve): what an entry point really
 * loads, for tests that keep an entry light. Throws when the import fails.
 */
export async function importedModules(specifier: string, cwd: string): Promise<string[]> {
  const script = [
    'import { registerHooks } from "node:module";',
    "const seen = [];",
    "registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.push(r.url); return r; } });",
    `await import(${JSON.stringify(specifier)});`,
    "process.stdout.write(JSON.stringify(seen));",
  ].join("\n");
  const result = await runProcess(process.execPath, ["--input-type=module", "-e", script], { cwd });
  if (result.code !== 0) throw new Error(`importing ${specifier} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as string[];
}
