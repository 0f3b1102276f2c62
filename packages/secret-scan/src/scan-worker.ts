/**
 * The worker thread of the built-in scanner (started by scan.ts): it scans the batches it is
 * sent. A thread of its own lets the gate stop a scan that runs too long (a huge push, a
 * pathological operator regex) by terminating it.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ScanRuleSpec } from "./rules.ts";
import { type Batch, type BatchFinding, createBatchScanner } from "./scanner.ts";

/** What scan.ts sends: one batch to scan. */
export interface WorkerRequest {
  readonly id: number;
  readonly batch: Batch;
}

/** What the worker answers: the batch's findings, or why it could not scan it. */
export type WorkerReply =
  | { readonly id: number; readonly findings: readonly BatchFinding[] }
  | { readonly id: number; readonly error: string };

/** The `workerData` of the worker. */
export interface WorkerSetup {
  readonly rules: readonly ScanRuleSpec[];
}

// Only when started as a worker: importing this module elsewhere has no effect.
const port = parentPort;
if (port !== null) {
  const setup = workerData as WorkerSetup;
  const ready = createBatchScanner(setup.rules);
  port.on("message", (request: WorkerRequest) => {
    ready
      .then((scan) => scan(request.batch))
      .then(
        (findings) => port.postMessage({ id: request.id, findings } satisfies WorkerReply),
        (error: unknown) =>
          port.postMessage({
            id: request.id,
            error: String((error as Error)?.message ?? error),
          } satisfies WorkerReply),
      );
  });
}
