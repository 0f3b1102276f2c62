/**
 * The default TCP ports of bottle's sidecars, one table so that no two collide when they run
 * side by side on one host (each still binds 127.0.0.1 unless told otherwise).
 */
export const DEFAULT_PORTS = Object.freeze({
  /** bottle-gate: git over smart HTTP. */
  gate: 9419,
  /** bottle-cred-proxy: the credential-injecting reverse proxy. */
  proxy: 9420,
  /** bottle-tokman: GitHub App installation tokens. */
  tokman: 9421,
});
