import { capConnections, listenOn } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";
import { httpServer, openSocket, portOf, recordingLogger } from "./helpers.ts";

const listenError = (message: string) => new Error(message);

/** A server capped at one connection, held open by a first client. */
async function cappedServer(options: { intervalMs: number; dropped?: "since-last" | "total" }) {
  const { logger, records } = recordingLogger();
  const server = httpServer((_req, res) => res.end("ok"));
  const cap = capConnections(server, {
    maxConnections: 1,
    logger,
    code: "BTL_TEST_TOO_MANY_CONNECTIONS",
    ...options,
  });
  await listenOn(server, {}, listenError);
  const port = portOf(server);
  const held = await openSocket(port);
  held.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await expect.poll(() => held.text()).toMatch(/ok$/);
  /** Opens `n` connections beyond the cap; each is closed unanswered. */
  const flood = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const extra = await openSocket(port);
      extra.socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await extra.closed;
      expect(extra.text()).toBe("");
    }
  };
  const drops = () => records.filter((r) => r.code === "BTL_TEST_TOO_MANY_CONNECTIONS");
  return { cap, held, flood, drops };
}

describe("capConnections", () => {
  it("closes connections beyond the cap unanswered and serves the open one", async () => {
    const { held, flood } = await cappedServer({ intervalMs: 60_000 });
    await flood(2);
    held.socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await held.closed;
    expect(held.text().match(/HTTP\/1\.1 200/g)).toHaveLength(2);
  });

  it("logs the first drop at once and the rest at most once per interval, since the last record", async () => {
    const { flood, drops } = await cappedServer({ intervalMs: 300 });
    await flood(3);
    expect(drops()).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: "connection dropped: too many open connections",
        maxConnections: 1,
        dropped: 1,
        droppedTotal: 1,
      }),
    ]);
    await expect.poll(() => drops().length).toBe(2);
    expect(drops()[1]).toMatchObject({ dropped: 2, droppedTotal: 3 });
  });

  it("can count `dropped` as the running total, and flushes what waits", async () => {
    const { cap, flood, drops } = await cappedServer({ intervalMs: 60_000, dropped: "total" });
    await flood(3);
    expect(drops()).toHaveLength(1);
    cap.flush();
    expect(drops().map((r) => [r.dropped, r.droppedTotal])).toEqual([
      [1, 1],
      [3, 3],
    ]);
    cap.flush(); // nothing waits: no record
    expect(drops()).toHaveLength(2);
  });
});
