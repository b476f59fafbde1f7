// `npm run demo`: a governed session on built-in agents. Exit codes: 0 every scenario ended as
// expected, 1 one did not, 2 bad usage.
import { DEMO_USAGE, parseDemoArgs } from './parseDemoArgs.js';
import { runDemo } from './runDemo.js';

// `npm run demo -- --json | head` closes the pipe early: that is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

const args = parseDemoArgs(process.argv.slice(2));
if (args.kind === 'help') {
  process.stdout.write(DEMO_USAGE);
} else if (args.kind === 'error') {
  process.stderr.write(`error: ${args.message}\n\n${DEMO_USAGE}`);
  process.exitCode = 2;
} else {
  const result = await runDemo({ json: args.json, ...(args.color === undefined ? {} : { color: args.color }) });
  if (!result.ok) {
    process.stderr.write(`demo: ${result.problems.length} scenario expectation(s) not met:\n${result.problems.map((p) => `  - ${p}\n`).join('')}`);
    process.exitCode = 1;
  }
}
