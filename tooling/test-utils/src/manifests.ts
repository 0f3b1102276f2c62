/**
 * Manifests the packages' tests share, as the YAML a user writes (each test parses it with its
 * own options), so a section several packages plan from is written once.
 */

/** A manifest: `version`, `name` and an agent, then `sections` (top-level YAML). */
export function manifestYaml(sections: string, name = "acme"): string {
  return `version: 1\nname: ${name}\nagent: { command: [agent] }\n${sections}`;
}

/**
 * An npm token, then `/gh/`: a GitHub App route (app `acme`, repository `acme/api`,
 * `contents: read`), and the app it names.
 */
export const GITHUB_APP_ROUTE_YAML = `cred_proxy:
  tokens:
    - { kind: npm, token_ref: NPM_TOKEN }
  routes:
    - path: /gh/
      upstream: https://api.github.com
      auth: { scheme: Bearer }
      github_app: { app: acme, repository: acme/api, permissions: { contents: read } }
github_apps:
  acme: { app_id: 1, private_key: /k }
`;

/**
 * Items of `cred_proxy.routes` with each restriction, all on `token_ref: T`: `/ro/` read-only,
 * `/gh/` with two allow rules, `/git/` letting git pushes through.
 */
export const RESTRICTED_ROUTES_YAML = `    - { path: /ro/, upstream: 'https://ro.example', auth: { scheme: Bearer }, token_ref: T, read_only: true }
    - path: /gh/
      upstream: https://api.github.com
      auth: { scheme: Bearer }
      token_ref: T
      allow: [{ methods: [GET, HEAD], paths: ['/repos/acme/*/pulls/**'] }, { methods: [POST], paths: [/graphql] }]
    - { path: /git/, upstream: 'https://git.example', auth: { scheme: Basic, username: x }, token_ref: T, git_push: true }
`;
