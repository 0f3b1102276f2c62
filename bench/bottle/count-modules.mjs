// Preloaded with `node --import` into a program whose start-up is profiled: counts the modules
// it loads (ESM and CommonJS, through module.registerHooks) and their source bytes, and writes
// the list to the file named by BENCH_MODULES_OUT when the process exits.
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const out = process.env.BENCH_MODULES_OUT;
const loaded = [];
registerHooks({
  load(url, context, nextLoad) {
    const result = nextLoad(url, context);
    const source = result.source;
    loaded.push([
      url,
      source == null
        ? 0
        : typeof source === "string"
          ? Buffer.byteLength(source)
          : source.byteLength,
    ]);
    return result;
  },
});
if (out) process.once("exit", () => writeFileSync(out, JSON.stringify(loaded)));
