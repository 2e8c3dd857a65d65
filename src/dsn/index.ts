export {
  buildDsn,
  DEFAULT_MAX_FULL_RETURN_SIZE,
  DEFAULT_MAX_RETURNED_HEADER_SIZE,
  randomDsnIds,
} from './build-dsn.ts';
export { shouldNotify } from './should-notify.ts';
export type {
  DsnAction,
  DsnEnvelopeOut,
  DsnIds,
  DsnInput,
  DsnKind,
  DsnOutput,
  DsnRecipientReport,
} from './types.ts';
export { DsnInputError } from './types.ts';
