// Types of cpu-profile-share.mjs, for the specs that import it.
export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
export interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
}
export interface ProfileShare {
  busy: number;
  idle: number;
  total: number;
  under: [string, number][];
}
export const BINDING_ENTRIES: string[];
export function entryMatcher(spec: string): (frame: { functionName: string; url: string }) => boolean;
export function profileShare(
  profile: CpuProfile,
  options: { entries: string[]; exclude?: string[]; windows?: { start: number; end: number }[] },
): ProfileShare;
export function describeShare(share: ProfileShare, operations?: number): string[];
