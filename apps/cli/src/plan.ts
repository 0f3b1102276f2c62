/**
 * The plan of a bottle: what `bottle up` would do, computed from the manifest and the names of
 * host environment variables. Pure: no files written, no processes, and never a secret value.
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import {
  expandRoutes,
  type Manifest,
  parseGitUrl,
  type RouteAllow,
  type RouteAuth,
  tokenSlots,
} from "@bottle/manifest";

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

/** Builds the plan. `env` is only asked whether a variable is set, never for its value. */
export function planBottle(
  manifest: Manifest,
  env: Readonly<Record<string, string | undefined>>,
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

  const repos = Object.entries(manifest.git_gate?.repos ?? {}).map(([name, repo]) => {
    const url = parseGitUrl(repo.url);
    const key = repo.key;
    let credential: string;
    if (key.provider === "static") {
      credential = `static SSH key ${key.identity}`;
      file(key.identity, `git_gate.repos.${name}`);
    } else if (key.provider === "gitea") {
      credential = `deploy key provisioned through ${key.api}`;
      use(key.token_ref, `deploy-key provisioner for repo ${name}`);
    } else if (key.provider === "github-app") {
      credential = `GitHub App ${key.app} installation token`;
    } else {
      credential = `token as ${key.username}`;
      use(key.token_ref, `push and fetch token for repo ${name}`);
    }
    return {
      name,
      served_as: `${manifest.name}/${name}.git`,
      upstream: repo.url,
      transport: typeof url === "string" ? "?" : url.transport,
      host: typeof url === "string" ? "?" : url.host,
      credential,
      host_key: repo.host_key === undefined ? null : hostKeyFingerprint(repo.host_key),
      push: { force_push: repo.push.force_push, deletes: repo.push.deletes },
    };
  });
  for (const [name, app] of Object.entries(manifest.github_apps))
    file(app.private_key, `github_apps.${name}`);

  const routes = expandRoutes(manifest);
  const slots = tokenSlots(routes);
  const slotOf = new Map(slots.map((s) => [s.token_ref, s.slot]));
  for (const slot of slots) use(slot.token_ref, `proxy ${slot.slot} (${slot.routes.join(", ")})`);

  const state = (name: string): EnvState => {
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    return value === undefined ? "unset" : value === "" ? "empty" : "set";
  };
  const scan = manifest.git_gate?.scan;
  return {
    project: manifest.name,
    agent: {
      command: manifest.agent.command,
      workdir: manifest.agent.workdir,
      image: manifest.agent.image ?? null,
      env: Object.keys(manifest.agent.env),
    },
    repos,
    scan: scan
      ? {
          scanner: scan.scanner,
          extra_rules: scan.rules.length,
          allowlisted: scan.allowlist.length,
          max_blob_bytes: scan.max_blob_bytes,
        }
      : null,
    routes: routes.map((r) => {
      const limits = {
        ...(r.git_push ? { git_push: true as const } : {}),
        ...(r.allow === undefined ? {} : { allow: r.allow }),
      };
      return r.tokman === undefined
        ? {
            path: r.path,
            upstream: r.upstream,
            auth: describeAuth(r.auth),
            slot: slotOf.get(r.token_ref) ?? "",
            roles: r.roles,
            ...limits,
          }
        : {
            path: r.path,
            upstream: r.upstream,
            auth: describeAuth(r.auth),
            slot: `github-app ${r.tokman.app} ${r.tokman.repository}`,
            github_app: { ...r.tokman },
            roles: r.roles,
            ...limits,
          };
    }),
    host_env: [...hostEnv].map(([name, usedBy]) => ({ name, state: state(name), used_by: usedBy })),
    files,
  };
}
