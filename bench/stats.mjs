// The statistics and measurements the benchmarks share: medians and summaries, CPU time from
// /proc, the machine a result was measured on, a growing latency log, and a server's log read
// line by line.
import { readFileSync, readSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";

/** The median of `xs` (the mean of the two middle values for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const round1 = (x) => Math.round(x * 10) / 10;

/** Median, min, max and every run of `xs`, to one decimal. */
export function summarize(xs) {
  return {
    median: round1(median(xs)),
    min: round1(Math.min(...xs)),
    max: round1(Math.max(...xs)),
    runs: xs.map(round1),
  };
}

/** CPU seconds busy on the whole machine so far (every state but idle and iowait), /proc/stat. */
export function machineBusySeconds(clkTck) {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number); // user … steal
    return (ticks.reduce((a, b) => a + b, 0) - ticks[3] - ticks[4]) / clkTck;
  } catch {
    return Number.NaN;
  }
}

/**
 * Calls `onLine` for each complete line of the file open at `fd`, read from its current offset
 * in 1 MiB chunks (a server's log of one JSON line per request can be hundreds of MiB).
 */
export function forEachLine(fd, onLine) {
  const buffer = Buffer.alloc(1024 * 1024);
  let pending = "";
  for (;;) {
    const n = readSync(fd, buffer, 0, buffer.length, null);
    if (n === 0) return;
    const lines = (pending + buffer.toString("utf8", 0, n)).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  }
}

/** The machine a result was measured on: cores, CPU model, kernel and Node, and `extra`. */
export function machineInfo(extra = {}) {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "?",
    kernel: release(),
    node: process.version,
    ...extra,
  };
}

/**
 * Latencies in ms, in a typed array that grows by doubling (a load generator records hundreds
 * of thousands): `add(ms)`, `count`, and `sorted()`.
 */
export function latencyLog(initial = 64 * 1024) {
  let values = new Float64Array(initial);
  let count = 0;
  return {
    add(ms) {
      if (count === values.length) {
        const grown = new Float64Array(2 * values.length);
        grown.set(values);
        values = grown;
      }
      values[count++] = ms;
    },
    get count() {
      return count;
    },
    sorted: () => values.subarray(0, count).sort(),
  };
}
