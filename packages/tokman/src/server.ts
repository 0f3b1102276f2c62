/**
 * tokman's HTTP API: `GET /api/<namespace>/<repository>` (packit tokman's shape plus
 * `expires_at`), `POST /api/revoke`, `/healthz`, `/readyz` and `/metrics`. Callers authenticate
 * with `Authorization: Bearer <key>`; keys are stored as SHA-256 digests and compared in
 * constant time. Errors answer `{ error, code }` with the code's status.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isBottleError } from "@bottle/errors";
import { type Logger, silentLogger } from "@bottle/log";
import { isCredentialValue } from "@bottle/manifest/policy";
import {
  answerMalformedRequests,
  capConnections,
  DEFAULT_PORTS,
  type ListenTarget,
  listenOn,
  nodeHttp,
  trackInFlight,
  writeErrorAnswer,
} from "@bottle/sidecar";
import { type Broker, createBroker } from "./broker.ts";
import {
  type CallerConfig,
  LEVELS,
  type Level,
  type Permissions,
  type TokmanConfig,
} from "./config.ts";
import { TOKMAN_ERRORS, TokmanError, type TokmanErrorCode } from "./errors.ts";
import { createGitHubApp, type GitHubApp } from "./github.ts";
import { createMemoryStore, createSqliteStore, type TokenStore } from "./store.ts";

/** Options of {@link createTokman}. */
export interface TokmanOptions {
  readonly config: TokmanConfig;
  readonly logger?: Logger;
  readonly now?: () => Date;
  /** Retries of GitHub calls (default 3 attempts, 200 ms backoff doubling). */
  readonly attempts?: number;
  readonly backoffMs?: number;
  /**
   * Requests handled at once (default 64); beyond it a request is answered 503
   * BTL_TOKMAN_BUSY with `Retry-After`. `GET /healthz` and `/metrics` are never refused.
   */
  readonly maxInFlight?: number;
  /**
   * Open connections at once (default 1024); beyond it a new one is closed unanswered and
   * counted in the log (BTL_TOKMAN_TOO_MANY_CONNECTIONS).
   */
  readonly maxConnections?: number;
  /** A connection silent for this long is closed (default 60 s). */
  readonly idleTimeoutMs?: number;
  /**
   * On close, revoke every token the store holds (for a tokman that serves one bottle: its
   * tokens die with it). Default false: a shared store keeps them for the next start.
   */
  readonly revokeOnClose?: boolean;
}

/** A running tokman. */
export interface Tokman {
  /**
   * Listens on `host:port` (default 127.0.0.1:9421), a unix socket (mode 0600; a stale one is
   * replaced, a live one refused) or an inherited descriptor; resolves to its URL. Throws
   * BTL_TOKMAN_LISTEN.
   */
  listen(target?: ListenTarget): Promise<string>;
  /** Stops accepting, lets in-flight requests finish, then closes the token store. */
  close(): Promise<void>;
  address(): AddressInfo | string | null;
  readonly broker: Broker;
  readonly server: Server;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,99})$/;
const MAX_BODY = 16 * 1024;
/** `/readyz` asks GitHub at most once per this interval, however often it is polled. */
const READY_TTL_MS = 30_000;

/** Creates tokman from a validated configuration. Throws BTL_TOKMAN_CONFIG, BTL_TOKMAN_STORE. */
export function createTokman(options: TokmanOptions): Tokman {
  const { config } = options;
  const log = options.logger ?? silentLogger;
  const now = options.now ?? (() => new Date());
  const maxInFlight = positive("maxInFlight", options.maxInFlight, 64);
  const maxConnections = positive("maxConnections", options.maxConnections, 1024);
  const idleTimeoutMs = positive("idleTimeoutMs", options.idleTimeoutMs, 60_000);
  const apps = new Map<string, GitHubApp>();
  for (const app of config.apps.values()) {
    apps.set(
      app.name,
      createGitHubApp({
        app,
        now,
        ...(options.attempts === undefined ? {} : { attempts: options.attempts }),
        ...(options.backoffMs === undefined ? {} : { backoffMs: options.backoffMs }),
      }),
    );
  }
  const store: TokenStore = config.store
    ? createSqliteStore(config.store.sqlite, config.store.key)
    : createMemoryStore();
  const broker = createBroker({ config, apps, store, now, logger: log });
  const callers = new Map<string, CallerConfig>(config.callers.map((c) => [c.keySha256, c]));

  // SECURITY: a probe never turns into GitHub traffic per request. One check at a time, its
  // outcome (success or failure) kept for READY_TTL_MS after it settles; requests during a
  // check share it.
  let readiness: { check: Promise<void>; until: number } | undefined;
  function ready(): Promise<void> {
    if (readiness !== undefined && now().getTime() < readiness.until) return readiness.check;
    const entry = {
      check: Promise.all([...apps.values()].map((app) => app.check())).then(() => undefined),
      until: Number.POSITIVE_INFINITY,
    };
    const settle = () => {
      entry.until = now().getTime() + READY_TTL_MS;
    };
    entry.check.then(settle, settle);
    readiness = entry;
    return entry.check;
  }

  function authenticate(req: IncomingMessage): CallerConfig {
    const key = /^(?:Bearer|token) (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (isCredentialValue(key)) {
      const digest = createHash("sha256").update(key).digest();
      const caller = callers.get(digest.toString("hex"));
      // SECURITY: the map finds the candidate; the digests are still compared in constant time.
      if (caller && timingSafeEqual(digest, Buffer.from(caller.keySha256, "hex"))) return caller;
    }
    throw new TokmanError(
      "BTL_TOKMAN_UNAUTHENTICATED",
      "a valid caller key is required (Authorization: Bearer <key>)",
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://tokman");
    const path = url.pathname;
    if (req.method === "GET" && path === "/healthz") return send(res, 200, { status: "ok" });
    if (req.method === "GET" && path === "/readyz") {
      await ready();
      return send(res, 200, { status: "ready" });
    }
    if (req.method === "GET" && path === "/metrics")
      return sendText(res, metricsText(broker, apps));
    const api = /^\/api\/([^/]+)\/([^/]+)$/.exec(path);
    if (req.method === "GET" && api) {
      const caller = authenticate(req);
      const [owner, repo] = [decode(api[1] ?? ""), decode(api[2] ?? "")];
      const minTtl = url.searchParams.get("min_ttl");
      const perms = url.searchParams.get("permissions");
      const issued = await broker.issue({
        caller,
        owner,
        repo,
        ...(perms === null ? {} : { permissions: parsePermissions(perms) }),
        ...(minTtl === null ? {} : { minTtl: parseMinTtl(minTtl) }),
        forceRefresh: /^(?:1|true|yes)$/i.test(url.searchParams.get("force_refresh") ?? ""),
      });
      res.setHeader("cache-control", "no-store");
      return send(res, 200, {
        namespace: owner,
        repository: repo,
        access_token: issued.token,
        expires_at: issued.expiresAt.toISOString(),
        permissions: issued.permissions,
      });
    }
    if (req.method === "POST" && path === "/api/revoke") {
      const caller = authenticate(req);
      const body = await readJson(req);
      const owner = decode(String(body.namespace ?? ""));
      const repo = decode(String(body.repository ?? ""));
      const revoked = await broker.revoke({
        caller,
        owner,
        repo,
        ...(typeof body.permissions === "string"
          ? { permissions: parsePermissions(body.permissions) }
          : {}),
      });
      return send(res, 200, { namespace: owner, repository: repo, revoked });
    }
    throw new TokmanError("BTL_TOKMAN_NOT_FOUND", "no such endpoint");
  }

  /** SECURITY: bounded concurrency; beyond the cap a request costs one short answer. */
  let inFlight = 0;
  function admit(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? "/").split("?", 1)[0];
    if (req.method === "GET" && (path === "/healthz" || path === "/metrics")) return true;
    if (inFlight >= maxInFlight) {
      const code = "BTL_TOKMAN_BUSY";
      broker.metrics.errors.set(code, (broker.metrics.errors.get(code) ?? 0) + 1);
      log.warn(
        { code, method: req.method, path: path?.slice(0, 200), maxInFlight },
        "request refused: too many in flight",
      );
      writeErrorAnswer(res, TOKMAN_ERRORS, code, "too many requests in flight; retry shortly", {
        headers: { "retry-after": "1" },
      });
      return false;
    }
    inFlight++;
    res.once("close", () => {
      inFlight--;
    });
    return true;
  }

  const server = nodeHttp.createServer(
    { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 },
    (req, res) => {
      requests.track(req, res);
      if (!admit(req, res)) return;
      handle(req, res).catch((error: unknown) => answerError(res, error));
    },
  );
  server.timeout = idleTimeoutMs;
  const requests = trackInFlight(server);
  const drops = capConnections(server, {
    max: maxConnections,
    log,
    code: "BTL_TOKMAN_TOO_MANY_CONNECTIONS",
  });
  answerMalformedRequests(server, log, requests);

  /** `{ error, code }` with the code's status; an unexpected error is logged, never answered. */
  function answerError(res: ServerResponse, error: unknown): void {
    if (isBottleError(error) && error.code !== "BTL_INTERNAL" && error.code in TOKMAN_ERRORS) {
      const resetAt = error instanceof TokmanError ? error.resetAt : undefined;
      const wait = resetAt && Math.ceil((resetAt.getTime() - now().getTime()) / 1000);
      writeErrorAnswer(
        res,
        TOKMAN_ERRORS,
        error.code as TokmanErrorCode,
        error.message,
        resetAt === undefined
          ? {}
          : {
              headers: { "retry-after": String(Math.max(1, wait ?? 1)) },
              fields: { reset_at: resetAt.toISOString() },
            },
      );
      return;
    }
    log.error({ err: error }, "unexpected failure");
    writeErrorAnswer(res, TOKMAN_ERRORS, "BTL_INTERNAL", "internal error");
  }

  let closing: Promise<void> | undefined;
  return {
    broker,
    server,
    listen: (target = { port: DEFAULT_PORTS.tokman }) =>
      listenOn(
        server,
        target,
        (message, options) => new TokmanError("BTL_TOKMAN_LISTEN", message, options),
      ),
    close() {
      closing ??= requests.drain().then(async () => {
        drops.flush();
        server.closeAllConnections();
        if (options.revokeOnClose) {
          const revoked = await broker.revokeAll();
          log.info({ revoked }, "tokens revoked on close");
        }
        store.close();
      });
      return closing;
    },
    address: () => server.address(),
  };
}

/** An option that must be a positive integer; throws BTL_TOKMAN_CONFIG otherwise. */
function positive(name: string, value: number | undefined, fallback: number): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new TokmanError(
      "BTL_TOKMAN_CONFIG",
      `Expected \`${name}\` to be a positive integer, got ${n}`,
    );
  return n;
}

function decode(part: string): string {
  let value: string;
  try {
    value = decodeURIComponent(part);
  } catch {
    value = "";
  }
  if (!NAME.test(value) || value.includes("..")) {
    throw new TokmanError("BTL_TOKMAN_BAD_REQUEST", "Expected a GitHub owner and repository name");
  }
  return value;
}

/** `contents:read,metadata:read` → `{ contents: "read", metadata: "read" }`. */
function parsePermissions(text: string): Permissions {
  const out: Record<string, Level> = {};
  for (const item of text.split(",")) {
    const [name = "", level = ""] = item.split(":");
    if (!/^[a-z][a-z_]{0,63}$/.test(name) || !(LEVELS as readonly string[]).includes(level)) {
      throw new TokmanError(
        "BTL_TOKMAN_BAD_REQUEST",
        "Expected permissions like `contents:read,metadata:read`",
      );
    }
    out[name] = level as Level;
  }
  return out;
}

function parseMinTtl(text: string): number {
  if (!/^\d{1,6}$/.test(text))
    throw new TokmanError("BTL_TOKMAN_BAD_REQUEST", "Expected min_ttl to be a number of seconds");
  return Number(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new TokmanError("BTL_TOKMAN_BAD_REQUEST", "the request body is too large");
    chunks.push(chunk as Buffer);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (typeof value === "object" && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {}
  throw new TokmanError("BTL_TOKMAN_BAD_REQUEST", "Expected a JSON object body");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sendText(res: ServerResponse, text: string): void {
  res.writeHead(200, {
    "content-type": "text/plain; version=0.0.4",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Prometheus text format (exposition format 0.0.4). */
function metricsText(broker: Broker, apps: ReadonlyMap<string, GitHubApp>): string {
  const { mints, cacheHits, errors } = broker.metrics;
  const lines = [
    "# HELP tokman_mints_total Installation tokens minted.",
    "# TYPE tokman_mints_total counter",
    `tokman_mints_total ${mints}`,
    "# HELP tokman_cache_hits_total Requests answered from the cache.",
    "# TYPE tokman_cache_hits_total counter",
    `tokman_cache_hits_total ${cacheHits}`,
    "# HELP tokman_errors_total Refused requests by error code.",
    "# TYPE tokman_errors_total counter",
    ...[...errors].map(([code, n]) => `tokman_errors_total{code="${code}"} ${n}`),
    "# HELP tokman_rate_limit_remaining GitHub rate limit remaining, as last seen.",
    "# TYPE tokman_rate_limit_remaining gauge",
  ];
  for (const app of apps.values()) {
    for (const [bucket, remaining] of app.rateLimits) {
      lines.push(`tokman_rate_limit_remaining{app="${app.name}",bucket="${bucket}"} ${remaining}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
