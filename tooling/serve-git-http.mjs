// Serves the bare repositories under ROOT over smart HTTP on 127.0.0.1 (the real git
// http-backend), demanding Basic `x-access-token:<token>`, the way a forge's HTTPS remote does.
// The token comes from $UPSTREAM_TOKEN (never argv). Prints the base URL, then serves until
// SIGTERM or SIGINT. Used by the demo; tests use `startHttpGitUpstream` from @bottle/test-utils.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [root] = process.argv.slice(2);
const token = process.env.UPSTREAM_TOKEN;
if (!root || !token) {
  process.stderr.write("usage: UPSTREAM_TOKEN=… node tooling/serve-git-http.mjs ROOT\n");
  process.exit(2);
}
const module = join(import.meta.dirname, "test-utils/dist/git-http-server.js");
const { serveGitHttp } = await import(pathToFileURL(module).href);
const server = await serveGitHttp({ root, username: "x-access-token", password: token });
process.stdout.write(`${server.url("probe.git").replace(/\/probe\.git$/, "")}\n`);
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => void server.close().then(() => process.exit(0)));
}
