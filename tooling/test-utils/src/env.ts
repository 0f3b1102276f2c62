/** The only variables a child inherits from the test runner's environment. */
const INHERITED = ["PATH"] as const;

/**
 * Returns a minimal child environment: `PATH` from the runner, `LANG=C`, `TZ=UTC`, plus `extra`.
 * SECURITY: built from an allowlist, never a copy of `process.env`, so no runner secret leaks.
 */
export function createBaseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { LANG: "C", TZ: "UTC" };
  for (const name of INHERITED) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * The environment of a git server process (http-backend, upload-pack, receive-pack) in `home`:
 * no system or global git configuration. SECURITY: an allowlist, never a copy of `process.env`.
 */
export function gitServerEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    LANG: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
  };
}
