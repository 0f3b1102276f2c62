/**
 * The sandbox's /etc: a handful of files written for it, never the host's /etc (whose gitconfig,
 * for one, may name a credential helper). The CA certificates, openssl.cnf and the alternatives
 * links come from the host, bound read-only onto mount points made here.
 */
import { copyFile, mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The user the agent runs as inside the sandbox. */
export const SANDBOX_USER = {
  name: "agent",
  uid: 1000,
  gid: 1000,
  home: "/home/agent",
  shell: "/bin/bash",
} as const;

/** The sandbox's host name (its own UTS namespace). */
export const SANDBOX_HOSTNAME = "bottle";

/** Host paths bound read-only at the same place inside the sandbox's /etc, when they exist. */
const HOST_ETC = [
  { path: "/etc/alternatives", kind: "dir" },
  { path: "/etc/ssl/certs", kind: "dir" },
  { path: "/etc/ssl/openssl.cnf", kind: "file" },
] as const;

/** The written /etc and the host paths to bind over its mount points. */
export interface SandboxEtc {
  /** The directory to bind read-only at /etc. */
  readonly dir: string;
  /** Host paths (absolute, under /etc) to bind read-only at the same path. */
  readonly hostBinds: readonly string[];
}

const FILES: Readonly<Record<string, string>> = {
  passwd: [
    "root:x:0:0:root:/root:/usr/sbin/nologin",
    `${SANDBOX_USER.name}:x:${SANDBOX_USER.uid}:${SANDBOX_USER.gid}:bottle agent:${SANDBOX_USER.home}:${SANDBOX_USER.shell}`,
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  ].join("\n"),
  group: ["root:x:0:", `${SANDBOX_USER.name}:x:${SANDBOX_USER.gid}:`, "nogroup:x:65534:"].join(
    "\n",
  ),
  hosts: [
    `127.0.0.1\tlocalhost ${SANDBOX_HOSTNAME}`,
    "::1\tlocalhost ip6-localhost ip6-loopback",
  ].join("\n"),
  // No name server: the sandbox's only network is its own loopback.
  "resolv.conf": "# no DNS in the sandbox: sidecars are reached at 127.0.0.1",
  "nsswitch.conf": ["passwd: files", "group: files", "shadow: files", "hosts: files"].join("\n"),
};

async function exists(path: string): Promise<"dir" | "file" | undefined> {
  try {
    const info = await stat(path);
    return info.isDirectory() ? "dir" : "file";
  } catch {
    return undefined;
  }
}

/**
 * Writes the sandbox's /etc into `<dir>/etc`, replacing an earlier one: passwd and group (the
 * agent user, uid 1000), hosts, resolv.conf, nsswitch.conf, the host's ld.so.cache (copied: the
 * dynamic loader finds the multiarch library directories through it) and empty mount points for
 * the host paths returned in `hostBinds`.
 */
export async function writeSandboxEtc(dir: string): Promise<SandboxEtc> {
  const etc = join(dir, "etc");
  await rm(etc, { recursive: true, force: true });
  await mkdir(etc, { mode: 0o755 });
  for (const [name, content] of Object.entries(FILES)) {
    await writeFile(join(etc, name), `${content}\n`, { mode: 0o644 });
  }
  if ((await exists("/etc/ld.so.cache")) === "file") {
    await copyFile("/etc/ld.so.cache", join(etc, "ld.so.cache"));
  }
  const hostBinds: string[] = [];
  for (const { path, kind } of HOST_ETC) {
    if ((await exists(path)) !== kind) continue;
    const mountPoint = join(etc, path.slice("/etc/".length));
    if (kind === "dir") {
      await mkdir(mountPoint, { recursive: true, mode: 0o755 });
    } else {
      await mkdir(join(mountPoint, ".."), { recursive: true, mode: 0o755 });
      await writeFile(mountPoint, "", { mode: 0o644 });
    }
    hostBinds.push(path);
  }
  return { dir: etc, hostBinds };
}
