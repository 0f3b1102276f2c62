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
