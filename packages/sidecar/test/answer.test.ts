import { request } from "node:http";
import { COMMON_ERRORS, defineErrors } from "@bottle/errors";
import {
  answerHealth,
  errorAnswer,
  listenOn,
  rawErrorAnswer,
  writeErrorAnswer,
} from "@bottle/sidecar";
import { describe, expect, it } from "vitest";
import { httpServer, openSocket, portOf } from "./helpers.ts";

const { table: TABLE } = defineErrors({
  BTL_TEST_BUSY: { status: 503, exit: 1, meaning: "Busy." },
  BTL_TEST_FORBIDDEN: { status: 403, exit: 1, meaning: "Forbidden." },
  ...COMMON_ERRORS,
});

describe("errorAnswer", () => {
  it("answers API clients `{ error, code }` JSON with the table's status", () => {
    const answer = errorAnswer(TABLE, "BTL_TEST_BUSY", "too many requests", {
      headers: { "retry-after": "1" },
    });
    expect(answer).toEqual({
      status: 503,
      headers: {
        "content-type": "application/json",
        "content-length": String(answer.body.length),
        "cache-control": "no-store",
        "x-bottle-code": "BTL_TEST_BUSY",
        "retry-after": "1",
      },
      body: '{"error":"too many requests","code":"BTL_TEST_BUSY"}',
    });
  });

  it("adds fields after error and code", () => {
    const answer = errorAnswer(TABLE, "BTL_TEST_BUSY", "later", { fields: { reset_at: "t" } });
    expect(JSON.parse(answer.body)).toEqual({
      error: "later",
      code: "BTL_TEST_BUSY",
      reset_at: "t",
    });
  });

  it("answers git clients a line of text, which git shows as `remote:` lines", () => {
    const answer = errorAnswer(TABLE, "BTL_TEST_FORBIDDEN", "the token lacks the write scope", {
      format: "text",
    });
    expect(answer.status).toBe(403);
    expect(answer.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(answer.headers["x-bottle-code"]).toBe("BTL_TEST_FORBIDDEN");
    expect(answer.body).toBe("the token lacks the write scope\n");
  });

  it("builds raw HTTP/1.1 for a socket without a response object", () => {
    const body = '{"error":"no","code":"BTL_TEST_FORBIDDEN"}';
    expect(rawErrorAnswer(TABLE, "BTL_TEST_FORBIDDEN", "no")).toBe(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n` +
        `cache-control: no-store\r\nx-bottle-code: BTL_TEST_FORBIDDEN\r\nconnection: close\r\n\r\n${body}`,
    );
  });
});

describe("writeErrorAnswer", () => {
  it("writes the answer, or destroys the connection once an answer is under way", async () => {
    const server = httpServer((req, res) => {
      if (req.url === "/late") res.writeHead(200).write("partial");
      writeErrorAnswer(res, TABLE, "BTL_INTERNAL", "internal error");
    });
    await listenOn(server, {}, (message) => new Error(message));
    const port = portOf(server);
    const answer = await new Promise<{ status: number; code: unknown; body: string }>(
      (resolve, reject) => {
        request({ port, host: "127.0.0.1", path: "/", agent: false }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, code: res.headers["x-bottle-code"], body }),
          );
        })
          .on("error", reject)
          .end();
      },
    );
    expect(answer).toEqual({
      status: 500,
      code: "BTL_INTERNAL",
      body: '{"error":"internal error","code":"BTL_INTERNAL"}',
    });
    const late = await openSocket(port);
    late.socket.write("GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    await late.closed;
    expect(late.text()).not.toContain("BTL_INTERNAL");
  });
});

describe("answerHealth", () => {
  it("answers GET and HEAD /healthz with 200 and leaves every other request alone", async () => {
    const server = httpServer((req, res) => {
      if (!answerHealth(req, res)) res.writeHead(404).end("not health");
    });
    await listenOn(server, {}, (message) => new Error(message));
    const port = portOf(server);
    const ask = (method: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request({ port, host: "127.0.0.1", path, method, agent: false }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on("error", reject)
          .end();
      });
    expect(await ask("GET", "/healthz")).toEqual({ status: 200, body: '{"status":"ok"}' });
    expect(await ask("HEAD", "/healthz")).toEqual({ status: 200, body: "" });
    for (const [method, path] of [
      ["POST", "/healthz"],
      ["GET", "/healthz/"],
      ["GET", "/healthz?x=1"],
      ["GET", "/x/healthz"],
    ] as const) {
      expect(await ask(method, path)).toEqual({ status: 404, body: "not health" });
    }
  });
});
