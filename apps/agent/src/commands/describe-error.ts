import { ApiError, ApiUnreachableError } from '#otter/api-client';

/**
 * One line for stderr after `otter-agent: `: `CODE: message` whenever the failure has a code (Otter's API
 * error code, a TUF client, TPM or agent code), so scripts and operators can match on it.
 */
export function describeAgentError(error: unknown): string {
  let text: string;
  if (error instanceof ApiUnreachableError) {
    text = `SERVER_UNREACHABLE: ${error.message}`;
  } else if (error instanceof ApiError) {
    const reason = typeof error.details?.reason === 'string' ? ` (${error.details.reason})` : '';
    text = `${error.code}: ${error.message}${reason}`;
  } else if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    // Node's own errors (ENOENT, ...) already start with their code.
    text =
      typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) && !error.message.startsWith(code)
        ? `${code}: ${error.message}`
        : error.message;
  } else {
    text = String(error);
  }
  return text.replace(/\s*\n\s*/g, ' ');
}
