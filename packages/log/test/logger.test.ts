import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { BUFFER_LIMIT, createLogger, silentLogger } from "@bottle/log";
import { expectNoCanary, makeCanary } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

function capture() {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c.toString()));
  const lines = () =>
    chunks
      .join("")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, lines, text: () => chunks.join("") };
}

describe("createLogger", () => {
  it("writes JSON lines with level label, name, time and message", () => {
    const out = capture();
    createLogger({ name: "bottle-test", destination: out.stream }).info(
      { url: "http://127.0.0.1:1" },
      "listening",
    );
    const [line] = out.lines();
    expect(line).toMatchObject({
      level: "info",
      name: "bottle-test",
      msg: "listening",
      url: "http://127.0.0.1:1",
    });
    expect(typeof line?.time).toBe("string");
  });

  it("redacts credential headers and secret fields", () => {
    const canary = makeCanary();
    const out = capture();
    const log = createLogger({ name: "t", destination: out.stream });
    log.warn({
      req: {
        headers: {
          authorization: `Bearer ${canary}`,
          "proxy-authorization": canary,
          cookie: canary,
          "x-api-key": canary,
        },
      },
      res: { headers: { "set-cookie": canary } },
      token: canary,
      nested: { secret: canary, password: canary },
    });
    expectNoCanary(canary, out.text());
    expect(out.text()).toContain("[redacted]");
  });

  it("redacts in child loggers too", () => {
    const canary = makeCanary();
    const out = capture();
    createLogger({ name: "t", destination: out.stream })
      .child({ requestId: "r1" })
      .info({ token: canary });
    expectNoCanary(canary, out.text());
    expect(out.lines()[0]).toMatchObject({ requestId: "r1", token: "[redacted]" });
  });

  it("redacts secrets in child bindings", () => {
    const canary = makeCanary();
    const out = capture();
    createLogger({ name: "t", destination: out.stream })
      .child({ token: canary, nested: { password: canary } })
      .child({ req: { headers: { cookie: canary } } })
      .info({ ok: 1 }, "x");
    expectNoCanary(canary, out.text());
    expect(out.lines()[0]).toMatchObject({ ok: 1, token: "[redacted]" });
  });

  it("honours the level", () => {
    const out = capture();
    const log = createLogger({ name: "t", level: "warn", destination: out.stream });
    log.info({}, "dropped");
    log.warn({}, "kept");
    expect(out.lines().map((l) => l.msg)).toEqual(["kept"]);
  });
});

describe("buffered logger", () => {
  const run = (script: string) => {
    const dir = mkdtempSync(join(tmpdir(), "bottle-log-"));
    try {
      const file = join(dir, "out.log");
      const result = spawnSync(
        process.execPath,
        ["--input-type=module", "-e", script.replaceAll("FILE", JSON.stringify(file))],
        { encoding: "utf8", timeout: 20_000, cwd: join(import.meta.dirname, "..") },
      );
      expect(result.stderr).toBe("");
      return readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const prelude = `import { openSync } from "node:fs"; import { createLogger } from "@bottle/log";
    const log = createLogger({ name: "t", buffered: true, destination: openSync(FILE, "w") });`;

  it("writes every line, also those still queued when the process exits", () => {
    const lines = run(
      `${prelude} for (let i = 0; i < 5000; i++) log.info({ i }, "request"); process.exit(0);`,
    );
    expect(lines).toHaveLength(5000);
    expect(lines.map((l) => l.i)).toEqual([...Array(5000).keys()]);
  });

  it("holds at most BUFFER_LIMIT bytes, drops the rest and reports how many", () => {
    const big = "x".repeat(64 * 1024);
    const count = Math.ceil((2 * BUFFER_LIMIT) / big.length);
    // One synchronous burst: the destination cannot take a line before it ends.
    const lines = run(
      `${prelude} for (let i = 0; i < ${count}; i++) log.info({ i, big: "${big}" }, "line");
       setTimeout(() => process.exit(0), 1500);`,
    );
    const kept = lines.filter((l) => l.msg === "line");
    const report = lines.find((l) => l.msg?.toString().startsWith("log lines dropped"));
    expect(kept.length).toBeLessThan(count);
    expect(kept.length).toBeGreaterThan(0);
    expect(report).toMatchObject({ level: "warn", dropped: count - kept.length });
  });
});

describe("silentLogger", () => {
  it("accepts every call and returns itself as child", () => {
    silentLogger.info({ a: 1 }, "x");
    silentLogger.error({ err: new Error("x") });
    expect(silentLogger.child({ a: 1 })).toBe(silentLogger);
  });
});
