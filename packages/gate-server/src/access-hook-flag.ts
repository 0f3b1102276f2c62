/**
 * The command line's edge: `--access-hook` is one string, made into the argument array that
 * `createGateServer` takes. Either a JSON array of strings (what a launcher holding an argument
 * array passes: no quoting round trip), or a command split into words without a shell.
 */
import { GateError } from "./errors.ts";

/**
 * The argument array of `--access-hook VALUE`: a JSON array of strings when VALUE starts with
 * `[`, else VALUE split by {@link splitCommand}. Throws GateError BTL_GATE_CONFIG for an empty
 * command, an unterminated quote or a malformed array.
 */
export function accessHookArgv(value: string): string[] {
  let argv: unknown;
  if (value.trimStart().startsWith("[")) {
    try {
      argv = JSON.parse(value);
    } catch {}
    if (!Array.isArray(argv) || !argv.every((word) => typeof word === "string"))
      throw new GateError(
        "BTL_GATE_CONFIG",
        "Expected --access-hook starting with [ to be a JSON array of strings",
      );
  } else {
    try {
      argv = splitCommand(value);
    } catch (error) {
      throw new GateError("BTL_GATE_CONFIG", `--access-hook: ${(error as Error).message}`);
    }
  }
  const words = argv as string[];
  if (words.length === 0 || words[0] === "")
    throw new GateError("BTL_GATE_CONFIG", "--access-hook names no command");
  return words;
}

/**
 * Splits `--access-hook CMD` into words: whitespace separates, single and double quotes group,
 * backslash escapes in double quotes. No expansion of any kind (there is no shell).
 */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: "'" | '"' | undefined;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === "\\" && i + 1 < text.length) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c === "\\" && i + 1 < text.length ? text[++i] : c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new SyntaxError("unterminated quote in the access hook command");
  if (inWord) words.push(word);
  return words;
}
