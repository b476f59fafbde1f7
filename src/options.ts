import { OaoError } from './errors.js';

/** The error every options check throws: `OAO_ERR_INVALID_ARGUMENT` naming the option in `details.field`. */
export function invalidOption(field: string, message: string): OaoError {
  return new OaoError('OAO_ERR_INVALID_ARGUMENT', message, { details: { field } });
}

/** `value` when it is an integer from 1 up (a safe one), else the typed error naming `field`. */
export function positiveIntegerOption(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidOption(field, `Expected ${field} to be an integer from 1 and up, got ${typeof value === 'number' ? value : typeOf(value)}`);
  }
  return value;
}

/** How an unexpected value is named in an error message: 'null', 'an array', or its typeof. */
export function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
