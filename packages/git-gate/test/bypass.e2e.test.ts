/**
 * Attacks on the push scanner, each through the real gate (bottle-gate + the hooks) from an
 * agent's clone with a write token. Each test judges by the effect: the secret must be in no
 * object of the upstream's object store, reachable or not, not only refused by exit code.
 */
import { randomBytes } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { commitFiles, git } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { type BottleGate, hookLog, startBottleGate } from "./fixture.ts";

/** A GitHub-token-shaped canary: `ghp_` and 36 characters (hex is alphanumeric). */
const secret = () => `ghp_${randomBytes(18).toString("hex")}`;

const REF_REFUSED = "BTL_GITGATE_REF_REFUSED";

function tryGit(bottle: BottleGate, cwd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return git(args, { cwd, env: { ...bottle.gitEnv.env, ...env }, allowFailure: true });
}

async function sh(bottle: BottleGate, cwd: string, args: string[], input?: string | Buffer) {
  const options = { cwd, env: bottle.gitEnv.env, ...(input === undefined ? {} : { input }) };
  return (await git(args, options)).stdout.trim();
}

/** True when any object in the upstream (loose or packed, reachable or not) holds `text`. */
async function upstreamHolds(bottle: BottleGate, text: string): Promise<boolean> {
  const all = await sh(bottle, bottle.upstream, [
    "cat-file",
    "--batch-all-objects",
    "--unordered",
    "--batch",
  ]);
  const utf16 = text.split("").join("\u0000");
  return all.includes(text) || all.includes(utf16);
}

/** Pushes, expects the gate to refuse with `code`, and the upstream to hold no trace of `texts`. */
async function expectRefused(
  bottle: BottleGate,
  work: string,
  args: string[],
  code: string,
  texts: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  const before = await bottle.upstreamRef("refs/heads/main");
  const pushed = await tryGit(bottle, work, ["push", ...args], env);
  expect(pushed.code, pushed.stderr).not.toBe(0);
  // Findings are listed (code in the gate's log); other refusals name their code.
  if (code === "BTL_GITGATE_SECRETS_FOUND") {
    expect(pushed.stderr).toMatch(/push rejected: \d+ possible secrets? in the pushed commits/);
    expect(await hookLog(bottle.stateDir)).toContain(code);
  } else expect(pushed.stderr).toContain(code);
  for (const text of texts) expect(await upstreamHolds(bottle, text)).toBe(false);
  expect(await bottle.upstreamRef("refs/heads/main")).toBe(before);
  // SECURITY: the refusal and the gate's log show the secrets redacted at most.
  for (const output of [pushed.stdout, pushed.stderr, await hookLog(bottle.stateDir)]) {
    for (const text of texts) expect(output).not.toContain(text);
  }
  return pushed.stderr;
}

/**
 * {@link expectRefused} for a push of `main` that the scan must reject, naming each of `places`
 * (`file:line`) in its findings.
 */
async function expectFound(
  bottle: BottleGate,
  work: string,
  texts: string[],
  places: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  const code = "BTL_GITGATE_SECRETS_FOUND";
  const stderr = await expectRefused(bottle, work, ["origin", "main"], code, texts, env);
  for (const place of places) expect(stderr).toContain(place);
  return stderr;
}

/** A gate started with `options`, and an agent's clone through it. */
async function agentClone(options?: Parameters<typeof startBottleGate>[0]) {
  const bottle = await startBottleGate(options);
  return { bottle, work: await bottle.clone() };
}

/** Stages `paths` (written by the test) and commits them. */
async function commitPaths(bottle: BottleGate, work: string, paths: string[], message: string) {
  await sh(bottle, work, ["add", ...paths]);
  await sh(bottle, work, ["commit", "-q", "-m", message]);
}

async function rawCommit(
  bottle: BottleGate,
  work: string,
  headers: string,
  message: string,
): Promise<string> {
  const tree = await sh(bottle, work, ["rev-parse", "HEAD^{tree}"]);
  const parent = await sh(bottle, work, ["rev-parse", "HEAD"]);
  const who = "Bottle Test <test@bottle.invalid> 1700000000 +0000";
  const text = `tree ${tree}\nparent ${parent}\nauthor ${who}\ncommitter ${who}\n${headers}\n${message}`;
  const oid = await sh(bottle, work, ["hash-object", "-t", "commit", "-w", "--stdin"], text);
  await sh(bottle, work, ["update-ref", "refs/heads/main", oid]);
  return oid;
}

describe("the push scanner reads everything it forwards", { tags: ["slow"] }, () => {
  it("catches a blob hidden by a replace ref, pushed or already in the mirror, and refuses refs/replace/*", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    const content = `token=${token}\n`;
    const hidden = await sh(bottle, work, ["hash-object", "-w", "--stdin"], content);
    const harmless = await sh(bottle, work, ["hash-object", "-w", "--stdin"], "harmless\n");
    await sh(bottle, work, ["replace", hidden, harmless]);
    const refused = await expectRefused(
      bottle,
      work,
      ["origin", `refs/replace/${hidden}`],
      REF_REFUSED,
      [token],
    );
    expect(refused).toContain("only branches (refs/heads/*) and tags (refs/tags/*)");
    // The mirror has the same replacement all the same (written before this gate, or by hand).
    await sh(bottle, bottle.mirror, ["hash-object", "-w", "--stdin"], "harmless\n");
    await sh(bottle, bottle.mirror, ["update-ref", `refs/replace/${hidden}`, harmless]);
    await writeFile(join(work, "config.env"), content);
    await commitPaths(bottle, work, ["config.env"], "config");
    await expectFound(bottle, work, [token], ["config.env:1"], { GIT_NO_REPLACE_OBJECTS: "1" });
  });

  it("catches a commit hidden by a replace ref in the mirror", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    await commitFiles(work, bottle.gitEnv, { "a.txt": "a\n" }, `add a\n\nkey ${token}`);
    const real = await sh(bottle, work, ["rev-parse", "HEAD"]);
    const clean = await sh(bottle, work, [
      "commit-tree",
      "HEAD^{tree}",
      "-p",
      "HEAD~1",
      "-m",
      "add a",
    ]);
    // The clean twin reaches the mirror and the upstream first, then stands in for the real one.
    const first = await tryGit(bottle, work, ["push", "origin", `${clean}:refs/heads/twin`]);
    expect(first.code, first.stderr).toBe(0);
    await sh(bottle, bottle.mirror, ["update-ref", `refs/replace/${real}`, clean]);
    await expectFound(bottle, work, [token], ["(commit message):3"], {
      GIT_NO_REPLACE_OBJECTS: "1",
    });
  });

  it("refuses pushes to refs/notes/*, refs/pull/*, and any namespace but heads and tags", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    await sh(bottle, work, ["notes", "add", "-m", `note ${token}`, "HEAD"]);
    await expectRefused(bottle, work, ["origin", "refs/notes/commits"], REF_REFUSED, [token]);
    await commitFiles(work, bottle.gitEnv, { "pr.txt": `${token}\n` }, "pr");
    for (const ref of ["refs/pull/1/head", "refs/foo/bar"]) {
      await expectRefused(bottle, work, ["origin", `HEAD:${ref}`], REF_REFUSED, [token]);
      expect(await bottle.upstreamRef(ref)).toBeUndefined();
    }
  });

  it("scans a commit's unknown header lines", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    await rawCommit(bottle, work, `x-note ${token}\n`, "harmless message\n");
    await expectFound(bottle, work, [token], ["(commit header):5"]);
  });

  it("scans a message in its stored bytes whatever encoding the commit claims", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    await rawCommit(bottle, work, "encoding IBM037\n", `release\n\ntoken ${token}\n`);
    await expectFound(bottle, work, [token], ["(commit message):3"]);
  });

  it("reads a binary file to its end: a secret after a NUL byte and 17 MiB of padding", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    const padding = Buffer.alloc(17 * 1024 * 1024, 0);
    await writeFile(join(work, "blob.bin"), Buffer.concat([padding, Buffer.from(token)]));
    await commitPaths(bottle, work, ["blob.bin"], "binary");
    await expectFound(bottle, work, [token], ["blob.bin:1"]);
  });

  it("scans file and directory names, and keeps them out of the output whole", async () => {
    const { bottle, work } = await agentClone();
    const [file, dir] = [secret(), secret()];
    await commitFiles(
      work,
      bottle.gitEnv,
      { [`docs/${file}.txt`]: "clean\n", [`${dir}/readme.md`]: "clean\n" },
      "names",
    );
    await expectFound(bottle, work, [file, dir], ["docs/:"]);
    await expectFound(bottle, work, [dir], ["./:"]);
  });

  it("scans a symlink's target and the URLs of .gitmodules", async () => {
    const { bottle, work } = await agentClone();
    const [target, url] = [secret(), secret()];
    await symlink(`../${target}`, join(work, "link"));
    await writeFile(
      join(work, ".gitmodules"),
      `[submodule "lib"]\n\tpath = lib\n\turl = https://x:${url}@git.example/lib.git\n`,
    );
    await commitPaths(bottle, work, ["link", ".gitmodules"], "link and modules");
    await expectFound(bottle, work, [target, url], ["link:1", ".gitmodules:3"]);
  });

  it("scans a UTF-16LE text file with a BOM, and the end of a 2 MiB single-line file", async () => {
    const { bottle, work } = await agentClone();
    const [wide, long] = [secret(), secret()];
    const bom = Buffer.from([0xff, 0xfe]);
    await writeFile(
      join(work, "wide.txt"),
      Buffer.concat([bom, Buffer.from(`hello\r\ntoken = ${wide}\r\n`, "utf16le")]),
    );
    await writeFile(join(work, "long.min.js"), `${"a=1;".repeat(512 * 1024)} ${long}`);
    await commitPaths(bottle, work, ["wide.txt", "long.min.js"], "wide and long");
    await expectFound(bottle, work, [wide, long], ["wide.txt:2", "long.min.js:1"]);
  });

  it("scans an orphan branch in full", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    await sh(bottle, work, ["checkout", "-q", "--orphan", "pages"]);
    await sh(bottle, work, ["rm", "-rfq", "."]);
    await commitFiles(work, bottle.gitEnv, { "index.html": `<!-- ${token} -->\n` }, "pages");
    const stderr = await expectRefused(
      bottle,
      work,
      ["origin", "pages"],
      "BTL_GITGATE_SECRETS_FOUND",
      [token],
    );
    expect(stderr).toContain("index.html:1");
    expect(await bottle.upstreamRef("refs/heads/pages")).toBeUndefined();
  });

  it("finds a secret in the 150th of 300 pushed commits", async () => {
    const { bottle, work } = await agentClone();
    const token = secret();
    const head = await sh(bottle, work, ["rev-parse", "HEAD"]);
    const commands: string[] = [];
    for (let index = 1; index <= 300; index++) {
      const body = index === 150 ? `secret ${token}\n` : `line ${index}\n`;
      const message = `commit ${index}\n`;
      commands.push(
        "commit refs/heads/main",
        `committer Bottle Test <test@bottle.invalid> ${1700000000 + index} +0000`,
        `data ${Buffer.byteLength(message)}`,
        message,
        ...(index === 1 ? [`from ${head}`] : []),
        `M 100644 inline file-${index}.txt`,
        `data ${Buffer.byteLength(body)}`,
        body,
      );
    }
    await sh(bottle, work, ["fast-import", "--quiet", "--force"], `${commands.join("\n")}\n`);
    const stderr = await expectFound(bottle, work, [token], ["file-150.txt:1"]);
    expect(stderr).toMatch(/1 possible secret in/);
  });

  it("refuses an object larger than max_blob_bytes rather than forwarding it unread", async () => {
    const { bottle, work } = await agentClone({ scanYaml: "    max_blob_bytes: 1048576" });
    const token = secret();
    await mkdir(join(work, "assets"));
    await writeFile(join(work, "assets", "big.txt"), `${"x".repeat(2 * 1024 * 1024)}\n${token}\n`);
    await commitPaths(bottle, work, ["assets"], "big");
    const stderr = await expectRefused(
      bottle,
      work,
      ["origin", "main"],
      "BTL_GITGATE_OBJECT_TOO_LARGE",
      [token],
    );
    expect(stderr).toContain("assets/big.txt");
    expect(stderr).toContain("max_blob_bytes");
  });
});
