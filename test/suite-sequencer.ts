import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The two files that each run a fleet of agents on swtpm: together on two cores they slow each other 4x. */
const FIRST = 'test/demo.e2e.spec.ts';
const LAST = 'test/rollout.e2e.spec.ts';

/**
 * Vitest's order (failed, then longest first) with the demo first and the rollout e2e last: with two workers
 * the demo then runs beside the many short files, and the rollout e2e starts once the demo is long done.
 */
export default class SuiteSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const is = (spec: TestSpecification, file: string): boolean => spec.moduleId.endsWith(`/${file}`);
    return [
      ...sorted.filter((spec) => is(spec, FIRST)),
      ...sorted.filter((spec) => !is(spec, FIRST) && !is(spec, LAST)),
      ...sorted.filter((spec) => is(spec, LAST)),
    ];
  }
}
