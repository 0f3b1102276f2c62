// The host's way to the gate's unix socket for git: a TCP listener on 127.0.0.1:0 piping each
// connection to SOCKET, written like the sandbox's own forwarder (half-closes pass through,
// no Nagle). Logs its `listening` record on stderr, as the sidecars do; stops on SIGTERM.
//
//   node forward.mjs SOCKET
import { connect, createServer } from "node:net";

const [socket] = process.argv.slice(2);
if (!socket) {
  process.stderr.write("usage: node forward.mjs SOCKET\n");
  process.exit(2);
}
const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const upstream = connect({ path: socket, allowHalfOpen: true });
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => {});
  upstream.on("error", () => {});
  client.once("close", () => upstream.destroy());
  upstream.once("close", () => client.destroy());
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  process.stderr.write(
    `${JSON.stringify({ msg: "listening", url: `http://127.0.0.1:${port}` })}\n`,
  );
});
process.once("SIGTERM", () => process.exit(0));
