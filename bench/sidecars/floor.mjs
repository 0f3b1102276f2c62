// The node floor: a bare node:http server, started as the sidecars are (a node child on
// 127.0.0.1:0 that writes a JSON `listening` record with its url on stderr). It answers every
// request with a small body and loads nothing but node:http, with `require` (as the sidecars
// do: an ESM import of node:http also loads Node's bundled undici, 12 MiB).
import { createRequire } from "node:module";

const { createServer } = createRequire(import.meta.url)("node:http");

const BODY = Buffer.from('{"ok":true}\n');
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "application/json", "content-length": BODY.length });
  res.end(BODY);
});
server.listen(0, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  process.stderr.write(`${JSON.stringify({ msg: "listening", url })}\n`);
});
process.once("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
});
