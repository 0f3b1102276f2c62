/** Credentials on a request: Basic (token as user name, password ignored) or Bearer. */
import { createHash, timingSafeEqual } from "node:crypto";

/** What the Authorization header holds. */
export type Presented = { kind: "none" } | { kind: "malformed" } | { kind: "token"; token: string };

const TOKEN_CHARS = /^[\x21-\x7e]{1,4096}$/;

/** Extracts the presented token; never throws, never logs. */
export function readCredential(header: string | undefined): Presented {
  if (header === undefined || header === "") return { kind: "none" };
  const space = header.indexOf(" ");
  if (space === -1) return { kind: "malformed" };
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  let token: string;
  if (scheme === "bearer") {
    token = value;
  } else if (scheme === "basic") {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return { kind: "malformed" };
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    token = colon === -1 ? decoded : decoded.slice(0, colon);
  } else {
    return { kind: "malformed" };
  }
  return TOKEN_CHARS.test(token) ? { kind: "token", token } : { kind: "malformed" };
}

/** A constant-time check of the admin token, by digest (equal lengths, no early exit). */
export function createAdminCheck(adminToken: string | undefined): (token: string) => boolean {
  if (adminToken === undefined || adminToken === "") return () => false;
  const expected = createHash("sha256").update(adminToken).digest();
  return (token) => timingSafeEqual(createHash("sha256").update(token).digest(), expected);
}
