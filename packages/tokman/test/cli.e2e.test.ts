import { createHash } from "node:crypto";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createBaseEnv, runProcess, startProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { CALLER_KEY, setup } from "./fixture.ts";

const BIN = join(import.meta.dirname, "../dist/cli.js");

describe("bottle-tokman", { tags: ["slow"] }, () => {
  it("new-key prints a key on stdout and its digest on stderr; hash-key reads stdin", async () => {
    const created = await runProcess(process.execPath, [BIN, "new-key"]);
    expect(created.code).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^btk_[A-Za-z0-9_-]{32}$/);
    const digest = createHash("sha256").update(key).digest("hex");
    expect(created.stderr).toContain(`key_sha256: ${digest}`);
    const hashed = await runProcess(process.execPath, [BIN, "hash-key"], { input: `${key}\n` });
    expect(hashed.stdout.trim()).toBe(digest);
  });

  it("serves from a configuration file and stops on SIGTERM", async () => {
    const t = await setup({ realTime: true });
    await writeFile(join(t.dir, "tokman.yaml"), t.configText);
    const served = await startProcess(
      process.execPath,
      [BIN, "serve", "--config", join(t.dir, "tokman.yaml"), "--port", "0"],
      { env: createBaseEnv() },
    );
    const answer = await fetch(`${served.url}/api/acme/docs`, {
      headers: { authorization: `Bearer ${CALLER_KEY}` },
    });
    expect(answer.status).toBe(200);
    const { access_token: token } = (await answer.json()) as { access_token: string };
    await served.kill("SIGTERM");
    expect(served.stderr()).toContain('"msg":"stopped"');
    expect(served.stderr()).not.toContain(token);
    expect(served.stderr()).not.toContain(CALLER_KEY);
  });

  it("serve --socket listens on a unix socket with mode 0600, whatever its umask", async () => {
    const t = await setup({ realTime: true });
    await writeFile(join(t.dir, "tokman.yaml"), t.configText);
    const socket = join(await testdir(), "tokman.sock");
    const old = process.umask(0); // the child inherits it
    let served: Awaited<ReturnType<typeof startProcess>>;
    try {
      served = await startProcess(
        process.execPath,
        [BIN, "serve", "--config", join(t.dir, "tokman.yaml"), "--socket", socket],
        { env: createBaseEnv() },
      );
    } finally {
      process.umask(old);
    }
    expect(served.url).toBe(`unix:${socket}`);
    expect((await stat(socket)).mode & 0o777).toBe(0o600);
    const taken = await runProcess(
      process.execPath,
      [BIN, "serve", "--config", join(t.dir, "tokman.yaml"), "--socket", socket],
      { env: createBaseEnv() },
    );
    expect(taken.code).toBe(4);
    expect(taken.stderr).toContain(`BTL_TOKMAN_LISTEN: another process is listening on ${socket}`);
    await served.kill("SIGTERM");
  });

  it("serve --max-in-flight caps the requests in flight", async () => {
    const t = await setup({ realTime: true });
    await writeFile(join(t.dir, "tokman.yaml"), t.configText);
    const served = await startProcess(
      process.execPath,
      [BIN, "serve", "--config", join(t.dir, "tokman.yaml"), "--port", "0", "--max-in-flight", "1"],
      { env: createBaseEnv() },
    );
    const get = (path: string) =>
      fetch(`${served.url}${path}`, { headers: { authorization: `Bearer ${CALLER_KEY}` } });
    t.fake.latency(300);
    const slow = get("/api/acme/docs");
    while (t.fake.requests.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const busy = await get("/api/acme/docs");
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect(await busy.json()).toMatchObject({ code: "BTL_TOKMAN_BUSY" });
    expect((await slow).status).toBe(200);
    expect(served.logs()).toContainEqual(
      expect.objectContaining({ level: "warn", code: "BTL_TOKMAN_BUSY", maxInFlight: 1 }),
    );
    await served.kill("SIGTERM");
    const zero = await runProcess(process.execPath, [BIN, "serve", "--max-in-flight", "0"]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain("BTL_TOKMAN_CONFIG: option '--max-in-flight <n>' argument '0'");
  });

  it("refuses a missing configuration with exit code 2", async () => {
    const dir = await testdir();
    const result = await runProcess(process.execPath, [
      BIN,
      "serve",
      "--config",
      join(dir, "none.yaml"),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("BTL_TOKMAN_CONFIG");
    const none = await runProcess(process.execPath, [BIN, "serve"], { env: createBaseEnv() });
    expect(none.code).toBe(2);
  });
});
