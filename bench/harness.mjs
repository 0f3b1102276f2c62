// What every bench script shares: its command line (--runs N, --json, --help) and its ending
// (signals stop the children and remove the temp dir; results go to stdout, progress to stderr).
import { parseArgs } from "node:util";

/** Progress lines on stderr. */
export const progress = (text) => process.stderr.write(`bench: ${text}\n`);

/**
 * Parses `--runs N` (1–100), `--json` and `--help` plus `options`; prints `usage` and exits 2 on
 * a bad command line, 0 for `--help`. Returns the flags and the number of runs.
 */
export function parseBenchArgs(usage, { runs = "3", options = {} } = {}) {
  let flags;
  try {
    flags = parseArgs({
      options: {
        runs: { type: "string", default: runs },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        ...options,
      },
    }).values;
  } catch (error) {
    process.stderr.write(`bench: ${error.message}\n${usage}`);
    process.exit(2);
  }
  if (flags.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const count = Number(flags.runs);
  if (!Number.isInteger(count) || count < 1 || count > 100) {
    process.stderr.write(`bench: expected \`--runs\` to be an integer 1–100, got ${flags.runs}\n`);
    process.exit(2);
  }
  return { flags, runs: count };
}

/**
 * Runs `main`, prints `report(result)` (or JSON), and always ends with `cleanup()`. SIGINT,
 * SIGTERM and SIGHUP clean up and exit 130; `killAll` is the last resort on exit, so no child
 * outlives the bench.
 */
export async function runBench({ main, report, json, cleanup, killAll, work }) {
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.once(signal, () => {
      interrupted = true;
      progress(`${signal}: stopping children and removing ${work}`);
      cleanup().finally(() => process.exit(130));
    });
  }
  process.once("exit", killAll);
  try {
    const result = await main();
    process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : report(result));
  } catch (error) {
    if (!interrupted) progress(`failed: ${error instanceof Error ? error.stack : error}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}
