import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";

/**
 * Returns a random, recognisable secret like `canary_<32 hex>` for leak tests.
 * `random` is injectable so a test can make the value deterministic.
 */
export function makeCanary(
  prefix = "canary",
  random: (size: number) => Buffer = randomBytes,
): string {
  return `${prefix}_${random(16).toString("hex")}`;
}

/**
 * The base64 text that encodes `secret` wherever it sits in a larger blob: one string per byte
 * alignment (0, 1, 2), without the boundary characters that depend on neighbouring bytes.
 */
function embeddedBase64(secret: Buffer): string[] {
  const forms: string[] = [];
  for (const shift of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(shift), secret]).toString("base64");
    const start = shift === 0 ? 0 : 4;
    const end = Math.floor((shift + secret.length) / 3) * 4;
    forms.push(encoded.slice(start, end));
  }
  return forms;
}

/** The encodings of `canary` that count as a leak, each with a name for the report. */
function leakForms(canary: string): Array<[string, string]> {
  const raw = Buffer.from(canary);
  const basic = Buffer.from(`x-access-token:${canary}`);
  const forms: Array<[string, string]> = [
    ["plain", canary],
    ["base64", raw.toString("base64")],
    ["x-access-token base64", basic.toString("base64")],
  ];
  for (const [shift, form] of embeddedBase64(raw).entries()) {
    forms.push([`base64 (embedded, shift ${shift})`, form]);
    forms.push([
      `base64url (embedded, shift ${shift})`,
      form.replaceAll("+", "-").replaceAll("/", "_"),
    ]);
  }
  return forms;
}

/**
 * Asserts that no output contains `canary`, its base64 (also inside a larger base64 blob) or the
 * base64 of `x-access-token:<canary>`. A failure names the output index, form and offset only.
 */
export function expectNoCanary(
  canary: string,
  ...outputs: Array<string | Buffer | undefined>
): void {
  if (canary.length < 16) {
    throw new Error(`Expected a canary of at least 16 characters, got ${canary.length}`);
  }
  const forms = leakForms(canary);
  const findings: string[] = [];
  for (const [index, output] of outputs.entries()) {
    if (output === undefined) continue;
    for (const [name, form] of forms) {
      // SECURITY: report where, never what: the output around the hit is the secret itself.
      const offset = output.indexOf(form);
      if (offset !== -1) findings.push(`output #${index}: ${name} form at offset ${offset}`);
    }
  }
  const summary = `the canary leaked: ${findings.join("; ")}`;
  expect(findings, summary).toEqual([]);
}

/**
 * The text of every file under `dir` (recursively; `""` when it does not exist), for leak
 * checks over what a client left behind: its logs, caches and config.
 */
export async function readTree(dir: string): Promise<string> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch {
    return "";
  }
  const texts: string[] = [];
  for (const entry of entries) {
    try {
      texts.push(await readFile(join(dir, entry), "latin1"));
    } catch {
      // A directory, or gone already.
    }
  }
  return texts.join("\n");
}
