import { capConnections, DROP_LOG_INTERVAL_MS, listenOn } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";
import { httpServer, openSocket, portOf, recordingLogger } from "./helpers.ts";

describe("capConnections", () => {
  it("closes connections beyond the cap unanswered, serves the open one, and logs the drops rate-limited", async () => {
    const { logger, records } = recordingLogger();
    const server = httpServer((_req, res) => res.end("ok"));
    const cap = capConnections(server, { max: 1, log: logger, code: "BTL_TEST_TOO_MANY" });
    await listenOn(server, {}, (message) => new Error(message));
    const port = portOf(server);
    const held = await openSocket(port);
    held.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await expect.poll(() => held.text()).toMatch(/ok$/);
    for (let i = 0; i < 3; i++) {
      const extra = await openSocket(port);
      extra.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await extra.closed;
      expect(extra.text()).toBe("");
    }
    expect(server.maxConnections).toBe(1);
    // The first drop at once; the two others wait for the interval, or for flush().
    expect(records).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: "connections dropped: too many open connections",
        code: "BTL_TEST_TOO_MANY",
        maxConnections: 1,
        dropped: 1,
        droppedTotal: 1,
      }),
    ]);
    expect(DROP_LOG_INTERVAL_MS).toBe(10_000);
    cap.flush();
    expect(records.at(-1)).toMatchObject({ dropped: 2, droppedTotal: 3 });
    cap.flush(); // nothing pending: no record
    expect(records).toHaveLength(2);
    held.socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await held.closed;
    expect(held.text().match(/HTTP\/1\.1 200/g)).toHaveLength(2);
  });
});
