import { commonOptions, intOption, serverLimits, withOutput } from "@bottle/sidecar";
import { Command, CommanderError } from "commander";
import { describe, expect, it } from "vitest";

function program() {
  let out = "";
  let err = "";
  const output = {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
  };
  const command = withOutput(new Command("bottle-test"), output, "BTL_TEST_CONFIG").version(
    "1.2.3",
  );
  commonOptions(command, { port: 9999, maxConcurrent: 8 });
  return { command, out: () => out, err: () => err };
}

describe("commonOptions", () => {
  it("gives every sidecar the same flags and defaults", () => {
    const { command } = program();
    command.parse([], { from: "user" });
    expect(command.opts()).toEqual({
      bind: "127.0.0.1",
      port: 9999,
      idleTimeout: 300,
      maxConcurrent: 8,
      maxConnections: 1024,
      logLevel: "info",
    });
    command.parse(["--socket", "/run/x.sock", "--log-level", "debug", "--max-connections", "5"], {
      from: "user",
    });
    expect(command.opts()).toMatchObject({
      socket: "/run/x.sock",
      logLevel: "debug",
      maxConnections: 5,
    });
  });

  it("hands the limits to a server factory under its option names, in milliseconds", () => {
    const { command } = program();
    command.parse(["--idle-timeout", "7", "--max-concurrent", "3"], { from: "user" });
    expect(serverLimits(command.opts())).toEqual({
      maxConcurrent: 3,
      maxConnections: 1024,
      idleTimeoutMs: 7000,
    });
  });

  it("prints command-line errors as the package's code and throws instead of exiting", () => {
    for (const args of [
      ["--socket", "/run/x.sock", "--port", "1"],
      ["--port", "70000"],
      ["--max-connections", "0"],
      ["--log-level", "loud"],
      ["--bogus"],
    ]) {
      const { command, err } = program();
      expect(() => command.parse(args, { from: "user" }), args.join(" ")).toThrow(CommanderError);
      expect(err()).toMatch(/^BTL_TEST_CONFIG: /);
    }
    const { command, out } = program();
    expect(() => command.parse(["--version"], { from: "user" })).toThrow(
      expect.objectContaining({ exitCode: 0 }),
    );
    expect(out()).toBe("1.2.3\n");
  });
});

describe("intOption", () => {
  it("reads decimal integers within bounds and nothing else", () => {
    const port = intOption(0, 65_535);
    expect(port("0")).toBe(0);
    expect(port("9419")).toBe(9419);
    expect(port(" 5")).toBe(5);
    for (const bad of ["", "1e3", "0x10", "-1", "1.5", "65536", "+5", "9007199254740993"])
      expect(() => port(bad), JSON.stringify(bad)).toThrow("expected an integer from 0 to 65535");
  });
});
