// Shared test utilities of the bottle workspace. Every resource they create is released by
// vitest's onTestFinished, so call them inside a test, not in beforeAll.
export type {
  AnthropicFake,
  AnthropicFakeOptions,
  AnthropicFakeRequest,
} from "./anthropic-fake.ts";
export { startAnthropicFake, streamedEventTypes } from "./anthropic-fake.ts";
export { expectNoCanary, makeCanary, readTree } from "./canary.ts";
export type { ProcessExit } from "./child-supervisor.ts";
export type { Deferred } from "./deferred.ts";
export { createDeferred } from "./deferred.ts";
export { createBaseEnv } from "./env.ts";
export type { GitEnv, GitOptions, GitResult, WorkRepoOptions } from "./git.ts";
export { commitFiles, createBareRepo, createGitEnv, createWorkRepo, git } from "./git.ts";
export type { HttpGitUpstream, HttpGitUpstreamOptions } from "./git-http-server.ts";
export { serveGitHttp } from "./git-http-server.ts";
export type { GiteaDeployKey, GiteaEvent, GiteaFake, GiteaFakeOptions } from "./gitea-fake.ts";
export { startGiteaFake } from "./gitea-fake.ts";
export { serveGitHubFake, startGitHubFake } from "./github-fake.ts";
export type {
  GitHubFailureOptions,
  GitHubFake,
  GitHubFakeApp,
  GitHubFakeInstallation,
  GitHubFakeOptions,
  GitHubFakeRequest,
  GitHubIssuedToken,
  GitHubPermissionLevel,
  GitHubRateLimitScope,
} from "./github-fake-types.ts";
export { startHttpGitUpstream } from "./http-git-upstream.ts";
export { importedModules } from "./imported-modules.ts";
export { GITHUB_APP_ROUTE_YAML, manifestYaml, RESTRICTED_ROUTES_YAML } from "./manifests.ts";
export type {
  LogRecord,
  RunProcessOptions,
  RunProcessResult,
  StartedProcess,
  StartProcessOptions,
} from "./process.ts";
export { runProcess, startProcess } from "./process.ts";
export type { ErrorClassCheck, ErrorTableRow } from "./readme.ts";
export { expectErrorTable, expectErrorTableDocumented, readErrorTable } from "./readme.ts";
export type { Registry, RegistryOptions, TinyPackage } from "./registry.ts";
export { packageClientEnv, startRegistry } from "./registry.ts";
export type {
  GitSshCommandOptions,
  SshGitServer,
  SshGitServerOptions,
  SshKey,
} from "./ssh-git-server.ts";
export { generateSshKey, gitSshCommand, startSshGitServer } from "./ssh-git-server.ts";
export type { TestdirFile } from "./temp-dir.ts";
export { testdir, writeFiles } from "./temp-dir.ts";
export type {
  FixtureCaller,
  GitHubAppFixture,
  GitHubAppFixtureOptions,
  TokmanFactory,
  TokmanLike,
  TokmanWithGitHubFake,
} from "./tokman-fixture.ts";
export {
  FIXTURE_APP_ID,
  serveGitHubAppFixture,
  startTokmanWithGitHubFake,
} from "./tokman-fixture.ts";
export type { RecordedRequest, Upstream, UpstreamHandler } from "./upstream.ts";
export { startUpstream } from "./upstream.ts";
