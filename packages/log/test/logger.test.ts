import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import {
  BUFFER_LIMIT,
  createLogger,
  fingerprint,
  REDACT_PATHS,
  redactRecord,
  silentLogger,
} from "@bottle/log";
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

  it("lists the documented redaction paths", () => {
    expect(REDACT_PATHS).toEqual(
      expect.arrayContaining(["req.headers.authorization", "req.headers.cookie", "token"]),
    );
    expect(Object.isFrozen(REDACT_PATHS)).toBe(true);
  });
});

describe("redactRecord", () => {
  it("censors every REDACT_PATHS value, copies on write and never changes the caller's object", () => {
    const record = {
      req: { headers: { authorization: "a", "x-api-key": "k", accept: "json" }, method: "GET" },
      res: { headers: { "set-cookie": ["c"], etag: "e" } },
      password: "p",
      deep: { secret: "s", keep: 1, deeper: { token: "two levels down is not a path" } },
      list: ["token"],
      kept: "value",
    };
    const before = structuredClone(record);
    const out = redactRecord(record);
    expect(record).toEqual(before);
    expect(out).toEqual({
      req: {
        headers: { authorization: "[redacted]", "x-api-key": "[redacted]", accept: "json" },
        method: "GET",
      },
      res: { headers: { "set-cookie": "[redacted]", etag: "e" } },
      password: "[redacted]",
      deep: { secret: "[redacted]", keep: 1, deeper: { token: "two levels down is not a path" } },
      list: ["token"],
      kept: "value",
    });
  });

  it("returns a record with nothing to hide as it is", () => {
    const record = { route: "/api/", status: 200, nested: { bytes: 3 }, token: undefined };
    expect(redactRecord(record)).toBe(record);
  });

  it("covers each documented path", () => {
    for (const path of REDACT_PATHS) {
      const names = [...path.matchAll(/([^.[\]"]+)|\["([^"]+)"\]/g)].map((m) => m[1] ?? m[2]);
      const record: Record<string, unknown> = {};
      let node = record;
      for (const [index, name] of names.entries()) {
        const key = name === "*" ? "anything" : String(name);
        node[key] = index === names.length - 1 ? "hidden" : {};
        node = node[key] as Record<string, unknown>;
      }
      expect(JSON.stringify(redactRecord(record)), path).not.toContain("hidden");
    }
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

describe("fingerprint", () => {
  it("is a short, stable SHA-256 prefix that does not contain the secret", () => {
    const canary = makeCanary();
    const print = fingerprint(canary);
    expect(print).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(fingerprint(canary)).toBe(print);
    expect(fingerprint(`${canary}x`)).not.toBe(print);
    expect(fingerprint("abc")).toBe("sha256:ba7816bf8f01");
  });
});
