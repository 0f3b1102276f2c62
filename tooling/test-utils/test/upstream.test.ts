import { request } from "node:http";
import { describe, expect, it, onTestFinished } from "vitest";
import { type RecordedRequest, startUpstream } from "../src/index.ts";

interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  chunks?: string[];
}

/** Sends one request without an agent; several `chunks` make a chunked body. */
function send(url: string, options: SendOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      agent: false,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
    });
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}

describe("startUpstream", () => {
  it("listens on 127.0.0.1 and answers 200 {ok:true} by default", async () => {
    const upstream = await startUpstream();
    expect(upstream.url).toBe(`http://127.0.0.1:${upstream.port}`);
    expect(upstream.port).toBeGreaterThan(0);
    expect(await send(`${upstream.url}/`)).toEqual({ status: 200, body: '{"ok":true}' });
  });

  it("records method, url, headers and raw header case", async () => {
    const upstream = await startUpstream();
    await send(`${upstream.url}/repo.git/info/refs?service=git-upload-pack`, {
      headers: { "X-Custom-Header": "value-1", Authorization: "Bearer test" },
    });
    const [recorded] = upstream.requests;
    expect(recorded).toMatchObject({
      method: "GET",
      url: "/repo.git/info/refs?service=git-upload-pack",
      httpVersion: "1.1",
      headers: { "x-custom-header": "value-1", authorization: "Bearer test" },
    });
    expect(recorded?.rawHeaders).toEqual(expect.arrayContaining(["X-Custom-Header", "value-1"]));
    expect(recorded?.body).toEqual(Buffer.alloc(0));
  });

  it("records a chunked POST body in full before the handler runs", async () => {
    const seen: Array<{ body: string; recordedFirst: boolean }> = [];
    const upstream = await startUpstream((req, res) => {
      seen.push({ body: req.body.toString(), recordedFirst: upstream.requests.includes(req) });
      res.writeHead(201).end("created");
    });
    const reply = await send(`${upstream.url}/upload`, {
      method: "POST",
      chunks: ["first-", "second-", "third"],
    });
    expect(reply).toEqual({ status: 201, body: "created" });
    expect(upstream.requests[0]?.headers["transfer-encoding"]).toBe("chunked");
    expect(upstream.requests[0]?.body.toString()).toBe("first-second-third");
    expect(seen).toEqual([{ body: "first-second-third", recordedFirst: true }]);
  });

  it("awaits an async handler", async () => {
    const upstream = await startUpstream(async (req: RecordedRequest, res) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      res.writeHead(200, { "content-type": "text/plain" }).end(`echo ${req.method} ${req.url}`);
    });
    expect(await send(`${upstream.url}/x`, { method: "DELETE" })).toEqual({
      status: 200,
      body: "echo DELETE /x",
    });
  });

  it("answers 500 when the handler throws and reports the error from close", async () => {
    const upstream = await startUpstream(() => {
      throw new Error("handler bug");
    });
    expect((await send(upstream.url)).status).toBe(500);
    await expect(upstream.close()).rejects.toThrow(/an upstream handler threw/);
  });

  it("closes the server after the test", async () => {
    let server: { listening: boolean } | undefined;
    onTestFinished(() => {
      expect(server?.listening).toBe(false);
    });
    const upstream = await startUpstream();
    server = upstream.server;
    expect(server.listening).toBe(true);
  });
});
