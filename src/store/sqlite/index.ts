export { createSqliteStore, type SqliteRunStore, type SqliteStoreOptions } from './createSqliteStore.js';
export type { CheckpointStats } from './backgroundCheckpoint.js';
export { SQLITE_SCHEMA_VERSION, sqliteMigrations, type SqliteMigration } from './migrations.js';
