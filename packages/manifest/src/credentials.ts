/** The shape of a credential value: what a sidecar accepts in a header it sends or reads. */

/** The longest credential value accepted anywhere (a token, a caller key). */
export const MAX_CREDENTIAL_CHARS = 16_384;

/** How a valid credential value is described in errors ("… is not " + this). */
export const CREDENTIAL_SHAPE = `1 to ${MAX_CREDENTIAL_CHARS} printable ASCII characters without whitespace`;

const CREDENTIAL_VALUE = /^[\x21-\x7e]+$/;

/**
 * True for 1 to 16384 printable ASCII characters without whitespace. SECURITY: anything else
 * could corrupt or split a header (CR, LF, NUL) or be refused by the peer; a bad value must
 * fail at start-up, not per request.
 */
export function isCredentialValue(value: unknown): value is string {
  return (
    typeof value === "string" &&
    value.length <= MAX_CREDENTIAL_CHARS &&
    CREDENTIAL_VALUE.test(value)
  );
}
