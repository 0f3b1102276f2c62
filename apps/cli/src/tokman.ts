/**
 * Where a bottle's GitHub App tokens come from: the operator's tokman, named by
 * BOTTLE_TOKMAN_URL and BOTTLE_TOKMAN_KEY, or else a tokman of the bottle's own, configured from
 * the manifest's `github_apps` with one caller per sidecar, each allowed only the repositories
 * and permissions the manifest gives that sidecar. The plan is pure; the caller keys are made
 * by `bottle up` and only their SHA-256 reaches tokman's configuration.
 */
import { createHash } from "node:crypto";
import type { CredProxyPlan } from "@bottle/cred-proxy/plan";
import type { GitGatePlan } from "@bottle/git-gate/stage";
import type { Manifest } from "@bottle/manifest";
import { TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import { CliError } from "./errors.ts";

/** What the gate's tokens may do: fetch and push. */
const GATE_PERMISSIONS = { contents: "write", metadata: "read" } as const;
/** What a proxy route's tokens may do when the route names no permissions. */
const ROUTE_DEFAULT_PERMISSIONS = { contents: "read", metadata: "read" } as const;

/** One sidecar's policy at the bottle's tokman. */
export interface TokmanCallerPlan {
  readonly name: "gate" | "proxy";
  readonly app: string;
  readonly repositories: readonly string[];
  readonly permissions: Readonly<Record<string, "read" | "write">>;
}

/** Where the tokens come from; null when no repository or route uses a GitHub App. */
export type TokmanPlan =
  | { readonly source: "operator" }
  | { readonly source: "bottle"; readonly callers: readonly TokmanCallerPlan[] };

/** The sidecars' plans, as `prepareSidecars` returns them. */
interface Plans {
  readonly gate: GitGatePlan | null;
  readonly proxy: CredProxyPlan | null;
}

/**
 * Plans the bottle's tokman. With BOTTLE_TOKMAN_URL or BOTTLE_TOKMAN_KEY set the operator's
 * tokman is used (both must then be set). Throws CliError BTL_CLI_UNSUPPORTED when one sidecar
 * would need tokens of two apps (a tokman caller belongs to one app), BTL_CLI_USAGE when only
 * one of the two variables is set.
 */
export function planTokman(
  plans: Plans,
  env: Readonly<Record<string, string | undefined>>,
): TokmanPlan | null {
  const gate = (plans.gate?.repos ?? []).flatMap((repo) =>
    repo.credential.source === "github-app"
      ? [{ app: repo.credential.app, repository: repo.credential.repository }]
      : [],
  );
  const proxy = plans.proxy?.tokman?.routes ?? [];
  if (gate.length === 0 && proxy.length === 0) return null;
  const url = env[TOKMAN_URL_ENV];
  const key = env[TOKMAN_KEY_ENV];
  if (url || key) {
    if (!url || !key) {
      throw new CliError(
        "BTL_CLI_USAGE",
        `$${TOKMAN_URL_ENV} and $${TOKMAN_KEY_ENV} name the operator's tokman together: set both, or neither for a tokman of the bottle's own`,
      );
    }
    return { source: "operator" };
  }
  const callers: TokmanCallerPlan[] = [];
  if (gate.length > 0) {
    callers.push({
      name: "gate",
      app: oneApp("gate", gate),
      repositories: unique(gate.map((r) => r.repository)),
      permissions: GATE_PERMISSIONS,
    });
  }
  if (proxy.length > 0) {
    const permissions: Record<string, "read" | "write"> = {};
    for (const route of proxy) {
      for (const [name, level] of Object.entries(route.permissions ?? ROUTE_DEFAULT_PERMISSIONS)) {
        if (permissions[name] !== "write") permissions[name] = level as "read" | "write";
      }
    }
    callers.push({
      name: "proxy",
      app: oneApp("proxy", proxy),
      repositories: unique(proxy.map((r) => r.repository)),
      permissions,
    });
  }
  return { source: "bottle", callers };
}

function oneApp(sidecar: string, uses: ReadonlyArray<{ readonly app: string }>): string {
  const apps = unique(uses.map((u) => u.app));
  if (apps.length > 1) {
    throw new CliError(
      "BTL_CLI_UNSUPPORTED",
      `the ${sidecar}'s GitHub App tokens come from ${apps.join(" and ")}: a bottle's own tokman gives each sidecar one app (run a tokman with a caller per app and set $${TOKMAN_URL_ENV} and $${TOKMAN_KEY_ENV})`,
    );
  }
  return apps[0] as string;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

/**
 * The configuration of the bottle's tokman (JSON, which tokman reads as YAML): the manifest's
 * apps that a caller uses, and each caller with the SHA-256 of its key, never the key.
 */
export function tokmanConfig(
  manifest: Manifest,
  callers: readonly TokmanCallerPlan[],
  keys: Readonly<Record<string, string>>,
): string {
  const apps: Record<string, unknown> = {};
  for (const caller of callers) {
    const app = manifest.github_apps[caller.app];
    if (app === undefined) throw new Error(`github_apps has no ${caller.app}`);
    apps[caller.app] = {
      ...(app.app_id === undefined ? {} : { app_id: app.app_id }),
      ...(app.client_id === undefined ? {} : { client_id: app.client_id }),
      private_key: app.private_key,
      api: app.api,
    };
  }
  const entries = callers.map((caller) => {
    const key = keys[caller.name];
    if (key === undefined) throw new Error(`no key for the ${caller.name}`);
    return [
      caller.name,
      {
        key_sha256: createHash("sha256").update(key).digest("hex"),
        app: caller.app,
        repositories: caller.repositories,
        permissions: caller.permissions,
      },
    ];
  });
  return `${JSON.stringify({ version: 1, apps, callers: Object.fromEntries(entries) }, null, 2)}\n`;
}
