import { z } from 'zod';
import { LABEL_PATTERN, MAX_NODE_LABELS, type SetNodeLabelsRequest } from '#otter/contracts';

const LABEL_RULE = '[A-Za-z0-9] then [A-Za-z0-9._/-], 1..63 characters';

// Keys are checked here rather than as the record's key schema: zod would only say "Invalid key in record".
export const setLabelsRequest: z.ZodType<SetNodeLabelsRequest> = z.strictObject({
  labels: z
    .record(z.string(), z.string().regex(LABEL_PATTERN, `a label value: ${LABEL_RULE}`))
    .superRefine((labels, ctx) => {
      const keys = Object.keys(labels);
      for (const key of keys) {
        if (!LABEL_PATTERN.test(key))
          ctx.addIssue({ code: 'custom', path: [key], message: `a label key: ${LABEL_RULE}` });
      }
      if (keys.length > MAX_NODE_LABELS) {
        ctx.addIssue({ code: 'custom', message: `at most ${MAX_NODE_LABELS} labels (got ${keys.length})` });
      }
    }),
});
