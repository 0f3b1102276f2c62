/**
 * The node options every sidecar runs with: its bin's shebang carries them
 * (`#!/usr/bin/env -S node …`), and a launcher that starts a bin with `process.execPath` passes
 * them first. A test keeps the shebangs equal to this list.
 *
 * `--max-semi-space-size=1` (MiB): V8 lets the young generation of a busy server grow to
 * 3 × 16 MiB, which a sidecar's short-lived allocations (headers, log lines, pipe chunks) fill
 * and keep. At 1 MiB, bench/sidecars measured bottle-gate at 86 MiB instead of 106 MiB after
 * 500 ls-remotes, with the same start-up. It is read once, when the heap is set up, so it
 * cannot be set from inside the process.
 */
export const SIDECAR_NODE_OPTIONS: readonly string[] = Object.freeze(["--max-semi-space-size=1"]);
