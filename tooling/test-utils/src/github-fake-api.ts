/** The fake's REST routes: apps, installations, installation access tokens, repositories. */
import type { IncomingMessage } from "node:http";
import type { createAuth } from "./github-fake-auth.ts";
import {
  type Answer,
  ApiError,
  type App,
  DOCS_CREATE_TOKEN,
  digest,
  type FakeState,
  type Identity,
  type Installation,
  isoSeconds,
  LEVELS,
  notFound,
  randomToken,
  SUSPENDED,
  type TokenRecord,
} from "./github-fake-model.ts";
import type { GitHubPermissionLevel } from "./github-fake-types.ts";
import { jsonObject } from "./http-body.ts";

const NOT_IN_INSTALLATION =
  "There is at least one repository that does not exist or is not accessible to the parent installation.";
const NOT_GRANTED = "The permissions requested are not granted to this installation.";
/** A token request may list at most 500 repositories (names and ids together). */
const MAX_TOKEN_REPOSITORIES = 500;
/** Installation access tokens live one hour. */
const TOKEN_TTL_MS = 60 * 60 * 1000;

function invalid(property: string, value: unknown, expected: string): ApiError {
  return new ApiError(
    422,
    `Invalid request.\n\nFor 'properties/${property}', ${JSON.stringify(value)} is not ${expected}.`,
    DOCS_CREATE_TOKEN,
  );
}

/** Reads the optional body of `POST /app/installations/{id}/access_tokens`. */
function parseTokenRequest(body: Buffer) {
  const {
    repositories,
    repository_ids: ids,
    permissions,
  } = jsonObject(
    body.length > 0 ? body.toString("utf8") : undefined,
    () => new ApiError(400, "Problems parsing JSON"),
  );
  if (
    repositories !== undefined &&
    !(Array.isArray(repositories) && repositories.every((r) => typeof r === "string"))
  ) {
    throw invalid("repositories", repositories, "an array of strings");
  }
  if (ids !== undefined && !(Array.isArray(ids) && ids.every((id) => Number.isInteger(id)))) {
    throw invalid("repository_ids", ids, "an array of integers");
  }
  if (
    permissions !== undefined &&
    (typeof permissions !== "object" || permissions === null || Array.isArray(permissions))
  ) {
    throw invalid("permissions", permissions, "an object");
  }
  return {
    names: (repositories ?? []) as string[],
    ids: (ids ?? []) as number[],
    permissions: permissions as Record<string, unknown> | undefined,
  };
}

/** The route handler of the fake's API over `state`. */
export function createApi(state: FakeState, auth: ReturnType<typeof createAuth>) {
  const { installations, tokens, clock, startedAt, tokenLength, revoked } = state;
  const { requireApp, requireToken } = auth;
  const accountJson = (inst: Installation) => ({
    login: inst.account.login,
    id: inst.account.id,
    type: inst.account.type,
  });

  const repoJson = (inst: Installation, repo: { id: number; name: string }) => ({
    id: repo.id,
    name: repo.name,
    full_name: `${inst.account.login}/${repo.name}`,
    private: true,
    owner: accountJson(inst),
  });

  const installationJson = (inst: Installation) => ({
    id: inst.id,
    account: accountJson(inst),
    app_id: inst.app.id,
    app_slug: inst.app.slug,
    target_id: inst.account.id,
    target_type: inst.account.type,
    permissions: { ...inst.permissions },
    events: [],
    repository_selection: "selected",
    access_tokens_url: `${state.base}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${state.base}/installation/repositories`,
    created_at: startedAt,
    updated_at: startedAt,
    single_file_name: null,
    suspended_at: inst.suspendedAt,
    suspended_by: null,
  });

  const appJson = (app: App) => {
    const own = [...installations.values()].filter((inst) => inst.app === app);
    const permissions: Record<string, GitHubPermissionLevel> = {};
    for (const inst of own) {
      for (const [name, level] of Object.entries(inst.permissions)) {
        const known = permissions[name];
        if (known === undefined || LEVELS[level] > LEVELS[known]) permissions[name] = level;
      }
    }
    return {
      id: app.id,
      slug: app.slug,
      client_id: app.clientId,
      name: app.slug,
      owner: null,
      description: null,
      external_url: `${state.base}/apps/${app.slug}`,
      html_url: `${state.base}/apps/${app.slug}`,
      created_at: startedAt,
      updated_at: startedAt,
      permissions,
      events: [],
      installations_count: own.length,
    };
  };

  const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

  const findInstallation = (app: App, test: (inst: Installation) => boolean): Installation => {
    const found = [...installations.values()].find((inst) => inst.app === app && test(inst));
    if (found === undefined) throw notFound();
    return found;
  };

  const mint = (app: App, installationId: string, body: Buffer): Answer => {
    const inst = /^\d+$/.test(installationId)
      ? installations.get(Number(installationId))
      : undefined;
    if (inst === undefined || inst.app !== app) throw notFound();
    if (inst.suspendedAt !== null) throw new ApiError(403, SUSPENDED, DOCS_CREATE_TOKEN);
    const asked = parseTokenRequest(body);
    if (asked.names.length + asked.ids.length > MAX_TOKEN_REPOSITORIES) {
      throw new ApiError(
        422,
        `Too many repositories: at most ${MAX_TOKEN_REPOSITORIES} can be listed.`,
        DOCS_CREATE_TOKEN,
      );
    }
    const chosen = new Map<number, { id: number; name: string }>();
    for (const name of asked.names) {
      const repo = inst.repositories.find((r) => sameName(r.name, name));
      if (repo === undefined) throw new ApiError(422, NOT_IN_INSTALLATION, DOCS_CREATE_TOKEN);
      chosen.set(repo.id, repo);
    }
    for (const id of asked.ids) {
      const repo = inst.repositories.find((r) => r.id === id);
      if (repo === undefined) throw new ApiError(422, NOT_IN_INSTALLATION, DOCS_CREATE_TOKEN);
      chosen.set(repo.id, repo);
    }
    let permissions: Record<string, GitHubPermissionLevel> = { ...inst.permissions };
    if (asked.permissions !== undefined && Object.keys(asked.permissions).length > 0) {
      permissions = {};
      for (const [name, level] of Object.entries(asked.permissions)) {
        if (level !== "read" && level !== "write" && level !== "admin") {
          throw invalid(`permissions/${name}`, level, 'one of "read", "write" or "admin"');
        }
        const granted = inst.permissions[name];
        if (granted === undefined || LEVELS[level] > LEVELS[granted]) {
          throw new ApiError(422, NOT_GRANTED, DOCS_CREATE_TOKEN);
        }
        permissions[name] = level;
      }
    }
    const createdAt = clock();
    const record: TokenRecord = {
      token: randomToken(tokenLength),
      appId: app.id,
      installationId: inst.id,
      permissions,
      repositories: chosen.size > 0 ? [...chosen.values()] : "all",
      createdAt: isoSeconds(createdAt),
      expiresAt: isoSeconds(new Date(createdAt.getTime() + TOKEN_TTL_MS)),
      revokedAt: null,
      installation: inst,
    };
    tokens.set(digest(record.token), record);
    state.mints += 1;
    return {
      status: 201,
      body: {
        token: record.token,
        expires_at: record.expiresAt,
        permissions: { ...permissions },
        repository_selection: "selected",
        ...(record.repositories === "all"
          ? {}
          : { repositories: record.repositories.map((r) => repoJson(inst, r)) }),
      },
    };
  };

  const inScope = (record: TokenRecord): Array<{ id: number; name: string }> =>
    record.repositories === "all" ? record.installation.repositories : record.repositories;

  const route = (req: IncomingMessage, segments: string[], identity: Identity, body: Buffer) => {
    const method = req.method ?? "";
    const [first, second, third, fourth] = segments;
    const key = `${method} ${segments.length}`;
    if (key === "GET 1" && first === "app") {
      return { status: 200, body: appJson(requireApp(identity)) };
    }
    if (key === "GET 2" && first === "app" && second === "installations") {
      const app = requireApp(identity);
      const own = [...installations.values()].filter((inst) => inst.app === app);
      return { status: 200, body: own.map(installationJson) };
    }
    if (key === "GET 3" && first === "app" && second === "installations" && third !== undefined) {
      const app = requireApp(identity);
      return {
        status: 200,
        body: installationJson(findInstallation(app, (inst) => String(inst.id) === third)),
      };
    }
    if (
      key === "POST 4" &&
      first === "app" &&
      second === "installations" &&
      third !== undefined &&
      fourth === "access_tokens"
    ) {
      return mint(requireApp(identity), third, body);
    }
    if (key === "GET 4" && first === "repos" && fourth === "installation") {
      const app = requireApp(identity);
      const inst = findInstallation(
        app,
        (i) =>
          sameName(i.account.login, second ?? "") &&
          i.repositories.some((r) => sameName(r.name, third ?? "")),
      );
      return { status: 200, body: installationJson(inst) };
    }
    if (key === "GET 3" && (first === "orgs" || first === "users") && third === "installation") {
      const app = requireApp(identity);
      const inst = findInstallation(
        app,
        (i) =>
          sameName(i.account.login, second ?? "") &&
          (first === "users" || i.account.type === "Organization"),
      );
      return { status: 200, body: installationJson(inst) };
    }
    if (key === "DELETE 2" && first === "installation" && second === "token") {
      const record = requireToken(identity);
      if (record === undefined) throw new ApiError(401, "Requires authentication");
      record.revokedAt = isoSeconds(clock());
      revoked.push(record.token);
      return { status: 204 };
    }
    if (key === "GET 2" && first === "installation" && second === "repositories") {
      const record = requireToken(identity);
      if (record === undefined) throw new ApiError(401, "Requires authentication");
      const repos = inScope(record);
      return {
        status: 200,
        body: {
          total_count: repos.length,
          repository_selection: "selected",
          repositories: repos.map((r) => repoJson(record.installation, r)),
        },
      };
    }
    if (key === "GET 3" && first === "repos") {
      // Without a token the repositories are private, hence invisible: 404, not 401.
      const record = requireToken(identity);
      const repo =
        record === undefined
          ? undefined
          : inScope(record).find((r) => sameName(r.name, third ?? ""));
      if (
        record === undefined ||
        repo === undefined ||
        !sameName(record.installation.account.login, second ?? "")
      ) {
        throw notFound();
      }
      return { status: 200, body: repoJson(record.installation, repo) };
    }
    throw notFound();
  };
  return route;
}
