/**
 * Gitea deploy keys: one fresh ed25519 key per repository, registered with write access
 * through Gitea's API v1 and recorded in the state directory, so that revoking removes exactly
 * what was created. SECURITY: the admin token is read from a named variable, sent only to the
 * configured API (redirects are refused), and never logged, stored or put into an error.
 */

import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { chmod, mkdir, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type Logger, silentLogger } from "@bottle/log";
import { formatIssues } from "@bottle/manifest/policy";
import * as v from "valibot";
import { GitGateError } from "./errors.ts";
import {
  callForge,
  checkRequest,
  clean,
  deleteKey,
  forgeMessage,
  keysUrl,
  networkReason,
  readToken,
  trimSlash,
} from "./gitea.ts";
import { writeFileSafely } from "./private-file.ts";

// ssh2 is large and only some manifests and commands need it: loaded on first use.
const require = createRequire(import.meta.url);
const ssh2 = (): typeof import("ssh2") => require("ssh2");

/** One deploy key to create: for manifest repository `repo`, on Gitea repository owner/name. */
export interface DeployKeyRequest {
  /** The manifest's repository name (also the private key's file name). */
  readonly repo: string;
  /** Gitea base URL, e.g. `https://gitea.example`. */
  readonly api: string;
  readonly owner: string;
  readonly name: string;
  /** The environment variable holding the admin token. */
  readonly tokenEnv: string;
}

/** A registered deploy key, as recorded in `<stateDir>/deploy-keys.json`. */
export interface DeployKeyRecord {
  readonly repo: string;
  readonly api: string;
  readonly owner: string;
  readonly name: string;
  readonly tokenEnv: string;
  /** Gitea's deploy key id (the one `DELETE …/keys/{id}` takes). */
  readonly id: number;
  readonly title: string;
  /** `SHA256:…` of the public key, as OpenSSH and Gitea print it. */
  readonly fingerprint: string;
  readonly identityFile: string;
  readonly createdAt: string;
}

const RECORD_FILE = "deploy-keys.json";
const DEFAULT_TIMEOUT_MS = 15_000;
const MAX_TITLE = 100;

const text = v.pipe(v.string(), v.minLength(1));
const RecordFile = v.strictObject({
  version: v.literal(1),
  keys: v.array(
    v.strictObject({
      repo: text,
      api: text,
      owner: text,
      name: text,
      tokenEnv: text,
      id: v.pipe(v.number(), v.integer(), v.minValue(1)),
      title: text,
      fingerprint: text,
      identityFile: text,
      createdAt: text,
    }),
  ),
});

/**
 * The title of a new deploy key: `bottle <bottle>/<repo> <UTC time to the second>`, printable
 * ASCII and at most 100 characters (the name part is shortened when needed).
 */
export function deployKeyTitle(bottleName: string, repo: string, now: Date): string {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const room = MAX_TITLE - "bottle ".length - 1 - stamp.length;
  return `bottle ${clean(`${bottleName}/${repo}`, undefined, room - 3)} ${stamp}`;
}

/** The preflight listing, one line per key to create (names only, never a token value). */
export function formatDeployKeyPreflight(
  requests: readonly DeployKeyRequest[],
  title: (request: DeployKeyRequest) => string,
): string {
  return requests
    .map(
      (r) =>
        `create a write deploy key "${clean(title(r))}" on ${clean(trimSlash(r.api))}/${clean(r.owner)}/${clean(r.name)} (token from $${clean(r.tokenEnv)})`,
    )
    .join("\n");
}

/** Writes a state file (0600, atomically), as BTL_GITGATE_STATE when it fails. */
function writeFile(path: string, content: string): void {
  try {
    writeFileSafely(path, content, 0o600);
  } catch (error) {
    throw new GitGateError("BTL_GITGATE_STATE", `cannot write ${path}: ${clean(String(error))}`, {
      cause: error,
    });
  }
}

/** Saves the records (0600, atomically); removes the file when none are left. */
async function saveRecords(stateDir: string, keys: readonly DeployKeyRecord[]): Promise<void> {
  const path = join(stateDir, RECORD_FILE);
  if (keys.length === 0) return void (await rm(path, { force: true }));
  writeFile(path, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`);
}

/**
 * The recorded deploy keys of `stateDir` ([] when there are none). Throws BTL_GITGATE_STATE when
 * the record file is malformed, not a regular file, or group/world accessible.
 */
export function readDeployKeys(stateDir: string): DeployKeyRecord[] {
  const path = join(stateDir, RECORD_FILE);
  let content: string;
  try {
    const stats = statSync(path);
    if (!stats.isFile() || (stats.mode & 0o077) !== 0) {
      throw new GitGateError("BTL_GITGATE_STATE", `${path} must be a regular file of mode 0600`);
    }
    content = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    if (error instanceof GitGateError) throw error;
    throw new GitGateError("BTL_GITGATE_STATE", `cannot read ${path}`, { cause: error });
  }
  let data: unknown;
  try {
    data = JSON.parse(content);
  } catch (error) {
    throw new GitGateError("BTL_GITGATE_STATE", `${path} is not JSON`, { cause: error });
  }
  const parsed = v.safeParse(RecordFile, data);
  if (!parsed.success) {
    throw new GitGateError(
      "BTL_GITGATE_STATE",
      `${path} is malformed (${formatIssues(parsed.issues, { max: 1 })})`,
    );
  }
  return parsed.output.keys.map((key) => Object.freeze({ ...key }));
}

/** Removes a recorded private key, but only where this module writes them. */
async function removeIdentity(stateDir: string, record: DeployKeyRecord): Promise<void> {
  if (record.identityFile === join(stateDir, "keys", record.repo)) {
    await rm(record.identityFile, { force: true });
  }
}

/** An ed25519 public key blob: string "ssh-ed25519" (4 + 11 bytes) and the 32-byte key (4 + 32). */
const ED25519_BLOB_BYTES = 51;

/**
 * A fresh ed25519 key pair that OpenSSH and Gitea accept, with its public blob. ssh2 strips
 * leading zero bytes of the public key, so about one pair in 256 comes out malformed
 * (https://github.com/mscdex/ssh2/issues/1390): such pairs are drawn again.
 */
function generateKeyPair(comment: string): { privateKey: string; publicKey: string; blob: Buffer } {
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = ssh2().utils.generateKeyPairSync("ed25519", { comment });
    const pub = ssh2().utils.parseKey(pair.public);
    const priv = ssh2().utils.parseKey(pair.private);
    if (pub instanceof Error || priv instanceof Error) continue;
    const blob = pub.getPublicSSH();
    const probe = randomBytes(32);
    if (blob.length !== ED25519_BLOB_BYTES || !priv.getPublicSSH().equals(blob)) continue;
    if (pub.verify(probe, priv.sign(probe))) {
      return { privateKey: pair.private, publicKey: pair.public.trim(), blob };
    }
  }
  throw new GitGateError("BTL_INTERNAL", "could not generate a readable ed25519 key pair");
}

/** Creates the key pair, writes the private key, registers the public key. */
async function register(
  request: DeployKeyRequest,
  context: {
    token: string;
    title: string;
    identityFile: string;
    timeoutMs: number;
    createdAt: string;
  },
): Promise<DeployKeyRecord> {
  const { token, title, identityFile } = context;
  const { privateKey, publicKey, blob } = generateKeyPair(title);
  const digest = createHash("sha256").update(blob).digest("base64");
  const fingerprint = `SHA256:${digest.replace(/=+$/, "")}`;
  const where = `${clean(request.owner)}/${clean(request.name)} (repository ${request.repo})`;
  writeFile(identityFile, privateKey);
  let status: number;
  let answer: unknown;
  try {
    ({ status, answer } = await callForge("POST", keysUrl(request), token, context.timeoutMs, {
      title,
      key: publicKey,
      read_only: false,
    }));
  } catch (error) {
    await rm(identityFile, { force: true });
    const why = networkReason(error, token);
    throw new GitGateError(
      "BTL_GITGATE_DEPLOY_KEY",
      `cannot register a deploy key on ${where} at ${clean(trimSlash(request.api))}: ${why}`,
      { cause: error },
    );
  }
  const id = (answer as { id?: unknown } | undefined)?.id;
  if (status === 201 && typeof id === "number" && Number.isSafeInteger(id) && id > 0) {
    return {
      repo: request.repo,
      api: trimSlash(request.api),
      owner: request.owner,
      name: request.name,
      tokenEnv: request.tokenEnv,
      id,
      title,
      fingerprint,
      identityFile,
      createdAt: context.createdAt,
    };
  }
  await rm(identityFile, { force: true });
  const message = forgeMessage(answer, token);
  const detail = message ? ` (Gitea: ${message})` : "";
  if (status === 422) {
    throw new GitGateError(
      "BTL_GITGATE_DEPLOY_KEY_TITLE",
      `a deploy key titled "${title}" or with this key already exists on ${where}: remove it or wait${detail}`,
    );
  }
  const what = status === 201 ? "an answer without a key id" : `${status}`;
  throw new GitGateError(
    "BTL_GITGATE_DEPLOY_KEY",
    `Gitea answered ${what} when registering a deploy key on ${where}${detail}`,
  );
}

/** Options of {@link provisionDeployKeys}. */
export interface ProvisionDeployKeysOptions {
  readonly requests: readonly DeployKeyRequest[];
  readonly bottleName: string;
  readonly stateDir: string;
  /** Where token values are read from. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
  readonly now?: () => Date;
  readonly timeoutMs?: number;
}

/**
 * Creates and registers one write deploy key per request; each is recorded as soon as Gitea
 * accepted it. On a failure the keys created so far are revoked and the error is rethrown.
 * Throws BTL_GITGATE_CONFIG, BTL_GITGATE_CREDENTIAL, BTL_GITGATE_STATE, BTL_GITGATE_DEPLOY_KEY(_TITLE).
 */
export async function provisionDeployKeys(
  options: ProvisionDeployKeysOptions,
): Promise<DeployKeyRecord[]> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { stateDir } = options;
  const tokens: string[] = [];
  for (const request of options.requests) {
    checkRequest(request);
    if (options.requests.filter((r) => r.repo === request.repo).length > 1) {
      throw new GitGateError("BTL_GITGATE_CONFIG", `two deploy keys requested for ${request.repo}`);
    }
    tokens.push(readToken(options.env, request.tokenEnv));
  }
  const existing = readDeployKeys(stateDir);
  for (const request of options.requests) {
    const old = existing.find((record) => record.repo === request.repo);
    if (old !== undefined) {
      throw new GitGateError(
        "BTL_GITGATE_STATE",
        `a deploy key for ${request.repo} is still recorded (id ${old.id} on ${old.owner}/${old.name}): revoke the recorded keys first`,
      );
    }
  }
  const keysDir = join(stateDir, "keys");
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  await chmod(keysDir, 0o700);

  const created: Array<{ record: DeployKeyRecord; token: string }> = [];
  try {
    for (const [index, request] of options.requests.entries()) {
      const now = options.now?.() ?? new Date();
      const token = tokens[index] ?? "";
      const record = await register(request, {
        token,
        title: deployKeyTitle(options.bottleName, request.repo, now),
        identityFile: join(keysDir, request.repo),
        timeoutMs,
        createdAt: now.toISOString(),
      });
      created.push({ record, token });
      // Recorded right away: a crash from here on never loses a key id.
      await saveRecords(stateDir, [...existing, ...created.map((c) => c.record)]);
      logger.info(
        { repo: record.repo, keyId: record.id, fingerprint: record.fingerprint },
        "deploy key registered",
      );
    }
  } catch (error) {
    const left = await rollBack(stateDir, existing, created, timeoutMs, logger);
    if (left > 0 && error instanceof GitGateError) {
      error.message += `; ${left} deploy key(s) created before could not be removed and stay recorded for revoking`;
    }
    throw error;
  }
  return created.map((c) => c.record);
}

/** Revokes the keys of a failed provisioning; returns how many are still on the forge. */
async function rollBack(
  stateDir: string,
  existing: readonly DeployKeyRecord[],
  created: ReadonlyArray<{ record: DeployKeyRecord; token: string }>,
  timeoutMs: number,
  logger: Logger,
): Promise<number> {
  const kept: DeployKeyRecord[] = [];
  for (const { record, token } of [...created].reverse()) {
    const fields = { repo: record.repo, keyId: record.id, fingerprint: record.fingerprint };
    const outcome = await deleteKey(record, token, timeoutMs);
    if (typeof outcome === "object") {
      kept.push(record);
      logger.error({ ...fields, reason: outcome.failure }, "deploy key could not be rolled back");
    } else {
      await removeIdentity(stateDir, record);
      logger.warn(fields, "deploy key rolled back");
    }
  }
  try {
    await saveRecords(stateDir, [...existing, ...kept]);
  } catch (error) {
    logger.error({ code: (error as GitGateError).code }, "deploy key records not updated");
  }
  return kept.length;
}

/** Options of {@link revokeDeployKeys}. */
export interface RevokeDeployKeysOptions {
  readonly stateDir: string;
  /** Where token values are read from. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger?: Logger;
  readonly timeoutMs?: number;
}

/**
 * Deletes every recorded deploy key on its forge (a 404 counts as already gone), then forgets
 * the revoked ones and their private keys; failed ones stay recorded for a retry.
 * Throws BTL_GITGATE_STATE, BTL_GITGATE_CREDENTIAL, BTL_GITGATE_DEPLOY_KEY_REVOKE.
 */
export async function revokeDeployKeys(
  options: RevokeDeployKeysOptions,
): Promise<{ revoked: DeployKeyRecord[]; alreadyGone: DeployKeyRecord[] }> {
  const logger = options.logger ?? silentLogger;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const records = readDeployKeys(options.stateDir);
  const tokens = records.map((record) => readToken(options.env, record.tokenEnv));
  const revoked: DeployKeyRecord[] = [];
  const alreadyGone: DeployKeyRecord[] = [];
  const failed: Array<{ record: DeployKeyRecord; failure: string }> = [];
  for (const [index, record] of records.entries()) {
    const fields = { repo: record.repo, keyId: record.id, fingerprint: record.fingerprint };
    const outcome = await deleteKey(record, tokens[index] ?? "", timeoutMs);
    if (outcome === "revoked") revoked.push(record);
    else if (outcome === "alreadyGone") alreadyGone.push(record);
    else failed.push({ record, failure: outcome.failure });
    if (typeof outcome === "object")
      logger.warn({ ...fields, reason: outcome.failure }, "deploy key not revoked");
    else
      logger.info(fields, outcome === "revoked" ? "deploy key revoked" : "deploy key already gone");
  }
  // The records go first: a crash before the private keys are removed leaves only dead keys.
  await saveRecords(
    options.stateDir,
    failed.map((f) => f.record),
  );
  for (const record of [...revoked, ...alreadyGone]) await removeIdentity(options.stateDir, record);
  if (failed.length > 0) {
    const list = failed.map(
      ({ record, failure }) =>
        `${record.repo} (${record.owner}/${record.name} key ${record.id}): ${failure}`,
    );
    throw new GitGateError(
      "BTL_GITGATE_DEPLOY_KEY_REVOKE",
      `${failed.length} deploy key(s) could not be revoked and are still valid on the forge: ${list.join("; ")}; they stay recorded, run revoke again`,
    );
  }
  return { revoked, alreadyGone };
}
