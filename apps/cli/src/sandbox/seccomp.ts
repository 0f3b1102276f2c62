/**
 * The sandbox's seccomp filter: a classic-BPF program, built here byte by byte, that bwrap
 * loads with `--seccomp FD` right before it runs the agent. It refuses the system calls an
 * unprivileged process needs only to attack the kernel or to escape the sandbox's namespaces.
 * Layouts: `struct sock_filter` and `struct seccomp_data` in linux/filter.h and
 * linux/seccomp.h; see seccomp(2).
 */
import { CliError } from "../errors.ts";

/** The architectures the filter knows the system-call numbers of. */
export type SeccompArch = "x86_64" | "aarch64";

const EPERM = 1;
const ENOSYS = 38;

// linux/audit.h: AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;

/** x86_64's x32 ABI numbers its system calls from here (`__X32_SYSCALL_BIT`). */
const X32_SYSCALL_BIT = 0x40000000;

/** Every CLONE_NEW* flag that clone(2) takes (CLONE_NEWTIME exists for clone3 and unshare only). */
export const CLONE_NEW_FLAGS =
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

/** ioctl requests that push input into, or reprogram, a terminal (tty_ioctl(4)). */
export const TTY_INJECTION_IOCTLS = { TIOCSTI: 0x5412, TIOCLINUX: 0x541c } as const;

/** The system calls the filter refuses with EPERM, by name. */
export const DENIED_SYSCALLS = [
  // another process's memory
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  // the kernel keyring (shared with the host: keys are not namespaced)
  "keyctl",
  "add_key",
  "request_key",
  // kernel attack surface an agent does not need
  "bpf",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "userfaultfd",
  "perf_event_open",
  // the mount family: the sandbox's file system view is fixed
  "mount",
  "umount2",
  "pivot_root",
  "move_mount",
  "open_tree",
  "open_tree_attr",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  // new or other namespaces
  "unshare",
  "setns",
] as const;

type SyscallName = (typeof DENIED_SYSCALLS)[number] | "clone" | "clone3" | "ioctl";

// asm/unistd_64.h for x86_64, asm-generic/unistd.h for aarch64.
const NUMBERS: Record<SeccompArch, Record<SyscallName, number>> = {
  x86_64: {
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    keyctl: 250,
    add_key: 248,
    request_key: 249,
    bpf: 321,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    userfaultfd: 323,
    perf_event_open: 298,
    mount: 165,
    umount2: 166,
    pivot_root: 155,
    move_mount: 429,
    open_tree: 428,
    open_tree_attr: 467,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    unshare: 272,
    setns: 308,
    clone: 56,
    clone3: 435,
    ioctl: 16,
  },
  aarch64: {
    ptrace: 117,
    process_vm_readv: 270,
    process_vm_writev: 271,
    keyctl: 219,
    add_key: 217,
    request_key: 218,
    bpf: 280,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
    userfaultfd: 282,
    perf_event_open: 241,
    mount: 40,
    umount2: 39,
    pivot_root: 41,
    move_mount: 429,
    open_tree: 428,
    open_tree_attr: 467,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    unshare: 97,
    setns: 268,
    clone: 220,
    clone3: 435,
    ioctl: 29,
  },
};

/** The number of system call `name` on `arch`. */
export function syscallNumber(arch: SeccompArch, name: SyscallName): number {
  return NUMBERS[arch][name];
}

/** The filter's architecture for Node's `process.arch`; throws BTL_CLI_SANDBOX_ARCH otherwise. */
export function seccompArch(nodeArch: string): SeccompArch {
  if (nodeArch === "x64") return "x86_64";
  if (nodeArch === "arm64") return "aarch64";
  throw new CliError(
    "BTL_CLI_SANDBOX_ARCH",
    `The sandbox's seccomp filter supports x64 and arm64, not ${nodeArch}`,
  );
}

// BPF opcodes (linux/bpf_common.h).
const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGE_K = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const JSET_K = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K = 0x06; // BPF_RET | BPF_K

// Return values (linux/seccomp.h).
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;

// Offsets in struct seccomp_data: nr, arch, instruction_pointer, args[6] (u64, little-endian,
// so an argument's low 32 bits come first). The kernel reads clone's flags and ioctl's request
// as C ints, so comparing the low word is what it acts on.
const NR = 0;
const ARCH = 4;
const argLow = (index: number): number => 16 + 8 * index;

/** Where a conditional jump goes: one of the program's returns, or a marked instruction. */
type Target = "allow" | "eperm" | "enosys" | "kill" | "ioctl";
interface Insn {
  code: number;
  k: number;
  /** Jump targets; without one, the next instruction. */
  jt?: Target;
  jf?: Target;
  /** Marks this instruction as a jump target. */
  mark?: Target;
}

const RETURNS = {
  allow: RET_ALLOW,
  eperm: RET_ERRNO | EPERM,
  enosys: RET_ERRNO | ENOSYS,
  kill: RET_KILL_PROCESS,
} as const;

function assemble(body: readonly Insn[]): Buffer {
  const insns: Insn[] = [...body];
  for (const [mark, k] of Object.entries(RETURNS)) {
    insns.push({ code: RET_K, k, mark: mark as Target });
  }
  const program = Buffer.alloc(8 * insns.length);
  const offset = (from: number, target: Target | undefined): number => {
    if (target === undefined) return 0;
    const distance = insns.findIndex((insn) => insn.mark === target) - from - 1;
    // Conditional jumps go forward only, at most 255 instructions.
    if (distance < 0 || distance > 255)
      throw new Error(`seccomp: no jump from ${from} to ${target}`);
    return distance;
  };
  insns.forEach((insn, index) => {
    program.writeUInt16LE(insn.code, index * 8);
    program.writeUInt8(offset(index, insn.jt), index * 8 + 2);
    program.writeUInt8(offset(index, insn.jf), index * 8 + 3);
    program.writeUInt32LE(insn.k >>> 0, index * 8 + 4);
  });
  return program;
}

/**
 * Builds the sandbox's seccomp program for `arch` (an array of 8-byte `sock_filter`s, as bwrap's
 * `--seccomp` reads it). Another architecture (i386 on x86_64, arm on aarch64) kills the process;
 * x32 system calls, {@link DENIED_SYSCALLS}, clone with a CLONE_NEW* flag and the terminal
 * injection ioctls get EPERM; clone3 gets ENOSYS, so that libc falls back to clone, whose flags
 * the filter can read (clone3's are behind a pointer).
 */
export function buildSeccompProgram(arch: SeccompArch): Buffer {
  const numbers = NUMBERS[arch];
  const insns: Insn[] = [
    { code: LD_W_ABS, k: ARCH },
    { code: JEQ_K, k: AUDIT_ARCH[arch], jf: "kill" },
    { code: LD_W_ABS, k: NR },
  ];
  if (arch === "x86_64") insns.push({ code: JGE_K, k: X32_SYSCALL_BIT, jt: "eperm" });
  for (const name of DENIED_SYSCALLS) insns.push({ code: JEQ_K, k: numbers[name], jt: "eperm" });
  insns.push(
    { code: JEQ_K, k: numbers.clone3, jt: "enosys" },
    { code: JEQ_K, k: numbers.ioctl, jt: "ioctl" },
    // clone: refuse any namespace flag in its first argument.
    { code: JEQ_K, k: numbers.clone, jf: "allow" },
    { code: LD_W_ABS, k: argLow(0) },
    { code: JSET_K, k: CLONE_NEW_FLAGS, jt: "eperm", jf: "allow" },
    // ioctl: refuse the requests that inject terminal input.
    { code: LD_W_ABS, k: argLow(1), mark: "ioctl" },
    { code: JEQ_K, k: TTY_INJECTION_IOCTLS.TIOCSTI, jt: "eperm" },
    { code: JEQ_K, k: TTY_INJECTION_IOCTLS.TIOCLINUX, jt: "eperm", jf: "allow" },
  );
  return assemble(insns);
}
