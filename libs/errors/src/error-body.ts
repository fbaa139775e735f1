import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from './otter-error.js';

/** Every error answer's body, whatever the route: what the exception filter sends and the document names. */
export const errorBodySchema = z
  .object({
    statusCode: z.number().int(),
    code: z.string().meta({ description: 'An OtterError code (libs/errors), or a generic HTTP one.' }),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
    errorId: z.string().optional().meta({ description: 'Names the logged error of a 500.' }),
  })
  .meta({
    id: 'Error',
    example: {
      statusCode: 400,
      code: 'VALIDATION_FAILED',
      message: 'invalid request body: name: Invalid input: expected string, received number',
      details: { field: 'name', reason: 'Invalid input: expected string, received number', in: 'body' },
    },
  });
export type ErrorBody = z.infer<typeof errorBodySchema>;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];
