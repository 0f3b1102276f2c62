import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { IMAGES, IMAGES_CACHE, inspect, podman, requirePodman } from "./podman.ts";

/** What tooling/images.sh planted in the build context, and the images built with them. */
interface CanaryRecord {
  readonly canaries: readonly string[];
  readonly images: Readonly<Record<string, string>>;
}

/** Every file under `dir` (the unpacked `podman save` archive: layer tars, config, manifest). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

requirePodman();

describe("every layer of every image", { tags: ["slow"] }, () => {
  it("holds none of the canaries planted in the build context", { timeout: 600_000 }, async () => {
    const record = JSON.parse(
      await readFile(join(IMAGES_CACHE, "canaries.json"), "utf8"),
    ) as CanaryRecord;
    expect(record.canaries.length).toBeGreaterThanOrEqual(5);
    // Layers shared by the images (the base, the build's apt layer) are read once; the value
    // says whether the layer holds the application.
    const scanned = new Map<string, boolean>();
    const found: string[] = [];
    for (const image of IMAGES) {
      // The canaries were in the context when this very image was built.
      expect(await inspect(image, "{{.Id}}"), `${image}: run tooling/images.sh`).toBe(
        record.images[image],
      );
      const dir = await testdir();
      const archive = join(dir, "image.tar");
      await podman(["save", "--format", "docker-archive", "--output", archive, image], {
        timeoutMs: 300_000,
      });
      const unpacked = join(dir, "unpacked");
      await runProcess("mkdir", [unpacked]);
      const untar = await runProcess("tar", ["-xf", archive, "-C", unpacked], {
        timeoutMs: 120_000,
      });
      expect(untar.code, untar.stderr).toBe(0);
      let sawApp = false;
      for (const file of await filesUnder(unpacked)) {
        const id = file.slice(unpacked.length);
        let holdsApp = scanned.get(id);
        if (holdsApp === undefined) {
          const bytes = await readFile(file);
          // Docker archives hold layers as plain tars: file contents are stored as they are.
          holdsApp = bytes.includes("app/dist/cli.js");
          for (const canary of record.canaries)
            if (bytes.includes(canary)) found.push(`${image}: ${id}: ${canary}`);
          scanned.set(id, holdsApp);
        }
        sawApp ||= holdsApp;
      }
      // The scan read the layer that holds the application (it can see what is there).
      expect(sawApp, `${image}: no layer with /app found`).toBe(true);
    }
    expect(found).toEqual([]);
  });
});
