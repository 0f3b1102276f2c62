/** The shape of a credential value: what a sidecar accepts in a header it sends or reads. */

/**
 * The longest credential value a sidecar sends or takes (8 KiB): any token bottle handles fits,
 * and with the rest of a request it stays within Node's 16 KiB header limit.
 */
export const MAX_CREDENTIAL_CHARS = 8192;

/** How a valid credential value is described in errors ("… is not " + this). */
export const CREDENTIAL_SHAPE = `1 to ${MAX_CREDENTIAL_CHARS} printable ASCII characters without whitespace`;

const CREDENTIAL_VALUE = /^[\x21-\x7e]+$/;

/**
 * True for 1 to 8192 printable ASCII characters without whitespace. SECURITY: anything else
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
