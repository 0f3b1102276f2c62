import { PassThrough } from "node:stream";
import { createLogger, fingerprint, REDACT_PATHS, silentLogger } from "@bottle/log";
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
