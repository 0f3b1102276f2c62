import { isBottleError } from "@bottle/errors";
import { describe, expect, it } from "vitest";
import {
  buildSeccompProgram,
  CLONE_NEW_FLAGS,
  DENIED_SYSCALLS,
  type SeccompArch,
  seccompArch,
  syscallNumber,
  TTY_INJECTION_IOCTLS,
} from "../src/sandbox/seccomp.ts";

const AUDIT_ARCH: Record<SeccompArch | "i386" | "arm", number> = {
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
  i386: 0x40000003,
  arm: 0x40000028,
};
const ALLOW = 0x7fff0000;
const KILL_PROCESS = 0x80000000;
const errno = (n: number) => 0x00050000 | n;
const EPERM = errno(1);
const ENOSYS = errno(38);

/**
 * Runs a classic-BPF seccomp program the way the kernel does (the instructions seccomp accepts
 * that the program uses: ld abs, jeq, jge, jset, ret) on one `struct seccomp_data`.
 * An instruction it does not know fails the test instead of guessing.
 */
function run(program: Buffer, arch: number, nr: number, args: readonly bigint[] = []): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(nr, 0);
  data.writeUInt32LE(arch, 4);
  args.forEach((arg, index) => {
    data.writeBigUInt64LE(BigInt.asUintN(64, arg), 16 + 8 * index);
  });
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps < 10_000; steps += 1) {
    if (pc * 8 >= program.length) throw new Error(`fell off the program at ${pc}`);
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20: // ld [k]
        acc = data.readUInt32LE(k);
        pc += 1;
        break;
      case 0x15: // jeq #k
        pc += 1 + (acc === k ? jt : jf);
        break;
      case 0x35: // jge #k
        pc += 1 + (acc >= k ? jt : jf);
        break;
      case 0x45: // jset #k
        pc += 1 + ((acc & k) !== 0 ? jt : jf);
        break;
      case 0x06: // ret #k
        return k;
      default:
        throw new Error(`unexpected BPF instruction 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error("the program did not return");
}

const SIGCHLD = 17n;
// What glibc's pthread_create passes to clone.
const THREAD_FLAGS = 0x3d0f00n;

describe.each(["x86_64", "aarch64"] as const)("the seccomp program for %s", (arch) => {
  const program = buildSeccompProgram(arch);
  const call = (name: Parameters<typeof syscallNumber>[1], args: bigint[] = []) =>
    run(program, AUDIT_ARCH[arch], syscallNumber(arch, name), args);

  it("is a whole number of 8-byte instructions, within the kernel's 4096", () => {
    expect(program.length % 8).toBe(0);
    expect(program.length / 8).toBeLessThanOrEqual(4096);
  });

  it.each(DENIED_SYSCALLS)("refuses %s with EPERM", (name) => {
    expect(call(name)).toBe(EPERM);
  });

  it("answers clone3 with ENOSYS, so that libc falls back to clone", () => {
    expect(call("clone3")).toBe(ENOSYS);
  });

  it("lets clone make processes and threads", () => {
    expect(call("clone", [SIGCHLD])).toBe(ALLOW);
    expect(call("clone", [THREAD_FLAGS])).toBe(ALLOW);
  });

  it("refuses clone with any namespace flag", () => {
    for (let bit = 0; bit < 32; bit += 1) {
      const flag = 1 << bit;
      if ((CLONE_NEW_FLAGS & flag) === 0) continue;
      expect(call("clone", [SIGCHLD | BigInt(flag)])).toBe(EPERM);
    }
    expect(CLONE_NEW_FLAGS).toBe(0x7e020000);
  });

  it("refuses the terminal injection ioctls, whatever the upper bits, and allows others", () => {
    for (const request of Object.values(TTY_INJECTION_IOCTLS)) {
      expect(call("ioctl", [0n, BigInt(request)])).toBe(EPERM);
      // The kernel reads the request as a 32-bit int: high bits do not hide it.
      expect(call("ioctl", [0n, (1n << 32n) | BigInt(request)])).toBe(EPERM);
    }
    expect(call("ioctl", [0n, 0x5401n])).toBe(ALLOW); // TCGETS
    expect(call("ioctl", [0n, 0x5413n])).toBe(ALLOW); // TIOCGWINSZ
  });

  it("allows ordinary system calls", () => {
    const ordinary = arch === "x86_64" ? [0, 1, 39, 59, 257] : [63, 64, 172, 221, 56];
    for (const nr of ordinary) expect(run(program, AUDIT_ARCH[arch], nr)).toBe(ALLOW);
  });

  it("kills a process that calls in through another architecture's ABI", () => {
    const other = arch === "x86_64" ? AUDIT_ARCH.i386 : AUDIT_ARCH.arm;
    expect(run(program, other, 20)).toBe(KILL_PROCESS);
    const otherArch = arch === "x86_64" ? "aarch64" : "x86_64";
    expect(run(program, AUDIT_ARCH[otherArch], 0)).toBe(KILL_PROCESS);
  });
});

describe("the x86_64 seccomp program", () => {
  const program = buildSeccompProgram("x86_64");

  it("refuses every x32 system call", () => {
    for (const nr of [0, 39, 56, 101, 272, 435, 547]) {
      expect(run(program, AUDIT_ARCH.x86_64, 0x40000000 + nr)).toBe(EPERM);
    }
  });
});

describe("seccompArch", () => {
  it("maps Node's x64 and arm64 and refuses other architectures", () => {
    expect(seccompArch("x64")).toBe("x86_64");
    expect(seccompArch("arm64")).toBe("aarch64");
    for (const arch of ["ia32", "arm", "riscv64", "s390x"]) {
      let thrown: unknown;
      try {
        seccompArch(arch);
      } catch (error) {
        thrown = error;
      }
      expect(isBottleError(thrown, "BTL_CLI_SANDBOX_ARCH")).toBe(true);
    }
  });
});
