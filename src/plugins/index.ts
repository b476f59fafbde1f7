export { auditRecordOf, auditSink, type AuditRecord, type AuditSinkOptions } from './auditSink.js';
export { loopDetection, type LoopDetectionOptions } from './loopDetection.js';
export { DEFAULT_PII_PATTERNS, piiGuard, type PiiGuardOptions } from './piiGuard.js';
export { definePlugin, isPlugin, type Plugin } from './definePlugin.js';
