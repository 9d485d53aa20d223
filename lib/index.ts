export * from "./config.js";
export * from "./errors.js";
export * from "./names.js";
export * from "./manifest.js";
export * from "./script-symbols.js";
