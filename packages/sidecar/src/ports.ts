/**
 * The default TCP port of each sidecar, in one table so that no two collide: a gate, a proxy
 * and a tokman started with their defaults on one host all listen.
 */
export const DEFAULT_PORTS = Object.freeze({
  /** `bottle-gate` (@bottle/gate-server). */
  gate: 9419,
  /** `bottle-cred-proxy` (@bottle/cred-proxy). */
  proxy: 9420,
  /** `bottle-tokman serve` (@bottle/tokman). */
  tokman: 9421,
} as const);

/** A sidecar named in {@link DEFAULT_PORTS}. */
export type SidecarName = keyof typeof DEFAULT_PORTS;
