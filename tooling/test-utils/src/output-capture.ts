import type { Readable } from "node:stream";

/** The per-stream output cap of the process helpers (64 MiB, like a generous `maxBuffer`). */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Options of {@link captureStream}. */
export interface CaptureOptions {
  maxBytes: number;
  /** Called once when the stream produced more than `maxBytes`; capture stops there. */
  onOverflow: () => void;
  /** Called with each complete line (without its `\n`), and with a final unterminated one. */
  onLine?: (line: string) => void;
}

/** Captures a child's stdout or stderr as UTF-8 text and returns a getter for what arrived. */
export function captureStream(stream: Readable | null, options: CaptureOptions): () => string {
  if (stream === null) return () => "";
  const chunks: string[] = [];
  let bytes = 0;
  let overflowed = false;
  let pending = "";
  // setEncoding decodes with a StringDecoder, so a multi-byte character split across chunks
  // arrives whole.
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    if (overflowed) return;
    bytes += Buffer.byteLength(chunk);
    if (bytes > options.maxBytes) {
      overflowed = true;
      options.onOverflow();
      return;
    }
    chunks.push(chunk);
    if (options.onLine === undefined) return;
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) options.onLine(line);
  });
  stream.on("end", () => {
    if (pending !== "" && options.onLine !== undefined) options.onLine(pending);
    pending = "";
  });
  return () => chunks.join("");
}
