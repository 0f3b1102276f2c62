/**
 * The Node.js version check every bottle executable runs before anything else. This module
 * imports nothing, so it loads on any Node.js: an older one gets one clear line instead of a
 * link error on `node:sqlite` or `enableCompileCache`.
 */

/** The oldest Node.js bottle runs on: the `engines` field of every bottle package. */
export const MIN_NODE_VERSION = "22.12.0";

/** The exit code of an executable started on an older Node.js. */
export const NODE_VERSION_EXIT = 1;

/** True when `version` (`22.12.0` or `v22.12.0`) is {@link MIN_NODE_VERSION} or newer. */
export function supportsNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const [minMajor = 0, minMinor = 0] = MIN_NODE_VERSION.split(".").map(Number);
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

/** The process an executable hands {@link exitIfNodeTooOld}: `process` itself. */
export interface NodeProcess {
  readonly versions: { readonly node: string };
  readonly execPath: string;
  readonly stderr: { write(text: string): unknown };
  exit(code: number): never;
}

/**
 * Ends `proc` with `BTL_NODE_VERSION: …` on stderr and {@link NODE_VERSION_EXIT} when its
 * Node.js is older than {@link MIN_NODE_VERSION}; returns otherwise. `name` is the executable's.
 */
export function exitIfNodeTooOld(name: string, proc: NodeProcess): void {
  if (supportsNode(proc.versions.node)) return;
  proc.stderr.write(
    `BTL_NODE_VERSION: ${name} needs Node.js ${MIN_NODE_VERSION} or newer, and this is ` +
      `Node.js ${proc.versions.node} (${proc.execPath}). Install Node.js 24 LTS (or 22.12+) ` +
      "and put it first on PATH.\n",
  );
  proc.exit(NODE_VERSION_EXIT);
}
