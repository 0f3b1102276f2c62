import { BottleError } from "@bottle/errors";
import { createLogger } from "@bottle/log";
import { errorName, exitCodeOf, reportFailure, USAGE_EXIT } from "@bottle/sidecar";
import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { recordingLogger } from "./helpers.ts";

const listenError = new BottleError("BTL_TEST_LISTEN", "cannot listen: EADDRINUSE", {
  status: 500,
  exit: 3,
});

function output() {
  let text = "";
  return { stderr: { write: (chunk: string) => (text += chunk) }, text: () => text };
}

describe("exitCodeOf", () => {
  it("maps a bottle error to its table's exit code", () => {
    expect(exitCodeOf(listenError)).toBe(3);
  });

  it("maps --help and --version to 0 and other command-line errors to 2", () => {
    expect(exitCodeOf(new CommanderError(0, "commander.helpDisplayed", "(outputHelp)"))).toBe(0);
    expect(exitCodeOf(new CommanderError(1, "commander.unknownOption", "x"))).toBe(USAGE_EXIT);
    expect(USAGE_EXIT).toBe(2);
  });

  it("maps anything else to 1", () => {
    expect(exitCodeOf(new Error("boom"))).toBe(1);
    expect(exitCodeOf("a string")).toBe(1);
  });
});

describe("reportFailure", () => {
  it("prints a bottle error as CODE: message", () => {
    const out = output();
    expect(reportFailure(listenError, out)).toBe(3);
    expect(out.text()).toBe("BTL_TEST_LISTEN: cannot listen: EADDRINUSE\n");
  });

  it("logs an unexpected error with its stack, never its message on stderr", () => {
    const out = output();
    const { logger, records } = recordingLogger();
    const error = new TypeError("secret-looking detail");
    expect(reportFailure(error, { ...out, logger })).toBe(1);
    expect(out.text()).toBe("");
    expect(records).toEqual([
      expect.objectContaining({ level: "error", err: error, msg: "unexpected failure" }),
    ]);
    const bare = output();
    expect(reportFailure(error, bare)).toBe(1);
    expect(bare.text()).toBe("BTL_INTERNAL: unexpected failure (TypeError)\n");
    // BOTTLE_DEBUG=1 in a command line: the stack follows, for whoever runs it.
    const debug = output();
    expect(reportFailure(error, { ...debug, debug: true })).toBe(1);
    expect(debug.text()).toMatch(/^BTL_INTERNAL: unexpected failure \(TypeError\)\nTypeError: /);
  });

  it("prints nothing more for a command-line error commander already printed", () => {
    const out = output();
    const logger = createLogger({ name: "t", level: "silent" });
    expect(
      reportFailure(new CommanderError(1, "commander.missingMandatoryOptionValue", "x"), {
        ...out,
        logger,
      }),
    ).toBe(2);
    expect(out.text()).toBe("");
  });
});

describe("errorName", () => {
  it("gives the code or class name, never the message", () => {
    expect(errorName(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe("ECONNREFUSED");
    expect(errorName(new RangeError("x"))).toBe("RangeError");
    expect(errorName(undefined)).toBe("unknown");
  });
});
