import { createServer } from "node:http";
import { connect, type Socket } from "node:net";
import type { Logger } from "@bottle/log";
import { describe, expect, it, onTestFinished } from "vitest";
import { capConnections } from "../src/connections.ts";
import { listenOn } from "../src/listen.ts";

function recorder(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const write = (level: string) => (fields: object, msg?: string) =>
    records.push({ level, ...fields, msg });
  const log = {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: () => log,
  } as unknown as Logger;
  return { log, records };
}

function open(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.once("connect", () => resolve({ socket, closed }));
    socket.once("error", reject);
  });
}

describe("capConnections", () => {
  it("closes connections beyond the cap unanswered and logs the drops, rate-limited", async () => {
    const server = createServer((_req, res) => res.end("ok"));
    const { log, records } = recorder();
    const cap = capConnections(server, { max: 2, log, code: "BTL_TEST_TOO_MANY" });
    const port = Number(new URL(await listenOn(server, { port: 0 }, (m) => new Error(m))).port);
    onTestFinished(() => {
      server.closeAllConnections();
      server.close();
    });
    const held = [await open(port), await open(port)];
    await new Promise((resolve) => setTimeout(resolve, 50));
    const extra = [await open(port), await open(port), await open(port)];
    for (const { closed } of extra) await closed;
    expect(server.maxConnections).toBe(2);
    // The first drop at once; the two others wait for the interval, or for flush().
    expect(records).toEqual([
      expect.objectContaining({
        level: "warn",
        code: "BTL_TEST_TOO_MANY",
        maxConnections: 2,
        dropped: 1,
        droppedTotal: 1,
      }),
    ]);
    cap.flush();
    expect(records.at(-1)).toMatchObject({ dropped: 2, droppedTotal: 3 });
    cap.flush(); // nothing pending: no record
    expect(records).toHaveLength(2);
    for (const { socket } of held) socket.destroy();
  });
});
