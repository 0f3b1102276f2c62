import { onTestFinished } from "vitest";
import {
  type HttpGitUpstream,
  type HttpGitUpstreamOptions,
  serveGitHttp,
} from "./git-http-server.ts";

/**
 * Starts a smart-HTTP git upstream on `127.0.0.1:0` (see {@link serveGitHttp}) that demands
 * `Authorization: Basic username:password`; closed when the current test finishes.
 */
export async function startHttpGitUpstream(
  options: HttpGitUpstreamOptions,
): Promise<HttpGitUpstream> {
  const upstream = await serveGitHttp(options);
  onTestFinished(() => upstream.close());
  return upstream;
}
