/**
 * Progress of long commands: a spinner with timings on a terminal, plain lines otherwise, JSON
 * lines (`--json`) for tools. Everything goes to stderr; stdout stays the command's output.
 */

/** One running step. */
export interface Step {
  /** The step finished; `detail` is shown after its title. */
  done(detail?: string): void;
  /** The step failed (the error is reported by the caller). */
  fail(): void;
}

export interface Progress {
  step(title: string): Step;
  /** A line of information between steps (never a secret). */
  note(text: string): void;
  /** A machine-readable event (`--json` only; other modes ignore it). */
  event(name: string, fields: Readonly<Record<string, unknown>>): void;
}

export type ProgressMode = "tty" | "plain" | "json";

interface Sink {
  write(text: string): unknown;
}

/** The progress reporter for `mode`, writing to `out` (stderr). */
export async function createProgress(
  mode: ProgressMode,
  out: Sink & { isTTY?: boolean },
): Promise<Progress> {
  const ms = (started: number) => `${Date.now() - started} ms`;
  if (mode === "json") {
    const emit = (fields: Record<string, unknown>) =>
      out.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
    return {
      step(title) {
        const started = Date.now();
        emit({ event: "step", step: title, status: "started" });
        return {
          done: (detail) =>
            emit({ event: "step", step: title, status: "done", ms: Date.now() - started, detail }),
          fail: () =>
            emit({ event: "step", step: title, status: "failed", ms: Date.now() - started }),
        };
      },
      note: (text) => emit({ event: "note", text }),
      event: (name, fields) => emit({ event: name, ...fields }),
    };
  }
  if (mode === "tty") {
    // Loaded only for a terminal: the spinner is the one user of ora.
    const { default: ora } = await import("ora");
    // Steps may run at once: one spinner names every running step, and each finished step
    // leaves its own line.
    const running = new Map<number, string>();
    let spinner: ReturnType<typeof ora> | null = null;
    let next = 0;
    const refresh = () => {
      const text = [...running.values()].join(" · ");
      if (text === "") spinner = null;
      else if (spinner === null)
        spinner = ora({ text, stream: out as NodeJS.WritableStream }).start();
      else {
        spinner.text = text;
        spinner.render();
      }
    };
    const finish = (id: number, line: string, ok: boolean) => {
      running.delete(id);
      const current = spinner ?? ora({ stream: out as NodeJS.WritableStream });
      if (ok) current.succeed(line);
      else current.fail(line);
      spinner = null;
      refresh();
    };
    return {
      step(title) {
        const started = Date.now();
        const id = next++;
        running.set(id, title);
        refresh();
        return {
          done: (detail) =>
            finish(id, `${title}${detail ? `: ${detail}` : ""} (${ms(started)})`, true),
          fail: () => finish(id, `${title} (${ms(started)})`, false),
        };
      },
      note: (text) => {
        spinner?.clear();
        out.write(`  ${text}\n`);
        spinner?.render();
      },
      event: () => {},
    };
  }
  return {
    step(title) {
      const started = Date.now();
      out.write(`… ${title}\n`);
      return {
        done: (detail) => out.write(`✓ ${title}${detail ? `: ${detail}` : ""} (${ms(started)})\n`),
        fail: () => out.write(`✗ ${title} (${ms(started)})\n`),
      };
    },
    note: (text) => out.write(`  ${text}\n`),
    event: () => {},
  };
}

/** Runs `work` as a step: done with what it returns as detail, failed when it throws. */
export async function inStep<T>(
  progress: Progress,
  title: string,
  work: () => Promise<T>,
  detail?: (result: T) => string | undefined,
): Promise<T> {
  const step = progress.step(title);
  try {
    const result = await work();
    step.done(detail?.(result));
    return result;
  } catch (error) {
    step.fail();
    throw error;
  }
}
