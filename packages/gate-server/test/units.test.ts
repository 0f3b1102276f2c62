import {
  GATE_DEFAULTS,
  type GateFlags,
  gateOptions,
  gateServerOptions,
  parseGitRoute,
  systemdListenFd,
} from "@bottle/gate-server";
import { silentLogger } from "@bottle/log";
import * as sidecar from "@bottle/sidecar";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { accessHookArgv, splitCommand } from "../src/access-hook-flag.ts";
import { readCredential } from "../src/auth.ts";
import { parseCgiHead } from "../src/cgi.ts";

describe("parseGitRoute", () => {
  const UPLOAD_REFS = "/alpha.git/info/refs?service=git-upload-pack";
  const RECEIVE_REFS = "/alpha.git/info/refs?service=git-receive-pack";
  const UPLOAD_PACK = "/alpha.git/git-upload-pack";
  const RECEIVE_PACK = "/alpha.git/git-receive-pack";
  it.each([
    [
      "GET",
      UPLOAD_REFS,
      { project: "alpha", repo: undefined, repoPath: "alpha.git", scope: "read" },
    ],
    ["GET", RECEIVE_REFS, { project: "alpha", scope: "write", service: "git-receive-pack" }],
    ["POST", UPLOAD_PACK, { project: "alpha", endpoint: "/git-upload-pack", scope: "read" }],
    ["POST", RECEIVE_PACK, { project: "alpha", endpoint: "/git-receive-pack", scope: "write" }],
    [
      "POST",
      "/alpha/docs.git/git-upload-pack",
      { project: "alpha", repo: "docs", repoPath: "alpha/docs.git" },
    ],
    ["GET", "/alpha/my.repo_1.git/HEAD", { repo: "my.repo_1", endpoint: "/HEAD", scope: "read" }],
  ])("routes %s %s", (method, target, expected) => {
    expect(parseGitRoute(method, target)).toMatchObject(expected);
  });

  it.each([
    ["GET", "/alpha.git/info/refs"],
    ["GET", "/alpha.git/info/refs?service=git-upload-archive"],
    ["GET", "/alpha.git/info/refs?service=git-upload-pack&x=1"],
    ["POST", "/alpha.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha.git/git-upload-pack"],
    ["POST", "/alpha.git/git-upload-pack?x"],
    ["GET", "/alpha.git/objects/info/packs"],
    ["GET", "/alpha.git/objects/ab/cdef0123"],
    ["GET", "/alpha.git/config"],
    ["GET", "/alpha.git/info/alternates"],
    ["GET", "/../alpha.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/../beta.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/..git/info/refs?service=git-upload-pack"],
    ["GET", "/%2e%2e/alpha.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha%2fdocs.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/docs%2egit/info/refs?service=git-upload-pack"],
    ["GET", "/alpha\\docs.git/info/refs?service=git-upload-pack"],
    ["GET", "//alpha.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha//docs.git/info/refs?service=git-upload-pack"],
    ["GET", "/a/b/c.git/info/refs?service=git-upload-pack"],
    ["GET", "/Alpha.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/.hidden.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/x.git.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha/dócs.git/info/refs?service=git-upload-pack"],
    ["GET", "/alpha.git/info/refs\u0000?service=git-upload-pack"],
    ["GET", "http://evil.example/alpha.git/info/refs?service=git-upload-pack"],
    ["DELETE", "/alpha.git/git-receive-pack"],
  ])("refuses %s %s", (method, target) => {
    expect(parseGitRoute(method, target)).toBeUndefined();
  });
});

describe("readCredential", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  it.each([
    [undefined, { kind: "none" }],
    ["", { kind: "none" }],
    [`Basic ${b64("tok:ignored")}`, { kind: "token", token: "tok" }],
    [`Basic ${b64("tok")}`, { kind: "token", token: "tok" }],
    [`basic ${b64("tok:")}`, { kind: "token", token: "tok" }],
    ["Bearer tok", { kind: "token", token: "tok" }],
    ["Basic !!!", { kind: "malformed" }],
    [`Basic ${b64(":password")}`, { kind: "malformed" }],
    [`Basic ${b64("t o k:x")}`, { kind: "malformed" }],
    ["Digest abc", { kind: "malformed" }],
    ["Bearer", { kind: "malformed" }],
    ["Bearer ", { kind: "malformed" }],
  ])("reads %s", (header, expected) => {
    expect(readCredential(header)).toEqual(expected);
  });
});

describe("splitCommand", () => {
  it.each([
    ["refresh-mirror --quiet", ["refresh-mirror", "--quiet"]],
    ["  a   b  ", ["a", "b"]],
    [`node "/path with space/hook.js" --x='y z'`, ["node", "/path with space/hook.js", "--x=y z"]],
    [`a "" b`, ["a", "", "b"]],
    [`a $HOME \`id\` ;rm`, ["a", "$HOME", "`id`", ";rm"]],
    [`a "q\\"uote"`, ["a", 'q"uote']],
  ])("splits %s without a shell", (text, words) => {
    expect(splitCommand(text)).toEqual(words);
  });

  it("refuses an unterminated quote", () => {
    expect(() => splitCommand(`a "b`)).toThrow(SyntaxError);
  });
});

describe("accessHookArgv", () => {
  it("takes a JSON array of strings as it is, and anything else split into words", () => {
    const argv = ["/usr/bin/node", "/opt/a b/cli.js", "access-hook", "--state", "/srv/it's"];
    expect(accessHookArgv(JSON.stringify(argv))).toEqual(argv);
    expect(accessHookArgv(` ${JSON.stringify(argv)}`)).toEqual(argv);
    expect(accessHookArgv(`node 'a b' c`)).toEqual(["node", "a b", "c"]);
  });

  it.each([["[1]"], ['["a"'], ["[]"], ['[""]'], [""], ["   "], [`a "b`]])(
    "refuses %j with BTL_GATE_CONFIG",
    (value) => {
      expect(() => accessHookArgv(value)).toThrow(
        expect.objectContaining({ code: "BTL_GATE_CONFIG" }),
      );
    },
  );
});

describe("parseCgiHead", () => {
  it("reads Status and headers, CRLF or LF", () => {
    const crlf = parseCgiHead(
      Buffer.from("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody"),
    );
    expect(crlf).toEqual({ status: 404, headers: { "Content-Type": "text/plain" }, bodyStart: 51 });
    const lf = parseCgiHead(Buffer.from("Content-Type: x\n\nrest"));
    expect(lf).toMatchObject({ status: 200, bodyStart: 17 });
  });

  it("waits for the end of the head and refuses garbage", () => {
    expect(parseCgiHead(Buffer.from("Content-Type: x\r\n"))).toBe("incomplete");
    expect(parseCgiHead(Buffer.from("no colon here\r\n\r\n"))).toBe("invalid");
    expect(parseCgiHead(Buffer.from("Status: 999\r\n\r\n"))).toBe("invalid");
  });
});

describe("systemdListenFd", () => {
  it("is the sidecar runtime's (tested in @bottle/sidecar), re-exported", () => {
    expect(systemdListenFd).toBe(sidecar.systemdListenFd);
    expect(systemdListenFd({ LISTEN_PID: "42", LISTEN_FDS: "1" }, 42)).toBe(3);
  });
});

describe("the gate's flags (gateOptions, gateServerOptions)", () => {
  const parse = (args: string[]) => {
    const command = sidecar.commonOptions(
      gateOptions(sidecar.withOutput(new Command("gate"), { stdout: sink, stderr: sink }, "X")),
      GATE_DEFAULTS,
    );
    return command.parse(args, { from: "user" }).opts<GateFlags>();
  };
  const sink = { write: () => true };

  it("take the token file, the admin token and --inetd, with the gate's defaults", () => {
    const flags = parse(["--token-file", "t.json", "--inetd"]);
    expect(flags).toMatchObject({ tokenFile: "t.json", inetd: true, port: 9419 });
    expect(() => parse([])).toThrow(/token-file/);
    expect(() => parse(["--token-file", "t", "--inetd", "--socket", "/s"])).toThrow(/inetd/);
  });

  it("give createGateServer the admin token from the environment, or from the flag with a warning", () => {
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (_: object, msg?: string) => warned.push(msg ?? "") };
    const flags = parse(["--token-file", "t.json", "--idle-timeout", "7"]);
    expect(gateServerOptions(flags, { BOTTLE_GATE_ADMIN_TOKEN: "a", PATH: "/bin" }, log)).toEqual({
      tokenFile: "t.json",
      logger: log,
      maxConcurrent: 32,
      maxConnections: 1024,
      idleTimeoutMs: 7000,
      path: "/bin",
      adminToken: "a",
    });
    expect(warned).toEqual([]);
    const fromFlag = parse(["--token-file", "t.json", "--admin-token", "b"]);
    expect(gateServerOptions(fromFlag, {}, log)).toMatchObject({ adminToken: "b" });
    expect(warned).toEqual([expect.stringContaining("--admin-token is visible")]);
  });
});
