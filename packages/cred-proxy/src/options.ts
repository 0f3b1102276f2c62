/** Checks of the proxy's options: token slots, the CA bundle and numeric limits. */
import { X509Certificate } from "node:crypto";
import { CREDENTIAL_SHAPE, isCredentialValue } from "@bottle/manifest/policy";
import { ProxyError } from "./errors.ts";
import type { ProxyRoute } from "./routes.ts";

/**
 * The tokens of the routes' slots, checked. SECURITY (items 7, 14): every slot set, non-empty,
 * printable ASCII without whitespace, 1 to 8 KiB (`@bottle/manifest/policy`), so a bad value
 * fails at start-up and never reaches a header. Routes taking their token from tokman have no slot and are skipped.
 * Throws ProxyError BTL_PROXY_TOKEN naming the slots, never a value.
 */
export function checkTokens(
  routes: readonly ProxyRoute[],
  given: Readonly<Record<string, string | undefined>>,
): ReadonlyMap<string, string> {
  const tokens = new Map<string, string>();
  const problems = new Map<string, string>();
  for (const route of routes) {
    const slot = route.tokenEnv;
    if (slot === undefined || tokens.has(slot) || problems.has(slot)) continue;
    const value = Object.hasOwn(given, slot) ? given[slot] : undefined;
    if (value === undefined || value === "")
      problems.set(slot, `${slot} (route ${route.path}) is unset or empty`);
    else if (!isCredentialValue(value))
      problems.set(slot, `${slot} (route ${route.path}) is not ${CREDENTIAL_SHAPE}`);
    else tokens.set(slot, value);
  }
  if (problems.size > 0)
    throw new ProxyError("BTL_PROXY_TOKEN", `token slot ${[...problems.values()].join("; ")}`);
  return tokens;
}

/** The CA bundle as PEM text. Throws ProxyError BTL_PROXY_CONFIG when it holds no certificate. */
export function checkCa(ca: string | Buffer): string {
  const pem = ca.toString("utf8");
  try {
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM certificate");
    new X509Certificate(pem);
  } catch (error) {
    throw new ProxyError("BTL_PROXY_CONFIG", "Expected `ca` to hold PEM certificates", {
      cause: error,
    });
  }
  return pem;
}

/** `value` (or `fallback`) as an integer from 1 to `max`; else ProxyError BTL_PROXY_CONFIG. */
export function checkInteger(
  name: string,
  value: number | undefined,
  fallback: number,
  max = 86_400_000,
) {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new ProxyError(
      "BTL_PROXY_CONFIG",
      `Expected \`${name}\` to be an integer from 1 to ${max}, got ${String(value)}`,
    );
  return value;
}
