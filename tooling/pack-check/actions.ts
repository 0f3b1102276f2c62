/**
 * What a user does first with each installed package: every bin's --help, every export
 * imported, then one real action per package, on loopback. Each returns a line of what it saw
 * and throws when something is wrong.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { delimiter, dirname, join } from "node:path";
import type { Installed } from "./install-check.ts";
import { binEnv, git, runBin, startSidecar, whileRunning } from "./installed-bins.ts";
import { type PackageJson, readJson, run, runOk } from "./packs.ts";

/** Every installed bin answers --help with its usage and exits 0; returns the bins. */
export async function helpAll(project: Installed): Promise<string> {
  for (const name of project.bins.keys()) {
    const { stdout } = await runBin(project, name, ["--help"]);
    if (!stdout.startsWith(`Usage: ${name} `)) throw new Error(`${name} --help: ${stdout}`);
  }
  return [...project.bins.keys()].join(" ");
}

/**
 * Every entry of every package's `exports` (JSON ones as JSON modules) imports in a fresh
 * Node.js from the project's root and has exports; returns `specifier: count` lines.
 */
export async function importEveryExport(project: Installed): Promise<string> {
  const specifiers: string[] = [];
  for (const name of project.packages) {
    const pkg = readJson<PackageJson>(join(project.dir, "node_modules", name, "package.json"));
    const subpaths =
      typeof pkg.exports === "object" && pkg.exports !== null ? Object.keys(pkg.exports) : ["."];
    for (const subpath of subpaths) {
      if (subpath !== "./package.json") specifiers.push(`${name}${subpath.slice(1)}`);
    }
  }
  const script = `const counts = {};
for (const s of JSON.parse(process.argv[1])) {
  const m = s.endsWith(".json") ? await import(s, { with: { type: "json" } }) : await import(s);
  counts[s] = s.endsWith(".json") ? Object.keys(m.default).length : Object.keys(m).length;
}
process.stdout.write(JSON.stringify(counts));`;
  const { stdout } = await runOk(
    process.execPath,
    ["--input-type=module", "-e", script, JSON.stringify(specifiers)],
    { cwd: project.dir, env: binEnv(project) },
  );
  const counts = JSON.parse(stdout) as Record<string, number>;
  const empty = specifiers.filter((specifier) => !(counts[specifier] ?? 0));
  if (empty.length > 0) throw new Error(`exports with nothing in them: ${empty.join(", ")}`);
  return specifiers.map((specifier) => `${specifier}: ${counts[specifier]}`).join("\n");
}

/**
 * node-pty, which `bottle run` gives the agent a terminal with and which compiles on install,
 * loads from @bottle/cli's place in the project and runs a command on a pseudo-terminal.
 */
export async function ptyRuns(project: Installed): Promise<string> {
  const script = `import { realpathSync } from "node:fs";
import { createRequire } from "node:module";
const cli = realpathSync(process.argv[1] + "/node_modules/@bottle/cli");
const from = createRequire(cli + "/package.json");
const pty = await import(from.resolve("node-pty"));
const term = (pty.default ?? pty).spawn("/bin/echo", ["pty-ok"], {});
term.onData((data) => process.stdout.write(data));
term.onExit(({ exitCode }) => { process.exitCode = exitCode; });`;
  const { stdout } = await runOk(
    process.execPath,
    ["--input-type=module", "-e", script, project.dir],
    { cwd: project.dir, env: binEnv(project) },
  );
  if (!stdout.includes("pty-ok")) throw new Error(`node-pty printed ${JSON.stringify(stdout)}`);
  return stdout.trim();
}

/** Writes `file` in the scratch directory: a manifest named `name`, one proxy token, `extra`. */
async function writeManifest(project: Installed, file: string, name: string, extra = "") {
  const path = join(project.work, file);
  const proxy = "    - { kind: anthropic, token_ref: ANTHROPIC_API_KEY, auth: api-key }";
  const head = `version: 1\nname: ${name}\nagent: { command: [agent] }\n`;
  await writeFile(path, `${head}cred_proxy:\n  tokens:\n${proxy}\n${extra}`);
  return path;
}

/** `bottle validate` accepts the manifest; `bottle-git-gate plan --json` plans its mirror. */
export async function validateAndPlan(project: Installed): Promise<string> {
  // One repository with a GitHub App key (its file only has to exist), and the app.
  const key = join(project.work, "app.pem");
  await writeFile(key, "not parsed by validate or plan\n", { mode: 0o600 });
  const repo =
    '{ url: "https://github.com/acme/app.git", key: { provider: github-app, app: acme } }';
  const manifest = await writeManifest(
    project,
    "bottle.yaml",
    "acme",
    `git_gate:\n  repos:\n    app: ${repo}\ngithub_apps:\n  acme: { app_id: 1, private_key: ${JSON.stringify(key)} }\n`,
  );
  const { stdout } = await runBin(project, "bottle", ["validate", manifest]);
  if (!stdout.includes("ok: ") || !stdout.includes("project acme")) {
    throw new Error(`bottle validate: ${stdout}`);
  }
  const stage = join(project.work, "stage");
  const plan = await runBin(project, "bottle-git-gate", [
    ...["plan", "--manifest", manifest, "--stage", stage, "--json"],
  ]);
  const mirror = JSON.parse(plan.stdout).repos?.[0]?.mirror;
  if (mirror !== join(stage, "repos", "acme", "app.git")) {
    throw new Error(`bottle-git-gate plan: mirror ${mirror}`);
  }
  return stdout.trim();
}

/**
 * `bottle up` of a proxy-only manifest (the sandbox backend starts bottle-cred-proxy from its
 * installed package), `bottle ps` lists it, `bottle down` stops it and `ps` lists nothing.
 */
export async function upPsDown(project: Installed): Promise<string> {
  const manifest = await writeManifest(project, "up.yaml", "packed");
  const secret = `sk-ant-${randomBytes(24).toString("base64url")}`;
  const env = { XDG_STATE_HOME: join(project.work, "state"), ANTHROPIC_API_KEY: secret };
  const workspace = join(project.work, "workspace");
  await mkdir(workspace, { recursive: true });
  const up = await runBin(
    project,
    "bottle",
    ["up", manifest, "--name", "packed", "--workspace", workspace, "--yes"],
    { env },
  );
  let down: Awaited<ReturnType<typeof runBin>> | undefined;
  try {
    const ps = await runBin(project, "bottle", ["ps"], { env });
    if (!/^packed\s+running\s/m.test(ps.stdout)) throw new Error(`bottle ps: ${ps.stdout}`);
  } finally {
    down = await runBin(project, "bottle", ["down", "packed"], { env });
  }
  const after = await runBin(project, "bottle", ["ps"], { env });
  if (after.stdout.includes("packed")) throw new Error(`bottle ps after down: ${after.stdout}`);
  const printed = [up, down].map((r) => r.stdout + r.stderr).join("");
  if (printed.includes(secret)) throw new Error("bottle up/down printed the API key");
  return up.stdout.trim().split("\n")[0] ?? "";
}

/** Creates a gate token with `bottle-gate-tokens create` (read from stdout, never logged). */
export async function createToken(project: Installed, tokenFile: string): Promise<string> {
  const { stdout } = await runBin(project, "bottle-gate-tokens", [
    ...["create", "--token-file", tokenFile, "--project", "acme", "--task", "pack-check"],
  ]);
  const token = stdout.trim();
  if (!/^\S{20,}$/.test(token)) throw new Error("bottle-gate-tokens create printed no token");
  return token;
}

/**
 * Serves a bare repository with `bottle-gate` on 127.0.0.1:0 and lists it with `git ls-remote`
 * and a token from `bottle-gate-tokens`; a made-up token is refused. Returns the listed refs.
 */
export async function gateLsRemote(project: Installed): Promise<string> {
  const base = join(project.work, "gate");
  const seed = join(project.work, "seed");
  await git(["init", "-q", "-b", "main", seed], project);
  await writeFile(join(seed, "README.md"), "served by the installed gate\n");
  await git(["-C", seed, "add", "README.md"], project);
  const author = { GIT_AUTHOR_NAME: "a", GIT_AUTHOR_EMAIL: "a@a", GIT_COMMITTER_NAME: "a" };
  await git(["-C", seed, "commit", "-q", "-m", "one"], project, {
    ...author,
    GIT_COMMITTER_EMAIL: "a@a",
  });
  await mkdir(join(base, "acme"), { recursive: true });
  await git(["clone", "-q", "--bare", seed, join(base, "acme", "app.git")], project);
  const tokenFile = join(project.work, "tokens", "tokens.json");
  await mkdir(dirname(tokenFile), { recursive: true, mode: 0o700 });
  const token = await createToken(project, tokenFile);
  const gate = await startSidecar(project, "bottle-gate", [
    ...["--base-path", base, "--token-file", tokenFile, "--port", "0"],
  ]);
  return whileRunning("bottle-gate", gate, async () => {
    const url = `${gate.url}/acme/app.git`;
    // SECURITY: the token goes in git's environment as a header, never in argv.
    const auth = (secret: string) => ({
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "http.extraHeader",
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`${secret}:x`).toString("base64")}`,
      GIT_TERMINAL_PROMPT: "0",
    });
    const listed = await git(["ls-remote", url], project, auth(token));
    if (!/\trefs\/heads\/main$/m.test(listed.stdout))
      throw new Error(`ls-remote: ${listed.stdout}`);
    const refused = await run("git", ["ls-remote", url], {
      cwd: project.work,
      env: binEnv(project, auth(randomBytes(24).toString("base64url"))),
    });
    if (refused.code === 0) throw new Error("bottle-gate served a made-up token");
    if (gate.stderr().includes(token)) throw new Error("bottle-gate logged the token");
    return listed.stdout.trim();
  });
}

/**
 * Starts `bottle-cred-proxy` with one route to a local HTTP server and sends one request
 * through it with a client credential: the server must see the route's token instead.
 */
export async function proxyRequest(project: Installed): Promise<string> {
  const token = `tok_${randomBytes(24).toString("base64url")}`;
  const seen: { url?: string | undefined; authorization?: string | undefined } = {};
  const upstream = createServer((req, res) => {
    seen.url = req.url;
    seen.authorization = req.headers.authorization;
    res.writeHead(200, { "content-type": "text/plain" }).end("upstream answered\n");
  });
  upstream.listen(0, "127.0.0.1");
  await once(upstream, "listening");
  const port = (upstream.address() as AddressInfo).port;
  try {
    const routes = join(project.work, "routes.json");
    const route = {
      path: "/up/",
      upstream: `http://127.0.0.1:${port}`,
      auth: { scheme: "Bearer" },
      token_env: "BOTTLE_PROXY_TOKEN_0",
    };
    await writeFile(routes, JSON.stringify({ version: 1, routes: [route] }));
    const proxy = await startSidecar(
      project,
      "bottle-cred-proxy",
      ["--routes", routes, "--port", "0"],
      { BOTTLE_PROXY_TOKEN_0: token },
    );
    return await whileRunning("bottle-cred-proxy", proxy, async () => {
      const res = await fetch(`${proxy.url}/up/hello?x=1`, {
        headers: { authorization: "Bearer client-credential" },
      });
      const body = await res.text();
      if (res.status !== 200 || body !== "upstream answered\n") {
        throw new Error(`proxy answered ${res.status}: ${body}`);
      }
      if (seen.url !== "/hello?x=1" || seen.authorization !== `Bearer ${token}`) {
        throw new Error(
          `upstream saw ${seen.url} with ${seen.authorization ? "another" : "no"} credential`,
        );
      }
      if (proxy.stderr().includes(token)) throw new Error("bottle-cred-proxy logged the token");
      return `${res.status} ${seen.url}`;
    });
  } finally {
    upstream.close();
  }
}

/** `bottle-tokman new-key`, then `hash-key` of that key (on stdin): the same key_sha256. */
export async function tokmanKey(project: Installed): Promise<string> {
  const created = await runBin(project, "bottle-tokman", ["new-key"]);
  const key = created.stdout.trim();
  const printed = created.stderr.match(/key_sha256: ([0-9a-f]{64})/)?.[1];
  const hashed = await runBin(project, "bottle-tokman", ["hash-key"], { input: `${key}\n` });
  const digest = createHash("sha256").update(key).digest("hex");
  if (printed !== digest || hashed.stdout.trim() !== digest) {
    throw new Error("bottle-tokman: new-key and hash-key disagree");
  }
  return digest;
}

/** `bottle-scan` finds a GitHub token committed to a small repository, and prints it redacted. */
export async function scanCommit(project: Installed): Promise<string> {
  const repo = join(project.work, "scanned");
  const secret = `ghp_${randomBytes(27).toString("base64url").replace(/[-_]/g, "a").slice(0, 36)}`;
  await git(["init", "-q", "-b", "main", repo], project);
  await writeFile(join(repo, "config.env"), `GITHUB_TOKEN=${secret}\n`);
  await git(["-C", repo, "add", "config.env"], project);
  await git(["-C", repo, "commit", "-q", "-m", "config"], project, {
    GIT_AUTHOR_NAME: "a",
    GIT_AUTHOR_EMAIL: "a@a",
    GIT_COMMITTER_NAME: "a",
    GIT_COMMITTER_EMAIL: "a@a",
  });
  const found = await runBin(
    project,
    "bottle-scan",
    ["--range", "HEAD", "--repo", repo, "--scanner", "builtin"],
    { expectCode: 1 },
  );
  if (!found.stdout.includes("config.env")) throw new Error(`bottle-scan: ${found.stdout}`);
  if (`${found.stdout}${found.stderr}`.includes(secret))
    throw new Error("bottle-scan printed the secret");
  return found.stdout.trim().split("\n")[0] ?? "";
}

/** A Node.js older than 22.12: `BOTTLE_OLD_NODE`, else /usr/bin/node; throws when there is none. */
export async function oldNode(): Promise<{ path: string; version: string }> {
  const path = process.env.BOTTLE_OLD_NODE ?? "/usr/bin/node";
  const version = existsSync(path)
    ? (await runOk(path, ["-p", "process.versions.node"])).stdout.trim()
    : "";
  const [major = 99, minor = 0] = version.split(".").map(Number);
  if (!(major < 22 || (major === 22 && minor < 12))) {
    throw new Error(
      `no Node.js older than 22.12 at ${path} (${version || "missing"}): set BOTTLE_OLD_NODE`,
    );
  }
  return { path, version };
}

/**
 * Every installed bin, started by an older Node.js (first on PATH), prints `BTL_NODE_VERSION`
 * naming 22.12.0 and that Node's version, and exits 1.
 */
export async function refusesOldNode(project: Installed): Promise<string> {
  const old = await oldNode();
  for (const name of project.bins.keys()) {
    const path = [dirname(old.path), "/usr/bin", "/bin"].join(delimiter);
    const result = await runBin(project, name, ["--help"], { env: { PATH: path }, expectCode: 1 });
    const expected = `BTL_NODE_VERSION: ${name} needs Node.js 22.12.0 or newer, and this is Node.js ${old.version}`;
    if (!result.stderr.startsWith(expected) || result.stdout !== "") {
      throw new Error(`${name} on Node.js ${old.version}: ${result.stderr}`);
    }
  }
  return old.version;
}

/** The actions run against each installed project, in order, with their step names. */
export const ACTIONS: readonly (readonly [string, (project: Installed) => Promise<string>])[] = [
  ["--help of every bin", helpAll],
  ["every export of every package imports", importEveryExport],
  ["node-pty (bottle run's terminal) runs a command", ptyRuns],
  ["bottle validate + bottle-git-gate plan", validateAndPlan],
  ["bottle up + ps + down (the proxy sidecar, sandbox backend)", upPsDown],
  ["bottle-gate + git ls-remote with a bottle-gate-tokens token", gateLsRemote],
  ["bottle-cred-proxy, one request to a local server", proxyRequest],
  ["bottle-tokman new-key + hash-key", tokmanKey],
  ["bottle-scan finds a committed token", scanCommit],
  ["every bin on an older Node.js", refusesOldNode],
];
