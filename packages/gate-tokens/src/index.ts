export type { TokenErrorCode } from "./errors.ts";
export { codes, TOKEN_ERRORS, TokenStoreError } from "./errors.ts";
export type { Scope, TokenRecord } from "./format.ts";
export type {
  CreateTokenInput,
  ListFilter,
  RevokeSelector,
  TokenStore,
  TokenStoreOptions,
} from "./store.ts";
export { createTokenStore } from "./store.ts";
export { digestToken, TOKEN_PREFIX } from "./token.ts";
export type {
  TokenVerifier,
  TokenVerifierOptions,
  VerifierResult,
  VerifierState,
} from "./verifier.ts";
export { createTokenVerifier } from "./verifier.ts";
export type { VerifyResult } from "./verify.ts";
