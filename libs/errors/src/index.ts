export { OtterError, ValidationError, ERROR_STATUS } from './otter-error.js';
export type { ErrorCode } from './otter-error.js';
export { OtterExceptionFilter } from './otter-exception.filter.js';
export type { ErrorBody } from './otter-exception.filter.js';
