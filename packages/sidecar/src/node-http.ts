/**
 * `node:http`, loaded with `require` rather than `import`. Importing it as ESM builds its module
 * namespace, which reads every export, and the `WebSocket`, `CloseEvent` and `MessageEvent`
 * getters among them load Node's bundled undici: 12 MiB of RSS and 20–30 ms of start-up for a
 * server that never uses them (measured with bench/sidecars). Sidecars take node:http from here.
 */
import { createRequire } from "node:module";

export const nodeHttp: typeof import("node:http") = createRequire(import.meta.url)("node:http");
