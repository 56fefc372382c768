// Structured logs of the reference registry: one record per line, as JSON (`{"time","level","msg",...fields}`)
// for log collectors or as text for people. Every record is scrubbed before it is written: fields named like
// secrets lose their value, and credentials inside free text (a password in a connection string, a bearer
// token, a key header) are masked, so a token, key, proof or database password never reaches a log line.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "text";
export type LogValue = string | number | boolean | null | undefined;
export type LogFields = Readonly<Record<string, LogValue>>;

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS: readonly LogFormat[] = ["json", "text"];

/** The registry's logger: the server's RegistryLogger with levels and fields. */
export interface StructuredLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, error?: unknown, fields?: LogFields): void;
}

export interface LoggerOptions {
  format: LogFormat;
  /** Lowest level written (default info). */
  level?: LogLevel;
  /** Where lines go (default process.stderr). One call per line, newline included. */
  write?: (line: string) => void;
  /** Clock for the `time` field (default Date.now). */
  now?: () => number;
}

const MASK = "[redacted]";

/**
 * Field names whose values are secrets (or, like installation ids, identify a secret): the value is never
 * written, whatever it is.
 */
const SECRET_FIELD =
  /token|key|secret|passw|pwd|proof|authori[sz]ation|cookie|signature|installation|credential|database_url|dsn/i;

const TEXT_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // user:password@ in any URL (postgres://, http://): keep the user, mask the password.
  [/([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s@/?#]*@/gi, `$1:${MASK}@`],
  // libpq key=value connection strings, similar settings and JSON members (`"agent_token":"..."`).
  [
    /\b([\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|admin[_-]?key))("?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;"]+)/gi,
    `$1$2${MASK}`,
  ],
  // Query parameters that carry credentials.
  [/([?&](?:token|key|api_key|access_token|password|secret|sslpassword)=)[^&\s#]+/gi, `$1${MASK}`],
  // The registry's credential headers, written as `name: value` or `name=value` (a scheme goes with the value).
  [
    /\b(x-registry-key|x-registry-admin-key|x-agent-proof|authorization)(\s*[:=]\s*)(?:(?:Bearer|Basic)\s+)?("[^"]*"|\S+)/gi,
    `$1$2${MASK}`,
  ],
  // Authorization schemes anywhere else.
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g, `$1 ${MASK}`],
];

/** `text` with credentials masked (connection-string passwords, bearer tokens, key headers, secret params). */
export function redactText(text: string): string {
  let out = text;
  for (const [pattern, replacement] of TEXT_RULES) out = out.replace(pattern, replacement);
  return out;
}

/** A field's value as it may be written: masked when the name says secret, text scrubbed otherwise. */
export function redactField(name: string, value: LogValue): LogValue {
  if (value === undefined || value === null) return value;
  if (SECRET_FIELD.test(name)) return MASK;
  return typeof value === "string" ? redactText(value) : value;
}

function describeError(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error) {
    const stack = error.stack?.split("\n").slice(1).join("\n").trim();
    return {
      error: redactText(`${error.name}: ${error.message}`),
      stack: stack ? redactText(stack) : undefined,
    };
  }
  return { error: redactText(String(error)) };
}

const TEXT_LEVEL: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO ", warn: "WARN ", error: "ERROR" };

/**
 * Control characters written as escapes: text that came from a client (an error message quoting input) must
 * not forge a line or drive the terminal that shows the log (ANSI escapes).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g;
const escapeControls = (text: string) =>
  text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

function textValue(value: LogValue): string {
  const text = String(value);
  return /^[\x21-\x7e]+$/.test(text) && !/["=]/.test(text) ? text : JSON.stringify(text);
}

export function createLogger(options: LoggerOptions): StructuredLogger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? "info");
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? Date.now;

  const emit = (level: LogLevel, message: string, fields: LogFields | undefined, error?: unknown) => {
    if (LOG_LEVELS.indexOf(level) < threshold) return;
    const time = new Date(now()).toISOString();
    const clean: Record<string, LogValue> = {};
    if (fields) {
      for (const [name, value] of Object.entries(fields)) {
        // The record's own keys cannot be overwritten by a field.
        if (name === "time" || name === "level" || name === "msg" || value === undefined) continue;
        clean[name] = redactField(name, value);
      }
    }
    const failure = error === undefined ? undefined : describeError(error);
    const msg = redactText(message);
    if (options.format === "json") {
      write(`${JSON.stringify({ time, level, msg, ...clean, ...failure })}\n`);
      return;
    }
    let line = `${time} ${TEXT_LEVEL[level]} ${escapeControls(msg).replace(/\n/g, "\\n")}`;
    for (const [name, value] of Object.entries(clean)) line += ` ${name}=${textValue(value)}`;
    if (failure) {
      line += ` error=${textValue(failure.error)}${failure.stack ? `\n${escapeControls(failure.stack)}` : ""}`;
    }
    write(`${line}\n`);
  };

  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, error, fields) => emit("error", message, fields, error),
  };
}
