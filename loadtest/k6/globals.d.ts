// Globals the k6 runtime provides that @types/k6 does not declare. Only the
// console methods k6 implements are listed, so browser or Node APIs that k6
// lacks (window, fetch, process, require) stay type errors.
declare global {
  var console: {
    log(...data: unknown[]): void;
    info(...data: unknown[]): void;
    warn(...data: unknown[]): void;
    error(...data: unknown[]): void;
    debug(...data: unknown[]): void;
  };
}
export {};
