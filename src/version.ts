/** The runtime version, part of every executionHash. A test keeps it equal to package.json. */
export const RUNTIME_VERSION = '0.1.0';
