/**
 * The node options every sidecar runs with: its bin's shebang carries them
 * (`#!/usr/bin/env -S node …`), and a launcher that starts a bin with `process.execPath` passes
 * them first. A test keeps the shebangs equal to this list. Both are read once, when V8 sets up
 * its heap and threads, so neither can be set from inside the process. Measured with
 * bench/sidecars (RSS after 1,000 requests; start-up unchanged):
 *
 * - `--max-semi-space-size=1` (MiB): V8 lets the young generation of a busy server grow to
 *   64 MiB, which a sidecar's short-lived allocations (headers, log lines, pipe chunks) fill and
 *   keep. bottle-gate: 86 MiB instead of 106 MiB after 500 ls-remotes.
 * - `--no-concurrent-recompilation`: optimised code is compiled on the main thread, so the
 *   compiler's scratch memory is not left behind in a background thread's malloc arena.
 *   bottle-tokman: 88 MiB instead of 97 MiB (with the option above). Only the first seconds
 *   of load compile; the steady state runs the same code.
 */
export const SIDECAR_NODE_OPTIONS: readonly string[] = Object.freeze([
  "--max-semi-space-size=1",
  "--no-concurrent-recompilation",
]);
