import { resolve } from 'node:path';
import type { Command } from 'commander';
import { verifyImage } from '../imaging/verify.js';
import { EXIT, describeError } from './exit-codes.js';

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .argument('<image>', 'image file with .md5/.sha1/.sha256 sidecars next to it')
    .description('re-hash an image and compare it with its sidecars (exit 0 match, 1 mismatch, 2 error)')
    .option('--json', 'print the report as JSON')
    .action(async (image: string, options: { json?: boolean }) => {
      try {
        const report = await verifyImage(resolve(image));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        } else {
          for (const result of report.results) {
            process.stdout.write(`${result.algorithm.toUpperCase()}: ${result.ok ? 'OK' : `FAILED (expected ${result.expected}, got ${result.actual})`}\n`);
          }
        }
        process.exitCode = report.ok ? EXIT.ok : EXIT.failed;
      } catch (error) {
        // The issue's contract for verify: 2 for anything that kept us from comparing.
        process.stderr.write(`${describeError(error)}\n`);
        process.exitCode = EXIT.invalid;
      }
    });
}
