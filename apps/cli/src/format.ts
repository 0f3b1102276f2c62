/** Human-readable rendering of a plan, for `bottle plan` without `--json`. */
import type { Plan } from "./plan.ts";

function table(rows: readonly (readonly string[])[], indent = "  "): string[] {
  const widths: number[] = [];
  for (const row of rows)
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  return rows.map(
    (row) =>
      indent + row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  "),
  );
}

/** What a route lets through beyond the defaults: `allow GET,HEAD /**; git push`, or nothing. */
function describeLimits(route: Plan["routes"][number]): string {
  const parts = (route.allow ?? []).map(
    (rule) => `allow ${rule.methods.join(",")} ${rule.paths.join(" ")}`,
  );
  if (route.git_push) parts.push("git push");
  return parts.join("; ");
}

/** Renders the plan as aligned sections; host variables show set/empty/unset, never values. */
export function formatPlan(plan: Plan, source: string): string {
  const out: string[] = [`bottle ${plan.project} (${source})`, ""];
  out.push("agent");
  out.push(
    ...table([
      ["command", plan.agent.command.join(" ")],
      ["workdir", plan.agent.workdir],
      ...(plan.agent.image ? [["image", plan.agent.image]] : []),
      ["env", plan.agent.env.length ? plan.agent.env.join(", ") : "(none)"],
    ]),
  );
  out.push(
    "",
    `git gate: ${plan.repos.length} ${plan.repos.length === 1 ? "repository" : "repositories"}`,
  );
  for (const repo of plan.repos) {
    out.push(`  ${repo.served_as}  ← ${repo.upstream}`);
    out.push(
      ...table(
        [
          ["credential", repo.credential],
          ...(repo.host_key ? [["host key", `${repo.host_key} (pinned)`]] : []),
          ["push", `force-push ${repo.push.force_push}, deletes ${repo.push.deletes}`],
        ],
        "      ",
      ),
    );
  }
  if (plan.scan) {
    out.push(
      `  secret scan: ${plan.scan.scanner}, ${plan.scan.extra_rules} extra rule(s), ${plan.scan.allowlisted} allowlisted finding(s), objects up to ${mebibytes(plan.scan.max_blob_bytes)}`,
    );
  }
  out.push(
    "",
    `cred proxy: ${plan.routes.length} ${plan.routes.length === 1 ? "route" : "routes"}`,
  );
  out.push(
    ...table(
      plan.routes.map((r) => [
        r.path,
        `→ ${r.upstream}`,
        r.auth,
        r.slot,
        r.roles.length ? `[${r.roles.join(", ")}]` : "",
        describeLimits(r),
      ]),
    ),
  );
  if (plan.tokman?.source === "operator") {
    out.push("", "GitHub App tokens: the operator's tokman ($BOTTLE_TOKMAN_URL)");
  } else if (plan.tokman) {
    out.push("", "GitHub App tokens: the bottle's own tokman, one caller per sidecar");
    out.push(
      ...table(
        plan.tokman.callers.map((c) => [
          c.name,
          `app ${c.app}`,
          c.repositories.join(", "),
          Object.entries(c.permissions)
            .map(([name, level]) => `${name} ${level}`)
            .join(", "),
        ]),
      ),
    );
  }
  out.push("", "host environment (values are never shown)");
  out.push(
    ...(plan.host_env.length
      ? table(plan.host_env.map((e) => [e.name, e.state, e.used_by.join("; ")]))
      : ["  (none)"]),
  );
  if (plan.files.length) {
    out.push("", "secret files");
    out.push(...table(plan.files.map((f) => [f.path, f.mode, f.used_by])));
  }
  return `${out.map((l) => l.trimEnd()).join("\n")}\n`;
}

function mebibytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}
