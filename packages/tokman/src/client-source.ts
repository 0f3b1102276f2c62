/**
 * The renewing token of one repository and permission set. A cached token is handed out
 * synchronously while it has more than the renewal margin left; renewal runs in the background
 * from `min_ttl` before expiry, so callers rarely wait; concurrent callers share one request
 * (single flight); a token the upstream refused (401) is replaced with `force_refresh`.
 */
import { fingerprint, type Logger } from "@bottle/log";
import type { TokenAnswer } from "./client-answer.ts";

/** A renewing token. */
export interface TokenSource {
  /** The token: synchronously while the cached one is fresh, else a promise. */
  get(): string | Promise<string>;
  /** The upstream refused `token` (401): the next `get()` asks tokman with `force_refresh`. */
  invalidate(token: string): void;
  /** Stops renewing; later calls reject. */
  close(): void;
}

/** What a source needs: how to ask tokman, and its timing. */
export interface SourceSettings {
  /** `owner/name`, for logs and messages. */
  readonly repository: string;
  /** One request with this `min_ttl`, forced or not; rejects with the caller's error. */
  readonly ask: (minTtl: number, force: boolean) => Promise<TokenAnswer>;
  readonly minTtlSeconds: number;
  readonly renewMarginMs: number;
  /** The error a closed source rejects with. */
  readonly closedError: () => Error;
  readonly now: () => number;
  readonly logger: Logger;
}

/** tokman's own ceiling for `min_ttl`. */
export const MAX_MIN_TTL_S = 3000;
/** A failed request is remembered this long: callers in the meantime fail at once. */
const FAILURE_HOLD_MS = 1_000;
/** Background renewals ask for this much more than `min_ttl`, so tokman mints a new token. */
const RENEW_LEAD_S = 60;
/** Pause after a renewal that brought back the token already held. */
const UNRENEWED_PAUSE_MS = 30_000;
/** At most one `force_refresh` per source in this time, whatever the upstream answers. */
const FORCE_COOLDOWN_MS = 30_000;
const TIMER_MAX_MS = 2 ** 31 - 1;

/** Creates a source; nothing is fetched until the first `get()`. */
export function createTokenSource(settings: SourceSettings): TokenSource {
  const { repository, minTtlSeconds: minTtl, renewMarginMs, now: clock } = settings;
  const log = settings.logger;
  // Renewal starts once the token has no more than `min_ttl` left: from then on tokman, asked
  // for a little more, mints a new one rather than answering with its cached one.
  const renewAheadMs = minTtl * 1000;

  let current: TokenAnswer | undefined;
  let pending: Promise<string> | undefined;
  let failure: { error: Error; at: number } | undefined;
  let forceNext = false;
  let lastForcedAt: number | undefined;
  /** After a renewal that brought back the same token, requests do not ask again before this. */
  let quietUntil = 0;
  let refused: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  /** Fetches (forced once after a 401) and adopts the answer; callers share the promise. */
  function start(background: boolean): Promise<string> {
    const ttl = background ? Math.min(MAX_MIN_TTL_S, minTtl + RENEW_LEAD_S) : minTtl;
    const run = async (): Promise<string> => {
      try {
        for (;;) {
          const force = forceNext;
          forceNext = false;
          if (force) lastForcedAt = clock();
          let fresh: TokenAnswer;
          try {
            fresh = await settings.ask(ttl, force);
          } catch (error) {
            if (force) forceNext = true;
            throw error;
          }
          // tokman still had the token the upstream just refused: ask again, forced.
          if (!force && fresh.token === refused) {
            forceNext = true;
            continue;
          }
          const renewed = fresh.token !== current?.token;
          if (!closed) adopt(fresh, renewed);
          failure = undefined;
          log.info(
            {
              repository,
              fingerprint: fingerprint(fresh.token),
              expiresAt: new Date(fresh.expiresAt).toISOString(),
              forced: force,
            },
            "token from tokman",
          );
          return fresh.token;
        }
      } catch (error) {
        const failed = error as Error & { code?: string };
        failure = { error: failed, at: clock() };
        log.warn({ repository, code: failed.code, reason: failed.message }, "tokman token failed");
        throw error;
      } finally {
        // Settled before any caller resumes: the next get() sees the new state.
        pending = undefined;
      }
    };
    const promise = run();
    pending = promise;
    return promise;
  }

  function adopt(fresh: TokenAnswer, renewed: boolean): void {
    current = fresh;
    forceNext = false;
    clearTimeout(timer);
    // Wake up when renewal is due. A token that came back unrenewed (clocks apart by more than
    // the lead) is asked for again after a pause, not on every request.
    const now = clock();
    if (!renewed) quietUntil = now + UNRENEWED_PAUSE_MS;
    const due = fresh.expiresAt - renewAheadMs - now;
    const delay = Math.max(due, renewed ? 1_000 : UNRENEWED_PAUSE_MS);
    timer = setTimeout(() => renewInBackground(true), Math.min(TIMER_MAX_MS, delay));
    timer.unref();
  }

  function renewInBackground(timed = false): void {
    if (closed || pending !== undefined) return;
    if (!timed && clock() < quietUntil) return;
    if (failure !== undefined && clock() - failure.at < FAILURE_HOLD_MS) return;
    start(true).catch(() => {}); // logged in start(); the next get() tries again
  }

  return {
    get() {
      if (closed) return Promise.reject(settings.closedError());
      const now = clock();
      const held = current;
      if (held !== undefined) {
        const left = held.expiresAt - now;
        if (left > renewMarginMs) {
          if (left <= renewAheadMs) renewInBackground();
          return held.token;
        }
      }
      if (pending !== undefined) return pending;
      if (failure !== undefined && now - failure.at < FAILURE_HOLD_MS)
        return Promise.reject(failure.error);
      return start(false);
    },
    invalidate(token) {
      // Only the token in use counts: a 401 for one already replaced needs nothing more.
      if (closed || current?.token !== token) return;
      const now = clock();
      if (lastForcedAt !== undefined && now - lastForcedAt < FORCE_COOLDOWN_MS) return;
      log.warn({ repository, fingerprint: fingerprint(token) }, "upstream refused the token");
      refused = token;
      current = undefined;
      forceNext = true;
      clearTimeout(timer);
    },
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
