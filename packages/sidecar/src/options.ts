/** Command-line value parsers shared by the sidecars' commands (commander argument parsers). */
import { InvalidArgumentError } from "commander";

/** A parser for an integer option from `min` to `max`; anything else is a usage error. */
export function intOption(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}
