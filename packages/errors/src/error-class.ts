/** A package's one error class, bound to its error table. */
import {
  BottleError,
  type BottleErrorOptions,
  type ErrorSpec,
  type ErrorTable,
} from "./bottle-error.ts";

/**
 * The base of a package's one error class, bound to its table:
 * `export class ProxyError extends errorClass(PROXY_ERRORS) {}`. Its constructor takes a code of
 * the table only, and the status and exit code come from the table's row; `name` is the
 * subclass's own (`ProxyError`).
 */
export function errorClass<T extends ErrorTable>(table: T) {
  return class extends BottleError {
    constructor(code: keyof T & string, message: string, options: BottleErrorOptions = {}) {
      super(code, message, table[code] as ErrorSpec, options);
    }
  };
}
