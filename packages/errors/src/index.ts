export type { BottleErrorOptions, ErrorSpec, ErrorTable } from "./bottle-error.ts";
export {
  BottleError,
  COMMON_ERRORS,
  defineErrors,
  errorClass,
  isBottleError,
  toBottleError,
} from "./bottle-error.ts";
