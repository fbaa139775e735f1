/**
 * Query parameters as the client forwards them from an operator's command line: a parameter the generated
 * types narrow to some strings (an enum) takes any string, so the server's 400 names what is wrong.
 */
export type Forwarded<T> = {
  [K in keyof T]: [Exclude<T[K], undefined>] extends [string] ? string | undefined : T[K];
};
