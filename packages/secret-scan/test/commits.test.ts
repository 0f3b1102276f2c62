import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { git, testdir } from "@bottle/test-utils";
import { describe, expect, test } from "vitest";
import {
  commitsInRange,
  isZeroOid,
  newCommits,
  newObjects,
  newTagObjects,
  parseRefUpdates,
  type RefUpdate,
  ZERO_OID,
} from "../src/commits.ts";
import { commitIn, inRepo, type Repo, run, setup, setupWithRemote } from "./helpers.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);

/** Commits on a detached HEAD, so that no ref reaches them (as in a pre-receive hook). */
async function unreferenced(repo: Repo, count: number, from = "main"): Promise<string[]> {
  await run(repo, ["checkout", "-q", "--detach", from]);
  const shas: string[] = [];
  for (let index = 0; index < count; index++) {
    shas.push(await commitIn(repo, { [`new-${index}.txt`]: `${index}\n` }, `new ${index}`));
  }
  await run(repo, ["checkout", "-q", "main"]);
  return shas;
}

function create(newOid: string, ref = "refs/heads/feature"): RefUpdate {
  return { oldOid: ZERO_OID, newOid, ref };
}

describe("parseRefUpdates", () => {
  test("reads one update per line, sha1 and sha256 alike", () => {
    const sha256 = "c".repeat(64);
    const text = `${A} ${B} refs/heads/main\n${ZERO_OID} ${A} refs/tags/v1\n${"0".repeat(64)} ${sha256} refs/heads/x\n`;
    expect(parseRefUpdates(text)).toEqual([
      { oldOid: A, newOid: B, ref: "refs/heads/main" },
      { oldOid: ZERO_OID, newOid: A, ref: "refs/tags/v1" },
      { oldOid: "0".repeat(64), newOid: sha256, ref: "refs/heads/x" },
    ]);
    expect(parseRefUpdates("")).toEqual([]);
  });

  test.each([
    ["a short oid", `${A.slice(1)} ${B} refs/heads/main`],
    ["upper-case hex", `${A.toUpperCase()} ${B} refs/heads/main`],
    ["a missing ref", `${A} ${B}`],
    ["a ref with a space", `${A} ${B} refs/heads/a b`],
    ["a control character", `${A} ${B} refs/heads/a\u0007`],
    ["mixed hash lengths", `${A} ${"c".repeat(64)} refs/heads/main`],
    ["a CRLF line", `${A} ${B} refs/heads/main\r`],
  ])("refuses %s with BTL_SCAN_CONFIG", (_name, line) => {
    expect(() => parseRefUpdates(`${line}\n`)).toThrow(
      expect.objectContaining({ code: "BTL_SCAN_CONFIG" }),
    );
  });

  test("knows the zero oid of both hash functions", () => {
    expect(isZeroOid(ZERO_OID)).toBe(true);
    expect(isZeroOid("0".repeat(64))).toBe(true);
    expect(isZeroOid("0".repeat(39))).toBe(false);
    expect(isZeroOid(A)).toBe(false);
  });
});

describe("newCommits", () => {
  test("lists the commits no existing ref reaches, for a new branch", async () => {
    const repo = await setup();
    const shas = await unreferenced(repo, 3);
    const found = await newCommits({ ...inRepo(repo), updates: [create(shas[2] ?? "")] });
    expect(found.sort()).toEqual([...shas].sort());
  });

  test("adds nothing for a new branch at an existing commit, or for a delete", async () => {
    const repo = await setup();
    const head = await run(repo, ["rev-parse", "HEAD"]);
    expect(await newCommits({ ...inRepo(repo), updates: [create(head)] })).toEqual([]);
    const deletion = { oldOid: head, newOid: ZERO_OID, ref: "refs/heads/main" };
    expect(await newCommits({ ...inRepo(repo), updates: [deletion] })).toEqual([]);
  });

  test("stops at history any ref already holds, also below other branches", async () => {
    const repo = await setup();
    await run(repo, ["branch", "old"]);
    await commitIn(repo, { "old.txt": "old\n" }, "old work on main");
    const shas = await unreferenced(repo, 2, "old");
    const found = await newCommits({ ...inRepo(repo), updates: [create(shas[1] ?? "")] });
    expect(found.sort()).toEqual([...shas].sort());
  });

  test("peels an annotated tag pushed alone", async () => {
    const repo = await setup();
    const shas = await unreferenced(repo, 1);
    await run(repo, ["tag", "-a", "-m", "release", "v1", shas[0] ?? ""]);
    const tag = await run(repo, ["rev-parse", "v1"]);
    await run(repo, ["tag", "-d", "v1"]);
    const found = await newCommits({ ...inRepo(repo), updates: [create(tag, "refs/tags/v1")] });
    expect(found).toEqual(shas);
  });

  test("refuses a malformed oid in an update", async () => {
    const repo = await setup();
    const found = newCommits({ ...inRepo(repo), updates: [create("--all")] });
    await expect(found).rejects.toMatchObject({ code: "BTL_SCAN_CONFIG" });
  });
});

describe("newTagObjects", () => {
  test("lists a new annotated tag, not a lightweight one or one a ref holds", async () => {
    const repo = await setup();
    const [commit = ""] = await unreferenced(repo, 1);
    await run(repo, ["tag", "-a", "-m", "new tag", "v2", commit]);
    const tag = await run(repo, ["rev-parse", "v2"]);
    const updates = [create(tag, "refs/tags/v2-copy"), create(commit, "refs/tags/light")];
    // v2 itself still points at the tag object: it is not new.
    expect(await newTagObjects({ ...inRepo(repo), updates })).toEqual([]);
    await run(repo, ["tag", "-d", "v2"]);
    expect(await newTagObjects({ ...inRepo(repo), updates })).toEqual([tag]);
  });

  test("lists a tag of a blob and a ref that points at a tree; newObjects reads what they reach", async () => {
    const repo = await setup();
    const blob = (
      await git(["hash-object", "-w", "--stdin"], {
        cwd: repo.dir,
        env: repo.testEnv.env,
        input: "payload\n",
      })
    ).stdout.trim();
    await run(repo, ["tag", "-a", "-m", "blob tag", "blobtag", blob]);
    const tag = await run(repo, ["rev-parse", "blobtag"]);
    await run(repo, ["tag", "-d", "blobtag"]);
    const tree = await run(repo, ["rev-parse", "HEAD^{tree}"]);
    const found = await newTagObjects({
      ...inRepo(repo),
      updates: [create(tag, "refs/tags/blobtag"), create(tree, "refs/tags/tree")],
    });
    expect(found).toEqual([tag, tree]);
    const objects = await newObjects({
      ...inRepo(repo),
      commits: [],
      tips: found,
      since: "refs",
      timeoutMs: 30_000,
    });
    // A tree a ref points at directly is read whole, even where a branch holds it too.
    expect(objects).toEqual(
      expect.arrayContaining([
        { oid: tag, type: "tag", size: expect.any(Number) },
        { oid: blob, type: "blob", size: 8 },
        { oid: tree, type: "tree", size: expect.any(Number) },
      ]),
    );
  });
});

describe("commitsInRange", () => {
  test("reads A..B, A...B and a single revision", async () => {
    const repo = await setup();
    const base = await run(repo, ["rev-parse", "HEAD"]);
    const one = await commitIn(repo, { "1.txt": "1\n" }, "one");
    const two = await commitIn(repo, { "2.txt": "2\n" }, "two");
    const options = inRepo(repo);
    expect(await commitsInRange({ ...options, range: `${base}..HEAD` })).toEqual([two, one]);
    expect(await commitsInRange({ ...options, range: `${base}...${two}` })).toEqual([two, one]);
    expect(await commitsInRange({ ...options, range: "HEAD~1" })).toEqual([one]);
    expect(await commitsInRange({ ...options, range: "HEAD^!" })).toEqual([two]);
  });

  test.each([["--all"], ["-n1"], ["a b"], [""], ["HEAD\n"], ["x\u0000"]])(
    "refuses %j with BTL_SCAN_CONFIG",
    async (range) => {
      const repo = await setup();
      await expect(commitsInRange({ ...inRepo(repo), range })).rejects.toMatchObject({
        code: "BTL_SCAN_CONFIG",
      });
    },
  );

  test("reports an unknown revision as a git error", async () => {
    const repo = await setup();
    await expect(
      commitsInRange({ ...inRepo(repo), range: "no-such-branch..HEAD" }),
    ).rejects.toMatchObject({ code: "BTL_SCAN_GIT" });
  });
});

describe("in a real pre-receive hook", { tags: ["slow"] }, () => {
  test("sees the quarantined commits and tags of a push, and only the new ones", async () => {
    const repo = await setupWithRemote();
    const probe = join(import.meta.dirname, "fixtures", "pre-receive-probe.mjs");
    const hook = join(repo.remote, "hooks", "pre-receive");
    await writeFile(hook, `#!/bin/sh\nexec node ${JSON.stringify(probe)}\n`, { mode: 0o755 });
    const one = await commitIn(repo, { "a.txt": "a\n" }, "one");
    const two = await commitIn(repo, { "b.txt": "b\n" }, "two");
    await run(repo, ["tag", "-a", "-m", "release", "v1"]);
    const tag = await run(repo, ["rev-parse", "v1"]);
    const out = join(await testdir(), "probe.json");
    const push = await git(["push", "origin", "main:refs/heads/feature", "v1"], {
      cwd: repo.dir,
      env: { ...repo.testEnv.env, PROBE_OUT: out },
      allowFailure: true,
    });
    expect(push.code).not.toBe(0); // the probe refuses the push
    const seen = JSON.parse(await readFile(out, "utf8")) as { commits: string[]; tags: string[] };
    expect(seen.commits.sort()).toEqual([one, two].sort());
    expect(seen.tags).toEqual([tag]);
  });
});
