import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createBaseEnv, runProcess } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { BIN } from "./fixture.ts";

const UNITS = join(import.meta.dirname, "../systemd");

describe("the shipped systemd units", { tags: ["slow"] }, () => {
  it("start the gate with flags it knows, and are hardened", async () => {
    const help = (await runProcess(process.execPath, [BIN, "--help"], { env: createBaseEnv() }))
      .stdout;
    const services = (await readdir(UNITS)).filter((f) => f.endsWith(".service"));
    expect(services.sort()).toEqual(["bottle-gate-inetd@.service", "bottle-gate.service"]);
    for (const file of services) {
      const text = await readFile(join(UNITS, file), "utf8");
      const exec = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? "";
      for (const flag of exec.match(/--[a-z-]+/g) ?? [])
        expect([file, help.includes(flag)]).toEqual([file, true]);
      for (const line of [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "DynamicUser=yes",
      ]) {
        expect(text).toContain(line);
      }
      expect(text).not.toMatch(/--admin-token/);
    }
    expect(await readFile(join(UNITS, "bottle-gate-inetd.socket"), "utf8")).toContain("Accept=yes");
  });
});
