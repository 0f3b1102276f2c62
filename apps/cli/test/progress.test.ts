import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createProgress, inStep } from "../src/progress.ts";

/** A terminal-like sink that keeps what is written. */
function terminal() {
  const chunks: string[] = [];
  return {
    isTTY: true,
    columns: 100,
    write(chunk: string) {
      chunks.push(String(chunk));
      return true;
    },
    // What ora asks of a stream besides write.
    cursorTo() {
      return true;
    },
    moveCursor() {
      return true;
    },
    clearLine() {
      return true;
    },
    text: () => chunks.join("").replace(/\u001b\[[0-9;?]*[A-Za-z]/g, ""),
  };
}

describe("progress on a terminal", () => {
  // The spinner stays off under CI or a dumb terminal (ora asks is-interactive): not here.
  const saved = { CI: process.env.CI, TERM: process.env.TERM };
  beforeEach(() => {
    delete process.env.CI;
    process.env.TERM = "xterm-256color";
  });
  afterEach(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it("shows steps that run at once in one spinner and leaves one line per finished step", async () => {
    const out = terminal();
    const progress = await createProgress("tty", out);
    let release: () => void = () => {};
    const slow = inStep(
      progress,
      "git gate: mirrors",
      () => new Promise<void>((r) => (release = r)),
    );
    const fast = inStep(
      progress,
      "proxy: listening",
      async () => "pid 7",
      (d) => d,
    );
    await fast;
    progress.note("mirror api: ready");
    release();
    await slow;
    const text = out.text();
    expect(text).toMatch(/git gate: mirrors · proxy: listening/);
    expect(text.match(/✔ proxy: listening: pid 7 \(\d+ ms\)/g)).toHaveLength(1);
    expect(text.match(/✔ git gate: mirrors \(\d+ ms\)/g)).toHaveLength(1);
    expect(text).toContain("  mirror api: ready\n");
    // The finished step's line comes first, the slow one's after.
    expect(text.indexOf("✔ proxy")).toBeLessThan(text.indexOf("✔ git gate"));
  });

  it("marks a failed step and goes on with the others", async () => {
    const out = terminal();
    const progress = await createProgress("tty", out);
    const failing = inStep(progress, "gate: listening", async () => {
      throw new Error("no");
    });
    await expect(failing).rejects.toThrow("no");
    await inStep(progress, "proxy: listening", async () => undefined);
    const text = out.text();
    expect(text).toMatch(/✖ gate: listening \(\d+ ms\)/);
    expect(text).toMatch(/✔ proxy: listening \(\d+ ms\)/);
  });
});
