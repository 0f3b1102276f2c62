import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import ssh2 from "ssh2";
import { onTestFinished } from "vitest";
import { jsonObject, readBody } from "./http-body.ts";
import { closerOf, listenLoopback } from "./listen.ts";

const MAX_BODY_BYTES = 1024 * 1024;
const JSON_TYPE = "application/json;charset=utf-8";
/** Gitea's ids of deploy keys and of public keys come from different tables (sequences). */
const FIRST_KEY_ID = 1000;

/** Gitea's `DeployKey` (API v1), as the fake answers it. */
export interface GiteaDeployKey {
  id: number;
  /** The id of the shared public key row; one key registered on two repositories shares it. */
  key_id: number;
  /** `type base64 comment`, trimmed, as Gitea stores it. */
  key: string;
  url: string;
  title: string;
  /** `SHA256:` and the unpadded base64 of the SHA-256 of the key blob. */
  fingerprint: string;
  created_at: string;
  read_only: boolean;
}

/** A change the fake made to its deploy keys. */
export interface GiteaEvent {
  type: "key-added" | "key-removed";
  owner: string;
  repo: string;
  id: number;
  title: string;
  fingerprint: string;
  /** The public key line (`type base64 comment`). */
  key: string;
}

/** Options of {@link startGiteaFake}. */
export interface GiteaFakeOptions {
  /** The only access token accepted (`Authorization: token …` or `Bearer …`). */
  token: string;
  /** Clock of `created_at` (default `new Date()`). */
  now?: () => Date;
  /** Called on every change, e.g. to let an SSH server accept a key the moment it is added. */
  onEvent?: (event: GiteaEvent) => void;
}

/** A running fake of Gitea's deploy-key API on 127.0.0.1. */
export interface GiteaFake {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  /** Registers a repository; requests for any other repository answer 404. */
  addRepo(owner: string, name: string): void;
  /** Registers a user's (non-deploy) public key; posting it as a deploy key then answers 422. */
  addUserKey(line: string): void;
  /** The deploy keys of a registered repository, in creation order. */
  keys(owner: string, repo: string): GiteaDeployKey[];
  /** Method and path of every request (never a header or the query). */
  requests: Array<{ method: string; path: string }>;
  events: GiteaEvent[];
  /** Answers the next `count` requests (default 1) with `status` before anything else. */
  failNext(status: number, count?: number): void;
  close(): Promise<void>;
}

interface Repo {
  owner: string;
  name: string;
  keys: GiteaDeployKey[];
}

/** An answer other than 2xx, with Gitea's message. */
class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

function repoKey(owner: string, name: string): string {
  // Gitea resolves owner and repository names case-insensitively.
  return `${owner.toLowerCase()}/${name.toLowerCase()}`;
}

/**
 * Checks a public key line as Gitea's `CheckPublicKeyString` does and returns the stored
 * content (`type base64 comment`, trimmed) and its SHA256 fingerprint. Throws a 422 ApiError.
 */
function checkPublicKey(line: string): { content: string; fingerprint: string } {
  const trimmed = line.trim();
  if (/[\r\n]/.test(trimmed)) {
    throw new ApiError(422, "Invalid key content: only a single line with a single key please");
  }
  const parsed = ssh2.utils.parseKey(trimmed);
  if (parsed instanceof Error) throw new ApiError(422, `Invalid key content: ${parsed.message}`);
  if (parsed.isPrivateKey()) throw new ApiError(422, "Invalid key content: key is a private key");
  // Go's strings.SplitN(content, " ", 3): the comment keeps its own spaces.
  const [type = "", base64 = "", ...comment] = trimmed.split(" ");
  const blob = parsed.getPublicSSH();
  return {
    content: `${type} ${base64} ${comment.join(" ")}`.trim(),
    fingerprint: `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`,
  };
}

/** Reads Gitea's `CreateKeyOption` from a JSON body; binding errors are 422 as on Gitea. */
function parseCreateKey(req: IncomingMessage, body: Buffer) {
  const json = (req.headers["content-type"] ?? "").startsWith("application/json");
  const {
    title,
    key,
    read_only: readOnly,
  } = jsonObject(
    json ? body.toString("utf8") : undefined,
    () => new ApiError(422, "[]: DeserializationError"),
  );
  if (title !== undefined && typeof title !== "string") {
    throw new ApiError(422, "[]: DeserializationError");
  }
  if (key !== undefined && typeof key !== "string")
    throw new ApiError(422, "[]: DeserializationError");
  if (readOnly !== undefined && typeof readOnly !== "boolean") {
    throw new ApiError(422, "[]: DeserializationError");
  }
  if (title === undefined || title === "") throw new ApiError(422, "[Title]: Required");
  if (key === undefined || key === "") throw new ApiError(422, "[Key]: Required");
  return { title, key, readOnly: readOnly ?? false };
}

/**
 * Starts a fake of Gitea's repository deploy-key API (v1: list, create, get, delete under
 * `/api/v1/repos/{owner}/{repo}/keys`) on `127.0.0.1:0`, with Gitea's status codes and error
 * messages. Closed when the current test finishes.
 */
export async function startGiteaFake(options: GiteaFakeOptions): Promise<GiteaFake> {
  const now = options.now ?? (() => new Date());
  const expectedToken = digest(options.token);
  const repos = new Map<string, Repo>();
  /** Public keys by fingerprint, as Gitea's `public_key` table: deploy keys share a row. */
  const publicKeys = new Map<string, { id: number; deploy: boolean }>();
  const requests: Array<{ method: string; path: string }> = [];
  const events: GiteaEvent[] = [];
  const record = (event: GiteaEvent) => {
    events.push(event);
    options.onEvent?.(event);
  };
  let failures: { status: number; count: number } | undefined;
  let nextId = 1;
  let nextKeyId = FIRST_KEY_ID;
  let base = "";
  const swagger = (): string => `${base}/api/swagger`;

  const authorized = (req: IncomingMessage): boolean => {
    const match = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    // SECURITY: digests of equal length, compared in constant time.
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expectedToken);
  };

  const removeKey = (repo: Repo, key: GiteaDeployKey): void => {
    repo.keys.splice(repo.keys.indexOf(key), 1);
    const shared = [...repos.values()].some((r) => r.keys.some((k) => k.key_id === key.key_id));
    if (!shared) publicKeys.delete(key.fingerprint);
    record({
      type: "key-removed",
      owner: repo.owner,
      repo: repo.name,
      id: key.id,
      title: key.title,
      fingerprint: key.fingerprint,
      key: key.key,
    });
  };

  const createKey = (repo: Repo, title: string, line: string, readOnly: boolean) => {
    const { content, fingerprint } = checkPublicKey(line);
    const known = publicKeys.get(fingerprint);
    if (known !== undefined && !known.deploy) {
      throw new ApiError(422, "Key content has been used as non-deploy key");
    }
    const keyId = known?.id ?? nextKeyId++;
    if (repo.keys.some((k) => k.key_id === keyId)) {
      throw new ApiError(422, "This key has already been added to this repository");
    }
    if (repo.keys.some((k) => k.title === title)) {
      throw new ApiError(422, "A key with the same name already exists");
    }
    publicKeys.set(fingerprint, { id: keyId, deploy: true });
    const id = nextId++;
    const key: GiteaDeployKey = {
      id,
      key_id: keyId,
      key: content,
      url: `${base}/api/v1/repos/${encodeURIComponent(repo.owner)}/${encodeURIComponent(repo.name)}/keys/${id}`,
      title,
      fingerprint,
      // Gitea keeps Unix seconds and answers RFC 3339.
      created_at: now()
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z"),
      read_only: readOnly,
    };
    repo.keys.push(key);
    record({
      type: "key-added",
      owner: repo.owner,
      repo: repo.name,
      id,
      title,
      fingerprint,
      key: content,
    });
    return key;
  };

  const route = async (req: IncomingMessage, path: string, query: URLSearchParams) => {
    const parts = path.split("/");
    const [empty, api, v1, reposPart, owner, name, keysPart, id, ...extra] = parts.map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return "";
      }
    });
    const isKeys =
      empty === "" && api === "api" && v1 === "v1" && reposPart === "repos" && keysPart === "keys";
    if (!isKeys || owner === undefined || name === undefined || extra.length > 0) {
      throw new ApiError(404, "");
    }
    if (!authorized(req)) throw new ApiError(401, "token is required");
    const repo = repos.get(repoKey(owner, name));
    if (repo === undefined) throw new ApiError(404, "");
    const body = await readBody(
      req,
      MAX_BODY_BYTES,
      () => new ApiError(413, "request body too large"),
    );
    if (id === undefined || id === "") {
      if (req.method === "GET") {
        const keyId = query.get("key_id");
        const fingerprint = query.get("fingerprint");
        return {
          status: 200,
          body: repo.keys.filter(
            (k) =>
              (keyId === null || String(k.key_id) === keyId) &&
              (fingerprint === null || fingerprint === "" || k.fingerprint === fingerprint),
          ),
        };
      }
      if (req.method === "POST") {
        const form = parseCreateKey(req, body);
        return { status: 201, body: createKey(repo, form.title, form.key, form.readOnly) };
      }
      throw new ApiError(405, "Method Not Allowed");
    }
    const key = /^\d+$/.test(id) ? repo.keys.find((k) => k.id === Number(id)) : undefined;
    if (req.method === "GET") {
      if (key === undefined) throw new ApiError(404, "");
      return { status: 200, body: key };
    }
    if (req.method === "DELETE") {
      if (key === undefined) throw new ApiError(404, "");
      removeKey(repo, key);
      return { status: 204, body: undefined };
    }
    throw new ApiError(405, "Method Not Allowed");
  };

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    const headers: Record<string, string> = { "content-type": JSON_TYPE };
    if (Array.isArray(body)) headers["x-total-count"] = String(body.length);
    res.writeHead(status, headers).end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    requests.push({ method: req.method ?? "", path: url.pathname });
    if (failures !== undefined && failures.count > 0) {
      failures.count -= 1;
      req.resume();
      send(res, failures.status, { message: `fake failure ${failures.status}`, url: swagger() });
      return;
    }
    try {
      const answer = await route(req, url.pathname, url.searchParams);
      send(res, answer.status, answer.body);
    } catch (error) {
      req.resume();
      if (!(error instanceof ApiError)) {
        send(res, 500, { message: "", url: swagger() });
      } else if (error.status === 404) {
        send(res, 404, { errors: null, message: "The target couldn't be found.", url: swagger() });
      } else {
        send(res, error.status, { message: error.message, url: swagger() });
      }
    }
  };

  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 1_000 },
    (req, res) => void handle(req, res),
  );
  base = `http://127.0.0.1:${await listenLoopback(server)}`;
  const close = closerOf(server);
  onTestFinished(() => close());

  const findRepo = (owner: string, name: string): Repo => {
    const repo = repos.get(repoKey(owner, name));
    if (repo === undefined)
      throw new Error(`Expected a registered repository, got ${owner}/${name}`);
    return repo;
  };
  return {
    url: base,
    addRepo(owner, name) {
      if (!repos.has(repoKey(owner, name)))
        repos.set(repoKey(owner, name), { owner, name, keys: [] });
    },
    addUserKey(line) {
      const { fingerprint } = checkPublicKey(line);
      publicKeys.set(fingerprint, { id: nextKeyId++, deploy: false });
    },
    keys: (owner, name) => findRepo(owner, name).keys.map((key) => ({ ...key })),
    requests,
    events,
    failNext(status, count = 1) {
      failures = { status, count };
    },
    close,
  };
}
