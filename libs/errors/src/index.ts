export { OtterError, ValidationError, ERROR_STATUS } from './otter-error.js';
export type { ErrorCode } from './otter-error.js';
export { OtterExceptionFilter } from './otter-exception.filter.js';
export { errorBodySchema, ERROR_CODES } from './error-body.js';
export type { ErrorBody } from './error-body.js';
