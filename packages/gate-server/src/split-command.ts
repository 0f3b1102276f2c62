/** The command line's edge: `--access-hook CMD` as one string, split into an argument array. */

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
