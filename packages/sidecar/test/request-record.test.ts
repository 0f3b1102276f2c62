import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { listenOn, logRequest, type RequestRecord, startRequestRecord } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";
import { httpServer, portOf, recordingLogger } from "./helpers.ts";

describe("the request record", () => {
  it("carries the common fields and the package's own, at info or at warn when refused", async () => {
    const { logger, records } = recordingLogger();
    const server = httpServer((req, res) => {
      const started = performance.now();
      const record: RequestRecord & { route: string | null } = startRequestRecord(req, {
        route: null,
      });
      res.once("close", () => logRequest(logger, record, res, started));
      if (req.url === "/refused") {
        record.code = "BTL_TEST_REFUSED";
        res.statusCode = 403;
      }
      record.bytesOut = 2;
      res.end("ok");
    });
    await listenOn(server, {}, (message) => new Error(message));
    const base = `http://127.0.0.1:${portOf(server)}`;
    await (await fetch(`${base}/fine?token=secret`)).text();
    await (await fetch(`${base}/refused`, { method: "POST", body: "x" })).text();
    await expect.poll(() => records.length).toBe(2);
    expect(records).toEqual([
      {
        level: "info",
        msg: "request",
        reqId: expect.stringMatching(/^[0-9a-f]{8}$/),
        method: "GET",
        route: null,
        bytesIn: 0,
        bytesOut: 2,
        status: 200,
        durationMs: expect.any(Number),
      },
      expect.objectContaining({
        level: "warn",
        method: "POST",
        status: 403,
        code: "BTL_TEST_REFUSED",
      }),
    ]);
    expect(JSON.stringify(records)).not.toContain("secret");
  });
});

describe("library code", () => {
  it("never exits the process (only a cli.ts decides how a process ends)", async () => {
    const src = join(import.meta.dirname, "../src");
    for (const file of await readdir(src)) {
      const code = (await readFile(join(src, file), "utf8"))
        .split("\n")
        .filter((line) => !/^\s*(?:\/\/|\/?\*)/.test(line)); // comments may name them
      const exits = code.filter((line) => /process\.(?:exit|kill|abort|on)\b/.test(line));
      expect([file, exits]).toEqual([file, []]);
    }
  });
});
