import { invalidOption, typeOf } from '../options.js';
import { checkTenantBudget, sameBudget, type TenantBudgetLimits, type TenantBudgetOptions } from './tenantBudget.js';

/** The tenant of keys given without one (a plain list of keys). */
export const DEFAULT_TENANT = 'default';

/** What an entry of the map form of `apiKeys` says about its key. */
export interface TenantKeyOptions {
  /** The tenant whose runs the key starts and whose usage it sees. */
  readonly tenant: string;
  /** Who holds the key (recorded as who decided on a tool call). */
  readonly name?: string;
  /** The tenant's budget; every key of a tenant that states one must state the same. */
  readonly budget?: TenantBudgetOptions;
}

/** The tenants the keys name, each with its budget when one is set. */
export type TenantTable = ReadonlyMap<string, TenantBudgetLimits | undefined>;

/** Tenant ids: what a URL path segment and a metrics label can carry unchanged. */
export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function checkTenantId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !TENANT_ID.test(value)) {
    throw invalidOption(
      field,
      `Expected ${field} to be a tenant id: 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit, got ${typeof value === 'string' ? JSON.stringify(value.slice(0, 120)) : typeOf(value)}`,
    );
  }
  return value;
}

/**
 * Collects tenants and their budgets from key entries (`{ key, tenant?, budget? }`, in the order
 * given; `field` names each entry in errors). A key mapped to two tenants, or a tenant given two
 * different budgets, is a typed error.
 */
export class TenantKeyTable {
  readonly #tenantOfKey = new Map<string, string>();
  readonly #budgets = new Map<string, TenantBudgetLimits | undefined>();

  add(key: string, tenant: unknown, budget: unknown, field: string): string {
    const id = tenant === undefined ? DEFAULT_TENANT : checkTenantId(tenant, `${field}.tenant`);
    const known = this.#tenantOfKey.get(key);
    if (known !== undefined && known !== id) {
      // The key is not echoed: it is a secret.
      throw invalidOption(`${field}.tenant`, `The API key of ${field} is mapped to two tenants ("${known}" and "${id}"): a key belongs to one tenant`);
    }
    this.#tenantOfKey.set(key, id);
    const limits = budget === undefined ? undefined : checkTenantBudget(budget, `${field}.budget`);
    const stated = this.#budgets.get(id);
    if (limits !== undefined && stated !== undefined && !sameBudget(stated, limits)) {
      throw invalidOption(`${field}.budget`, `Tenant "${id}" is given two different budgets: give its budget once, or the same one with every key`);
    }
    if (limits !== undefined || !this.#budgets.has(id)) this.#budgets.set(id, limits ?? stated);
    return id;
  }

  tenants(): TenantTable {
    return new Map(this.#budgets);
  }
}
