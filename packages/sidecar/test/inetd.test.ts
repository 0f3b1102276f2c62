import type { Server } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { type ConnectionServing, type StopSignal, serveInetd } from "@bottle/sidecar";
import { describe, expect, it, onTestFinished } from "vitest";
import { httpServer, openSocket, recordingLogger } from "./helpers.ts";

/** An HTTP service that serves connections handed to it, and the server side of one connection. */
async function connected(): Promise<{
  service: ConnectionServing;
  client: Awaited<ReturnType<typeof openSocket>>;
  accepted: Socket;
}> {
  const server: Server = httpServer((req, res) => res.end(`served ${req.url}`));
  const acceptor = createServer();
  onTestFinished(() => {
    acceptor.close();
  });
  const accepting = new Promise<Socket>((resolve) => acceptor.once("connection", resolve));
  await new Promise<void>((resolve) => acceptor.listen(0, "127.0.0.1", resolve));
  const client = await openSocket((acceptor.address() as AddressInfo).port);
  const accepted = await accepting;
  const service: ConnectionServing = {
    server,
    handleConnection: (socket) => server.emit("connection", socket),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return { service, client, accepted };
}

describe("serveInetd", () => {
  it("serves the one connection, then resolves 0 once the client has gone", async () => {
    const { service, client, accepted } = await connected();
    const { logger, records } = recordingLogger();
    const done = serveInetd(service, { socket: accepted, onSignal: () => {}, logger });
    client.socket.write("GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await client.closed;
    expect(client.text()).toMatch(/^HTTP\/1\.1 200 [\s\S]*served \/one$/);
    expect(await done).toBe(0);
    expect(records.map((r) => r.msg)).toEqual(["listening", "stopped"]);
    expect(records[0]).toMatchObject({ url: "fd:0", mode: "inetd" });
  });

  it("stops on SIGTERM while the client holds the connection open", async () => {
    const { service, accepted } = await connected();
    const { logger, records } = recordingLogger();
    const handlers = new Map<StopSignal, () => void>();
    const done = serveInetd(service, {
      socket: accepted,
      onSignal: (signal, handler) => handlers.set(signal, handler),
      logger,
    });
    handlers.get("SIGTERM")?.();
    expect(await done).toBe(0);
    expect(records.map((r) => r.msg)).toContain("shutting down: finishing in-flight requests");
    expect(service.server.listening).toBe(false);
  });
});
