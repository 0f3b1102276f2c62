// Child entry of registry.ts: runs verdaccio from a config file on 127.0.0.1 and a port the
// system picks, then prints one JSON line `listening` with the URL (the verdaccio command only
// listens on a port it is given, so a test would have to guess a free one). Runs from dist/ as
// JavaScript, and from src/ under Node's type stripping.
import type { AddressInfo } from "node:net";
import { runServer } from "verdaccio";

const config = process.argv[2];
if (config === undefined) throw new Error("usage: verdaccio-main CONFIG_FILE");
const server = await runServer(config);
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(
    `${JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` })}\n`,
  );
});
