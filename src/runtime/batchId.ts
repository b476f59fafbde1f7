import { invalidOption, typeOf } from '../options.js';

/** A queued batch's id: it names the batch's budget record in Redis, and a run of it records it in its EXECUTION_START. */
export const BATCH_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** `value` when it is a batch id (see {@link BATCH_ID}), else the typed error naming `field`. */
export function checkBatchId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !BATCH_ID.test(value)) {
    throw invalidOption(field, `Expected "${field}" to be a batch id: 1 to 128 letters, digits, ".", "_" or "-", got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 140)) : typeOf(value)}`);
  }
  return value;
}
