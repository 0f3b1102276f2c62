export type { BottleErrorOptions, ErrorSpec, ErrorTable } from "./bottle-error.ts";
export {
  BottleError,
  COMMON_ERRORS,
  defineErrors,
  isBottleError,
  toBottleError,
} from "./bottle-error.ts";
export { errorClass } from "./error-class.ts";
