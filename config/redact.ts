/**
 * The one rule for keeping database passwords out of output: everything that prints a
 * connection string (`farm status`, the worker's and the bot's start lines, start-up errors)
 * passes it through `redactConnectionString`. Hidden forms:
 *   - the password in a URL's user info: postgres://user:SECRET@host/db (also with '@' or '/' in it)
 *   - password, sslpassword, pgpassword or pass as a URL query parameter (?password=, &password=)
 *     or as a libpq keyword/value pair: "host=h password=SECRET", "PGPASSWORD=SECRET", 'quoted values'
 * Each is replaced by ***; the rest (user, host, port, database) stays, so the output still says
 * where the database is.
 */
export const REDACTED = '***';

/** Parameter names whose values are passwords (case-insensitive). */
const PASSWORD_KEYS = '(?:ssl)?password|pgpassword|pass';
const KEY_VALUE = new RegExp(`(^|[\\s?&;,"'])(${PASSWORD_KEYS})(\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*'|"(?:[^"\\\\]|\\\\.)*"|[^\\s&;,#"']*)`, 'gi');
/** scheme://user:password@ — greedy to the last '@' of the authority, so '@' inside a password is covered. */
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*):[^\s?#]*@/gi;

export function redactConnectionString(text: string): string {
  return text.replace(USERINFO, `$1:${REDACTED}@`).replace(KEY_VALUE, (_m, lead: string, key: string, eq: string) => `${lead}${key}${eq}${REDACTED}`);
}
