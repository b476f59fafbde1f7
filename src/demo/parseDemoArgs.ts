/** How `npm run demo` (and `src/demo/main.ts`) is called. */
export const DEMO_USAGE = `Usage: npm run demo -- [options]

Runs a short governed session on built-in agents: no network, no API key.

Options:
  --json       print one JSON document (every report and event) instead of text;
               npm run --silent demo -- --json keeps npm's banner off stdout
  --no-color   disable colours (also: NO_COLOR=1)
  -h, --help   show this help
`;

export type DemoArgs =
  | { readonly kind: 'run'; readonly json: boolean; readonly color: boolean | undefined }
  | { readonly kind: 'help' }
  | { readonly kind: 'error'; readonly message: string };

/**
 * Reads the demo's flags. Anything else is an error that names the argument, so a typo never
 * silently runs the demo with defaults.
 */
export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  let json = false;
  let color: boolean | undefined;
  for (const arg of argv) {
    if (arg === '--json') json = true;
    else if (arg === '--no-color') color = false;
    else if (arg === '--help' || arg === '-h') return { kind: 'help' };
    else if (arg.startsWith('-')) return { kind: 'error', message: `unknown option "${arg}"` };
    else return { kind: 'error', message: `unexpected argument "${arg}": the demo takes no arguments` };
  }
  return { kind: 'run', json, color };
}
