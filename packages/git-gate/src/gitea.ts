/**
 * A small client of Gitea's API v1 for deploy keys. SECURITY: the admin token is read from a
 * named variable, sent only to the configured API (redirects are refused, the URL must be https
 * or loopback), and cut out of every message that could reach a log or an error.
 */
import { CREDENTIAL_SHAPE, checkHttpUrl, isCredentialValue } from "@bottle/manifest/policy";
import { GitGateError } from "./errors.ts";

const MAX_ANSWER_BYTES = 64 * 1024;
const MAX_MESSAGE = 200;
const REPO_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Where a deploy key lives: a Gitea base URL and a repository. */
export interface ForgeRepo {
  readonly repo: string;
  readonly api: string;
  readonly owner: string;
  readonly name: string;
  readonly tokenEnv: string;
}

/** Printable ASCII only, capped; `secret` (when given) is cut out first. */
export function clean(value: string, secret?: string, max = MAX_MESSAGE): string {
  const scrubbed = secret ? value.replaceAll(secret, "[redacted]") : value;
  const plain = scrubbed.replace(/[^\x20-\x7e]+/g, " ").trim();
  return plain.length > max ? `${plain.slice(0, max)}...` : plain;
}

export const trimSlash = (api: string): string => (api.endsWith("/") ? api.slice(0, -1) : api);

/** `<api>/api/v1/repos/<owner>/<name>/keys`, by string concatenation of the escaped names. */
export function keysUrl(key: { api: string; owner: string; name: string }): string {
  const { owner, name } = key;
  return `${trimSlash(key.api)}/api/v1/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/keys`;
}

/** Checks a request's names and API URL. Throws BTL_GITGATE_CONFIG. */
export function checkRequest(request: ForgeRepo): void {
  const fail = (what: string) =>
    new GitGateError("BTL_GITGATE_CONFIG", `deploy key for ${clean(request.repo)}: ${what}`);
  if (!REPO_NAME.test(request.repo)) throw fail("Expected a plain repository name");
  if (!ENV_NAME.test(request.tokenEnv)) throw fail("Expected the token variable to be a name");
  if (request.owner === "" || request.name === "") throw fail("Expected a Gitea owner and name");
  // SECURITY: the token must not travel in clear text beyond this machine.
  const problem = checkHttpUrl(request.api);
  if (problem) throw fail(`Expected the Gitea api ${problem}`);
}

/** Reads the token from `env`. Throws BTL_GITGATE_CREDENTIAL naming the variable, never the value. */
export function readToken(env: Readonly<Record<string, string | undefined>>, name: string): string {
  const value = env[name]?.trim();
  if (value === undefined || value === "") {
    throw new GitGateError(
      "BTL_GITGATE_CREDENTIAL",
      `the Gitea token variable $${name} is unset or empty`,
    );
  }
  // A control character would make fetch reject the header with a message quoting it.
  if (!isCredentialValue(value)) {
    throw new GitGateError("BTL_GITGATE_CREDENTIAL", `$${name} is not ${CREDENTIAL_SHAPE}`);
  }
  return value;
}

/** Reads at most MAX_ANSWER_BYTES of an answer and parses it as JSON when it is. */
async function readAnswer(response: Response): Promise<unknown> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body?.getReader();
  while (reader !== undefined) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}

/** Gitea's `message` of an error answer, cleaned; "" when there is none. */
export function forgeMessage(answer: unknown, token: string): string {
  const message = (answer as { message?: unknown } | undefined)?.message;
  return typeof message === "string" ? clean(message, token) : "";
}

/** Why a request never got an answer (refused redirect, timeout, connection), cleaned. */
export function networkReason(error: unknown, token: string): string {
  if (error instanceof Error && error.name === "TimeoutError") return "timed out";
  const cause = error instanceof Error ? error.cause : undefined;
  const why = cause instanceof Error ? cause.message : String(error);
  if (why === "unexpected redirect") {
    return "the API answered with a redirect, which is never followed: check the api URL";
  }
  return clean(why, token);
}

/** Sends one API request with the token; rejects only when no answer arrived. */
export async function callForge(
  method: "POST" | "DELETE",
  url: string,
  token: string,
  timeoutMs: number,
  body?: unknown,
): Promise<{ status: number; answer: unknown }> {
  const headers: Record<string, string> = {
    authorization: `token ${token}`,
    accept: "application/json",
  };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
    // SECURITY: following a redirect would send the token wherever the Location points.
    redirect: "error",
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, answer: await readAnswer(response) };
}

/** Deletes one key on the forge: revoked, already gone (404), or why it failed. */
export async function deleteKey(
  record: ForgeRepo & { readonly id: number },
  token: string,
  timeoutMs: number,
): Promise<"revoked" | "alreadyGone" | { failure: string }> {
  try {
    const { status, answer } = await callForge(
      "DELETE",
      `${keysUrl(record)}/${record.id}`,
      token,
      timeoutMs,
    );
    if (status === 404) return "alreadyGone";
    if (status >= 200 && status < 300) return "revoked";
    const message = forgeMessage(answer, token);
    return { failure: `Gitea answered ${status}${message ? `: ${message}` : ""}` };
  } catch (error) {
    return { failure: networkReason(error, token) };
  }
}
