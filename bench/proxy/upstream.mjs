// The upstream every target forwards to: node:http in its own process, answering only requests
// that carry `Authorization: Bearer <token>` (the token comes in BENCH_UPSTREAM_TOKEN). The load
// generator sends no credential except when it talks to this server directly, so a 200 through a
// proxy means the proxy injected the header.
//
//   GET  /small     ~200 B of JSON
//   GET  /download  16 MiB, generated once at start
//   POST /upload    reads the whole body, answers { bytes, sha256, chunked }
//   GET  /sse       text/event-stream: the first event at once, the last one 25 ms later
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { serveBenchServer } from "../servers.mjs";

const HOST = "127.0.0.1";
const MiB = 1024 * 1024;
export const DOWNLOAD_BYTES = 16 * MiB;
export const SSE_GAP_MS = 25;

export const SMALL_BODY = Buffer.from(
  `${JSON.stringify({
    id: "msg_0123456789abcdef",
    type: "message",
    role: "assistant",
    model: "bench-small",
    content: [{ type: "text", text: "ok" }],
    stop_reason: "end_turn",
    usage: { input_tokens: 12, output_tokens: 1 },
  })}\n`,
);

if (process.argv[1] === import.meta.filename) serve();

function serve() {
  const expected = `Bearer ${process.env.BENCH_UPSTREAM_TOKEN ?? ""}`;
  if (expected === "Bearer ") throw new Error("BENCH_UPSTREAM_TOKEN is not set");
  const big = randomBytes(DOWNLOAD_BYTES);
  const sha256 = (data) => createHash("sha256").update(data).digest("hex");
  const bigSha = sha256(big);
  const answer = (res, status, type, body) => {
    res.writeHead(status, { "content-type": type, "content-length": body.length });
    res.end(body);
  };
  const json = (res, status, value) =>
    answer(res, status, "application/json", Buffer.from(`${JSON.stringify(value)}\n`));

  // Keep-alive longer than every proxy's pool keeps an idle connection, so the upstream never
  // closes one under a proxy that is about to reuse it.
  const server = createServer(
    { keepAliveTimeout: 65_000, headersTimeout: 60_000, requestTimeout: 0 },
    (req, res) => {
      if (req.headers.authorization !== expected) {
        req.resume();
        return json(res, 401, { error: "missing or wrong Authorization" });
      }
      const path = req.url?.split("?")[0];
      if (req.method === "GET" && path === "/small") {
        return answer(res, 200, "application/json", SMALL_BODY);
      }
      if (req.method === "GET" && path === "/download") {
        res.writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": big.length,
          "x-sha256": bigSha,
        });
        return res.end(big);
      }
      if (req.method === "POST" && path === "/upload") {
        const hash = createHash("sha256");
        let bytes = 0;
        req.on("data", (chunk) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        req.on("end", () =>
          json(res, 200, {
            bytes,
            sha256: hash.digest("hex"),
            chunked: req.headers["transfer-encoding"] === "chunked",
          }),
        );
        return;
      }
      if (req.method === "GET" && path === "/sse") {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write(`event: first\ndata: {"at":${Date.now()}}\n\n`);
        setTimeout(() => res.end("event: done\ndata: [DONE]\n\n"), SSE_GAP_MS);
        return;
      }
      req.resume();
      json(res, 404, { error: "no such endpoint" });
    },
  );
  serveBenchServer(server, HOST, { fields: { downloadSha256: bigSha } });
}
