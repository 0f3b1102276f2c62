import { answerMalformedRequests, listenOn, trackInFlight } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";
import { httpServer, openSocket, portOf, recordingLogger } from "./helpers.ts";

const listenError = (message: string) => new Error(message);

describe("trackInFlight", () => {
  it("drains: refuses new connections, waits for the requests in flight, closes idle ones", async () => {
    let finish = () => {};
    const server = httpServer();
    const inFlight = trackInFlight(server);
    server.on("request", (req, res) => {
      inFlight.track(req, res);
      if (req.url === "/slow") finish = () => res.end("slow");
      else res.end("fast");
    });
    await listenOn(server, {}, listenError);
    const port = portOf(server);
    const idle = await openSocket(port);
    idle.socket.write("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    await expect.poll(() => idle.text()).toMatch(/fast$/);
    const slow = await openSocket(port);
    slow.socket.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await expect.poll(() => inFlight.count()).toBe(1);
    expect(inFlight.busy(slow.socket)).toBe(false); // the client's end, not the server's
    let drained = false;
    const draining = inFlight.drain().then(() => {
      drained = true;
    });
    expect(inFlight.drain()).toBe(inFlight.drain());
    await idle.closed; // the idle keep-alive connection is closed at once
    await expect(openSocket(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(drained).toBe(false);
    finish();
    await draining;
    expect(slow.text()).toMatch(/slow$/);
    expect(inFlight.count()).toBe(0);
  });
});

describe("answerMalformedRequests", () => {
  it("answers 400 or 431 without a body, and logs the parser's code, never the bytes", async () => {
    const { logger, records } = recordingLogger();
    const server = httpServer((_req, res) => res.end());
    answerMalformedRequests(server, logger, trackInFlight(server));
    await listenOn(server, {}, listenError);
    const port = portOf(server);
    const bad = await openSocket(port);
    bad.socket.write("GET /x HTTP/1.1\r\nHost : secret-value\r\n\r\n");
    await bad.closed;
    expect(bad.text()).toBe(
      "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    const big = await openSocket(port);
    big.socket.write(`GET /x HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    await big.closed;
    expect(big.text()).toMatch(/^HTTP\/1\.1 431 /);
    expect(records).toEqual([
      expect.objectContaining({ level: "warn", status: 400, msg: "malformed request" }),
      expect.objectContaining({ level: "warn", status: 431, parseError: "HPE_HEADER_OVERFLOW" }),
    ]);
    expect(JSON.stringify(records)).not.toContain("secret-value");
  });
});
