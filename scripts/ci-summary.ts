/**
 * The last line of `.ci/run`: "N passed, N failed", read off vitest's JSON report
 * (`--reporter=json --outputFile.json=FILE`).
 *
 *   node --import tsx scripts/ci-summary.ts .ci-out/vitest.json
 *
 * A test file that fails without a failed test in it (it fails to import, or a beforeAll/afterAll
 * hook throws, so its tests are skipped or never collected) counts as one failure: vitest's
 * numFailedTests leaves it out, and the line would read "0 failed" for a failed run. A run that
 * failed otherwise (an unhandled error) counts one failure; a report that is missing or unreadable
 * is "0 passed, 1 failed".
 */
import { readFileSync } from 'node:fs';

interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  /** false when the run failed, also for errors outside any test (vitest's "Unhandled Errors"). */
  success?: boolean;
  testResults?: Array<{ status: string; assertionResults?: Array<{ status: string }> }>;
}

export function summarize(report: VitestReport | undefined): { passed: number; failed: number } {
  if (!report || typeof report.numPassedTests !== 'number' || typeof report.numFailedTests !== 'number') return { passed: 0, failed: 1 };
  const failedFiles = (report.testResults ?? []).filter((file) => file.status === 'failed' && !(file.assertionResults ?? []).some((test) => test.status === 'failed')).length;
  const failed = report.numFailedTests + failedFiles;
  // A failed run never reads "0 failed".
  return { passed: report.numPassedTests, failed: failed === 0 && report.success === false ? 1 : failed };
}

export function summaryLine(file: string): string {
  let report: VitestReport | undefined;
  try {
    report = JSON.parse(readFileSync(file, 'utf8')) as VitestReport;
  } catch {
    report = undefined;
  }
  const { passed, failed } = summarize(report);
  return `${passed} passed, ${failed} failed`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  console.log(summaryLine(process.argv[2] ?? '.ci-out/vitest.json'));
}
