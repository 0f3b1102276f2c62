/** Which refs a push may update: branches and tags, nothing else. */
import { PUSHABLE_REFS, printable, type RefUpdate } from "@bottle/secret-scan";
import { GitGateError } from "./errors.ts";

/**
 * Throws `GitGateError` BTL_GITGATE_REF_REFUSED when an update names a ref outside
 * `refs/heads/*` and `refs/tags/*` (`refs/replace/*` would change what git reads, `refs/notes/*`
 * and others would reach the upstream unscanned, and are nothing an agent needs).
 */
export function checkRefs(updates: readonly RefUpdate[]): void {
  for (const { ref } of updates) {
    if (PUSHABLE_REFS.some((prefix) => ref.startsWith(prefix) && ref.length > prefix.length))
      continue;
    throw new GitGateError(
      "BTL_GITGATE_REF_REFUSED",
      `pushing to ${printable(ref)} is refused: the gate accepts only branches (refs/heads/*) and tags (refs/tags/*)`,
    );
  }
}
