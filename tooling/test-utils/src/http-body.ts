/** Request bodies of the fakes and upstreams: read whole under a cap, parsed as a JSON object. */
import type { IncomingMessage } from "node:http";

/** The request body, whole; `tooLarge()` is thrown once it passes `maxBytes`. */
export async function readBody(
  req: IncomingMessage,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > maxBytes) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** `text` parsed as a JSON object (`{}` when undefined); `malformed()` is thrown otherwise. */
export function jsonObject(
  text: string | undefined,
  malformed: () => Error,
): Record<string, unknown> {
  let value: unknown = {};
  if (text !== undefined) {
    try {
      value = JSON.parse(text);
    } catch {
      throw malformed();
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed();
  return value as Record<string, unknown>;
}
