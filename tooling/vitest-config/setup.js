// Fails the running test on any process warning (deprecations, unhandled listeners, …):
// a warning in a security tool is a bug until someone has read it.
import { afterEach } from "vitest";

const warnings = [];
process.on("warning", (warning) => {
  // Node prints this one for its own built-in SQLite module; it says nothing about our code.
  if (warning.name === "ExperimentalWarning" && /SQLite/.test(warning.message)) return;
  warnings.push(warning);
});

afterEach(() => {
  if (warnings.length > 0) {
    const seen = warnings.splice(0).map((w) => `${w.name}: ${w.message}`);
    throw new Error(`process warnings during the test:\n${seen.join("\n")}`);
  }
});
