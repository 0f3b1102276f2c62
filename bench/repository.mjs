// The benchmarks' repositories, written with `git fast-import`: a stream of blobs and commits on
// main, imported into a bare repository and packed.

/**
 * A fast-import stream: `blob(data)` adds a blob and returns its mark; `commit(i, changes)` adds
 * commit `i` on main (its `M` lines, a fixed committer at 1_700_000_000 + i s); `bytes()` is the
 * stream so far.
 */
export function fastImport() {
  const parts = [];
  let mark = 0;
  return {
    blob(data) {
      parts.push(
        Buffer.from(`blob\nmark :${++mark}\ndata ${data.length}\n`),
        data,
        Buffer.from("\n"),
      );
      return mark;
    },
    commit(i, changes) {
      const message = `commit ${i}\n`;
      parts.push(
        Buffer.from(
          `commit refs/heads/main\ncommitter Bench <bench@bottle.invalid> ${1_700_000_000 + i} +0000\n` +
            `data ${message.length}\n${message}${changes.join("\n")}\n\n`,
        ),
      );
    },
    bytes: () => Buffer.concat(parts),
  };
}

/**
 * Imports `stream` into a new bare repository at `dir` with the workspace's `git`, packs it
 * and resolves to the pack's size in MiB.
 */
export async function importRepository(git, dir, stream) {
  await git(["init", "-q", "--bare", "-b", "main", dir]);
  await git(["fast-import", "--quiet"], { cwd: dir, input: stream });
  await git(["repack", "-adq"], { cwd: dir });
  const { stdout } = await git(["count-objects", "-v"], { cwd: dir });
  return Number(/size-pack: (\d+)/.exec(stdout)?.[1] ?? 0) / 1024;
}
