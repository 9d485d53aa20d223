// The interactive driver and pause on failure through a real pseudo-terminal, on a fake guest.
import { defineReplTests } from "../e2e/repl-cases.js";

defineReplTests("fake", ["repl", "pause"]);
