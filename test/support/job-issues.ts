/** The issues `compileJob` reports for a job definition (it must refuse it), for validation tests. */
import { expect } from '@jest/globals';
import { JobValidationError } from '../../src/errors.ts';
import { compileJob } from '../../src/job/plan.ts';

export function issuesOf(definition: unknown): readonly string[] {
  try {
    compileJob(definition);
  } catch (error) {
    expect(error).toBeInstanceOf(JobValidationError);
    return (error as JobValidationError).issues;
  }
  throw new Error('expected compileJob to throw');
}
