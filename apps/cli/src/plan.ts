/**
 * The plan of a bottle: what `bottle up` would do, shown from the sidecars' own plans
 * (`prepareGitGate`, `prepareCredProxy`: the contract, never derived again here) and the names
 * of host environment variables. Pure: no files written, no processes, and never a secret value.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { type CredProxyPlan, prepareCredProxy } from "@bottle/cred-proxy/plan";
import { type GitGatePlan, type PlannedCredential, prepareGitGate } from "@bottle/git-gate/stage";
import type { Manifest, RouteAllow, RouteAuth } from "@bottle/manifest";
import { DEFAULT_PORTS } from "@bottle/sidecar";
import { TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import { bottlePaths, stateRoot } from "./bottle/state.ts";
import { planTokman, type TokmanPlan } from "./tokman.ts";
/** How a host environment variable stands: never its value. */
export type EnvState = "set" | "empty" | "unset";

/** The plan, as `bottle plan --json` prints it. */
export interface Plan {
  readonly project: string;
  readonly agent: {
    readonly command: readonly string[];
    readonly workdir: string;
    readonly image: string | null;
    readonly env: readonly string[];
  };
  readonly repos: ReadonlyArray<{
    readonly name: string;
    /** Path on the gate: `<project>/<name>.git`. */
    readonly served_as: string;
    readonly upstream: string;
    readonly transport: string;
    readonly host: string;
    readonly credential: string;
    readonly host_key: string | null;
    readonly push: { readonly force_push: string; readonly deletes: string };
  }>;
  readonly scan: {
    readonly scanner: string;
    readonly extra_rules: number;
    readonly allowlisted: number;
    /** A push holding a larger object is refused. */
    readonly max_blob_bytes: number;
  } | null;
  readonly routes: ReadonlyArray<{
    readonly path: string;
    readonly upstream: string;
    readonly auth: string;
    /** The proxy's token slot, or for a GitHub App route `github-app <app> <owner/name>`. */
    readonly slot: string;
    /** Set for a GitHub App route: its token comes from tokman, not from a host variable. */
    readonly github_app?: {
      readonly app: string;
      readonly repository: string;
      readonly permissions?: Readonly<Record<string, string>>;
    };
    readonly roles: readonly string[];
    /** Set when git pushes pass the route (the proxy refuses them elsewhere). */
    readonly git_push?: true;
    /** Set when only requests matching these rules pass (`read_only` expanded). */
    readonly allow?: readonly RouteAllow[];
  }>;
  /** Where GitHub App tokens come from; null when nothing uses a GitHub App. */
  readonly tokman: TokmanPlan | null;
  /** Every host variable the bottle reads, what for, and whether it is set. */
  readonly host_env: ReadonlyArray<{
    readonly name: string;
    readonly state: EnvState;
    readonly used_by: readonly string[];
  }>;
  /** Secret files the sidecars read (already checked: present, mode 0600 or stricter). */
  readonly files: ReadonlyArray<{
    readonly path: string;
    readonly mode: string;
    readonly used_by: string;
  }>;
}

/** `ssh-ed25519 SHA256:…`, as `ssh-keygen -lf` prints it: safe to show, easy to compare. */
export function hostKeyFingerprint(line: string): string {
  const [type = "", blob = ""] = line.trim().split(/\s+/);
  const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64");
  return `${type} SHA256:${digest.replace(/=+$/, "")}`;
}

/** A short, secret-free description of a route's authentication. */
export function describeAuth(auth: RouteAuth): string {
  if ("header" in auth) return `header ${auth.header}`;
  return auth.scheme === "Basic" ? `Basic ${auth.username}:<token>` : `${auth.scheme} <token>`;
}

/** The sidecars' own plans of a bottle; null for a sidecar the manifest does not need. */
export interface SidecarPlans {
  readonly gate: GitGatePlan | null;
  readonly proxy: CredProxyPlan | null;
}

/**
 * `prepareGitGate` (the stage in `stage`, the agent reaching the gate at `gateUrl`) and
 * `prepareCredProxy`. Pure; throws what they throw for a manifest they cannot plan.
 */
export function prepareSidecars(
  manifest: Manifest,
  stage: string,
  gateUrl = `http://127.0.0.1:${DEFAULT_PORTS.gate}`,
  /** How the gate's hooks run `bottle-git-gate` (default this Node and the installed package). */
  gitGateCommand?: readonly string[],
): SidecarPlans {
  const hasRepos = Object.keys(manifest.git_gate?.repos ?? {}).length > 0;
  const proxy = prepareCredProxy(manifest);
  return {
    gate: hasRepos
      ? prepareGitGate(
          manifest,
          stage,
          gitGateCommand ? { gateUrl, command: gitGateCommand } : { gateUrl },
        )
      : null,
    proxy: proxy.routesFile.routes.length > 0 ? proxy : null,
  };
}

/** Where `bottle up` would put the stage of a bottle named after the manifest. */
function defaultStage(name: string, env: Readonly<Record<string, string | undefined>>): string {
  try {
    return bottlePaths(stateRoot(env), name).stage;
  } catch {
    return `/${name}/stage`; // no state directory here: the plan shows no path under it
  }
}

/**
 * Builds the plan from the sidecars' plans (by default those of bottle `manifest.name`'s
 * stage). `env` is only asked whether a variable is set, never for its value.
 */
export function planBottle(
  manifest: Manifest,
  env: Readonly<Record<string, string | undefined>>,
  plans: SidecarPlans = prepareSidecars(manifest, defaultStage(manifest.name, env)),
): Plan {
  const hostEnv = new Map<string, string[]>();
  const use = (name: string, what: string) => {
    hostEnv.set(name, [...(hostEnv.get(name) ?? []), what]);
  };
  const files: Array<{ path: string; mode: string; used_by: string }> = [];
  const file = (path: string, usedBy: string) => {
    files.push({
      path,
      mode: (statSync(path, { throwIfNoEntry: false })?.mode ?? 0).toString(8).slice(-4),
      used_by: usedBy,
    });
  };

  const gate = plans.gate ?? undefined;
  const repos = (gate?.repos ?? []).map((repo) => {
    const credential = describeCredential(repo.credential);
    const { credential: planned, name } = repo;
    if (planned.kind === "ssh-key" && planned.source === "static")
      file(planned.identity, `git_gate.repos.${name}`);
    else if (planned.source === "gitea-deploy-key")
      use(planned.tokenEnv, `deploy-key provisioner for repo ${name}`);
    else if (planned.source === "env")
      use(planned.tokenEnv, `push and fetch token for repo ${name}`);
    const pinned = repo.knownHosts?.lines[0]?.split(" ").slice(1).join(" ");
    return {
      name,
      served_as: `${manifest.name}/${name}.git`,
      upstream: repo.upstream,
      transport: repo.transport,
      host: repo.host,
      credential,
      host_key: pinned === undefined ? null : hostKeyFingerprint(pinned),
      push: { force_push: repo.push.force_push, deletes: repo.push.deletes },
    };
  });
  for (const [name, app] of Object.entries(manifest.github_apps))
    file(app.private_key, `github_apps.${name}`);

  const proxy = plans.proxy ?? prepareCredProxy(manifest);
  for (const slot of proxy.slots)
    use(slot.token_ref, `proxy ${slot.slot} (${slot.routes.join(", ")})`);
  const rolesOf = (path: string) =>
    Object.entries(proxy.roles)
      .filter(([, paths]) => paths.includes(path))
      .map(([role]) => role);
  const appOf = new Map((proxy.tokman?.routes ?? []).map((route) => [route.path, route.app]));
  const tokman = planTokman(plans, env);
  if (tokman?.source === "operator") {
    use(TOKMAN_URL_ENV, "the operator's tokman (GitHub App tokens)");
    use(TOKMAN_KEY_ENV, "the caller key at the operator's tokman");
  }

  const state = (name: string): EnvState => {
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    return value === undefined ? "unset" : value === "" ? "empty" : "set";
  };
  return {
    project: manifest.name,
    agent: {
      command: manifest.agent.command,
      workdir: manifest.agent.workdir,
      image: manifest.agent.image ?? null,
      env: Object.keys(manifest.agent.env),
    },
    repos,
    scan:
      gate === undefined
        ? null
        : {
            scanner: gate.scan.scanner,
            extra_rules: gate.scan.rules.length,
            allowlisted: gate.scan.allowlist.length,
            max_blob_bytes: gate.scan.maxBlobBytes,
          },
    routes: proxy.routesFile.routes.map((route) => {
      const common = {
        path: route.path,
        upstream: route.upstream,
        auth: describeAuth(route.auth),
      };
      const limits = {
        roles: rolesOf(route.path),
        ...(route.git_push ? { git_push: true as const } : {}),
        ...(route.allow === undefined ? {} : { allow: route.allow }),
      };
      if ("token_env" in route) return { ...common, slot: route.token_env, ...limits };
      const app = appOf.get(route.path) ?? "";
      return {
        ...common,
        slot: `github-app ${app} ${route.tokman.repository}`,
        github_app: { app, ...route.tokman },
        ...limits,
      };
    }),
    tokman,
    host_env: [...hostEnv].map(([name, usedBy]) => ({ name, state: state(name), used_by: usedBy })),
    files,
  };
}

/** A short, secret-free description of how the gate reaches an upstream. */
function describeCredential(credential: PlannedCredential): string {
  switch (credential.source) {
    case "static":
      return `static SSH key ${credential.identity}`;
    case "gitea-deploy-key":
      return `deploy key provisioned through ${credential.api}`;
    case "github-app":
      return `GitHub App ${credential.app} installation token`;
    default:
      return `token as ${credential.username}`;
  }
}
