/**
 * The one check of environment variables a caller sends (processes, executions, drivers): a name
 * that execve(2) can carry (not empty, no `=`, no NUL) and a value without NUL. A shell that is
 * handed them as variables (the bash driver) needs names it can assign, which is stricter.
 */
const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Why `env` cannot be used, or undefined when it can. */
export function environmentProblem(env: Readonly<Record<string, string>>, options: { readonly shellNames?: boolean } = {}): string | undefined {
  for (const [name, value] of Object.entries(env)) {
    if (options.shellNames === true ? !SHELL_NAME.test(name) : name === "" || name.includes("=") || name.includes("\0")) {
      return `invalid environment variable name${options.shellNames === true ? " for a shell" : ""} ${JSON.stringify(name)}`;
    }
    if (value.includes("\0")) return `environment variable ${name} contains a NUL byte`;
  }
  return undefined;
}
