/**
 * Base class of every error nixos-test-ts raises on purpose. `code` is stable
 * and meant for programs; `message` is meant for people and always says what
 * went wrong, where, and (when we know) what to do about it.
 */
export class NixosTestError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** console.log and the REPL show the message people need, not a dump of fields. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `${this.name}: ${this.message}`;
  }
}

/** Bad input: a configuration file, a flag or an environment variable. */
export class ConfigError extends NixosTestError {
  /** Dotted path of the offending field, e.g. `vms.machine1.start_script`. */
  readonly field: string | undefined;

  constructor(message: string, field?: string, options?: ErrorOptions) {
    super("NTT_CONFIG", message, options);
    this.field = field;
  }
}
