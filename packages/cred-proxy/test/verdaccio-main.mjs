// Child entry of test/registry.ts: runs verdaccio from a config file on 127.0.0.1 and a port the
// system picks, then prints one JSON line `listening` with the URL. (The verdaccio CLI only knows
// the port it was given, so a test would have to guess a free one.) Plain JavaScript, so that any
// Node the workspace supports runs it without a build step.
import { runServer } from "verdaccio";

const config = process.argv[2];
if (config === undefined) throw new Error("usage: verdaccio-main.mjs CONFIG_FILE");
/** @type {import("node:http").Server} */
const server = await runServer(config);
server.listen(0, "127.0.0.1", () => {
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  const url = `http://127.0.0.1:${address.port}`;
  process.stdout.write(`${JSON.stringify({ msg: "listening", url })}\n`);
});
