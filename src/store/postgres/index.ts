/**
 * `open-agent-orchestrator/postgres`: the durable `RunStore` on PostgreSQL. Needs the optional
 * peer dependency `pg` (node-postgres 8), loaded by the first `createPostgresStore()`. See
 * docs/durability.md.
 */
export { createPostgresStore, type PostgresRunStore, type PostgresStoreOptions } from './createPostgresStore.js';
export { POSTGRES_SCHEMA_VERSION, postgresMigrations, type PostgresMigration } from './migrations.js';
