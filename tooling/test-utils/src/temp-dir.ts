import { chmod, mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { onTestFinished } from "vitest";

/** A file for {@link testdir}: its content, or its content and a mode such as `0o755`. */
export type TestdirFile = string | { content: string; mode?: number };

/**
 * Writes `files` (paths relative to `dir`, parents created) into `dir`.
 * Throws when a path is absolute or escapes `dir`.
 */
export async function writeFiles(dir: string, files: Record<string, TestdirFile>): Promise<void> {
  for (const [name, file] of Object.entries(files)) {
    const target = resolve(dir, name);
    const rel = relative(dir, target);
    if (isAbsolute(name) || rel === "" || rel === ".." || rel.startsWith(`..${sep}`)) {
      throw new Error(`Expected a relative path inside the directory, got ${JSON.stringify(name)}`);
    }
    const { content, mode } = typeof file === "string" ? { content: file, mode: undefined } : file;
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
    // chmod after writing: the `mode` option of writeFile is masked by the umask.
    if (mode !== undefined) await chmod(target, mode);
  }
}

/**
 * Creates a fresh directory under `os.tmpdir()` (realpath'd), writes `files` into it and
 * returns its absolute path. It is removed recursively when the current test finishes.
 */
export async function testdir(files: Record<string, TestdirFile> = {}): Promise<string> {
  const created = await mkdtemp(join(tmpdir(), "bottle-test-"));
  onTestFinished(() => rm(created, { recursive: true, force: true }));
  const dir = await realpath(created);
  await writeFiles(dir, files);
  return dir;
}
