/**
 * One request to tokman (`GET /api/<owner>/<name>`) and the checks on its answer: read up to
 * 64 KiB, parsed with a schema, the token in the one credential shape, an expiry at least a
 * minute away. SECURITY: the key goes only into the Authorization header of this request; no
 * redirect is followed; neither the key nor a token is ever put in an error.
 */
import { isCredentialValue } from "@bottle/manifest/policy";
import * as v from "valibot";
import { TOKMAN_ERRORS, TokmanError, type TokmanErrorCode } from "./errors.ts";

/** What the client asks tokman with: `globalThis.fetch` fits; tests and proxies bring their own. */
export type TokmanFetch = (
  url: string,
  init: { headers: Record<string, string>; redirect: "manual"; signal: AbortSignal },
) => Promise<{ status: number; body: AsyncIterable<Uint8Array> | null }>;

/** Largest tokman answer read; a longer one is refused unread. */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** A token with less lifetime than this is refused (tokman never hands one out). */
const MIN_USABLE_MS = 60_000;

/** A token and its expiry (milliseconds since the epoch). */
export interface TokenAnswer {
  readonly token: string;
  readonly expiresAt: number;
}

const Issued = v.object({
  access_token: v.pipe(
    v.string(),
    v.check((token: string) => isCredentialValue(token)),
  ),
  expires_at: v.pipe(v.string(), v.isoTimestamp()),
});
const Refusal = v.object({
  code: v.pipe(v.string(), v.regex(/^BTL_[A-Z0-9_]{1,60}$/)),
  reset_at: v.optional(v.pipe(v.string(), v.isoTimestamp())),
});

/** One request: where, with which key, about what (`acme/api`, for messages). */
export interface Ask {
  readonly fetch: TokmanFetch;
  readonly url: string;
  readonly key: string;
  readonly repository: string;
  readonly signal: AbortSignal;
  /** The clock the expiry is read against. */
  readonly now: () => number;
}

/**
 * Asks tokman once. Throws TokmanError: BTL_TOKMAN_UNREACHABLE, BTL_TOKMAN_BAD_ANSWER, or the
 * code tokman answered with (BTL_TOKMAN_SCOPE_DENIED, BTL_TOKMAN_RATE_LIMITED with `resetAt`, …).
 */
export async function askTokman(ask: Ask): Promise<TokenAnswer> {
  const what = ask.repository;
  let status: number;
  let text: string | undefined;
  try {
    const answer = await ask.fetch(ask.url, {
      headers: { authorization: `Bearer ${ask.key}`, accept: "application/json" },
      redirect: "manual", // SECURITY: the key never follows a redirect
      signal: ask.signal,
    });
    status = answer.status;
    text = await readCapped(answer.body, MAX_ANSWER_BYTES);
  } catch (error) {
    throw new TokmanError(
      "BTL_TOKMAN_UNREACHABLE",
      `tokman cannot be reached for ${what} (${errorName(error)})`,
      { cause: error },
    );
  }
  if (text === undefined)
    throw new TokmanError(
      "BTL_TOKMAN_BAD_ANSWER",
      `tokman's answer for ${what} is larger than ${MAX_ANSWER_BYTES} bytes`,
    );
  const body = parseJson(text);
  if (status !== 200) throw refusal(what, status, body);
  const issued = v.safeParse(Issued, body);
  if (!issued.success)
    throw new TokmanError(
      "BTL_TOKMAN_BAD_ANSWER",
      `tokman's answer for ${what} holds no usable token`,
    );
  const expiresAt = Date.parse(issued.output.expires_at);
  if (Number.isNaN(expiresAt))
    throw new TokmanError(
      "BTL_TOKMAN_BAD_ANSWER",
      `tokman's answer for ${what} holds no usable token`,
    );
  if (expiresAt - ask.now() <= MIN_USABLE_MS)
    throw new TokmanError(
      "BTL_TOKMAN_BAD_ANSWER",
      `tokman answered a token for ${what} that expires too soon (check the clocks)`,
    );
  return { token: issued.output.access_token, expiresAt };
}

/** tokman's refusal, with its own code when it names one of tokman's codes. */
function refusal(what: string, status: number, body: unknown): TokmanError {
  const parsed = v.safeParse(Refusal, body);
  const code =
    parsed.success && Object.hasOwn(TOKMAN_ERRORS, parsed.output.code)
      ? (parsed.output.code as TokmanErrorCode)
      : undefined;
  const message = `tokman refused the token for ${what} (HTTP ${status}${code ? `, ${code}` : ""})`;
  if (code === undefined) return new TokmanError("BTL_TOKMAN_BAD_ANSWER", message);
  const resetAt =
    parsed.success && parsed.output.reset_at ? new Date(parsed.output.reset_at) : undefined;
  return new TokmanError(code, message, resetAt ? { resetAt } : {});
}

/** The body as text, or undefined past `max` bytes (then the rest is not read). */
async function readCapped(
  body: AsyncIterable<Uint8Array> | null,
  max: number,
): Promise<string | undefined> {
  if (body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > max) return undefined; // leaving the loop cancels the stream
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A network error's code (`ECONNREFUSED`, also under `fetch`'s cause), or its name. */
export function errorName(error: unknown): string {
  const { code, name, cause } = (error ?? {}) as {
    code?: unknown;
    name?: unknown;
    cause?: unknown;
  };
  if (typeof code === "string") return code;
  const inner = (cause ?? {}) as { code?: unknown };
  if (typeof inner.code === "string") return inner.code;
  return typeof name === "string" ? name : "unknown";
}
