import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type ManifestError, parseManifest } from "@bottle/manifest";
import { testdir } from "@bottle/test-utils";
import { expect } from "vitest";

/** Real OpenSSH host key lines (github.com's published ed25519 key, and a generated one). */
export const GITHUB_HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
export const OTHER_HOST_KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBr4r/F3Y0EwF0AcOppXlRokwSzZzIa+oA8O2y4XEMHU gitea";

/** A home directory holding the secret files the examples name, mode 0600. */
export async function homeWithKeys(): Promise<string> {
  const home = await testdir();
  for (const rel of [".config/bottle/keys/acme-api", ".config/bottle/acme-app.pem"]) {
    const file = join(home, rel);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, "key material\n", { mode: 0o600 });
    await chmod(file, 0o600);
  }
  return home;
}

/** Parses without file checks; for tests of everything but the files. */
export function parse(text: string) {
  return parseManifest(text, { filename: "bottle.yaml", checkFiles: false });
}

/** The ManifestError that parsing `text` throws. */
export function parseError(
  text: string,
  options: Parameters<typeof parseManifest>[1] = {},
): ManifestError {
  try {
    parseManifest(text, { filename: "bottle.yaml", checkFiles: false, ...options });
  } catch (error) {
    expect((error as ManifestError).name).toBe("ManifestError");
    return error as ManifestError;
  }
  throw new Error("expected the manifest to be refused");
}

/** A minimal valid manifest with extra YAML appended. */
export function manifest(extra = ""): string {
  return `version: 1\nname: demo\nagent:\n  command: [claude]\n${extra}`;
}
