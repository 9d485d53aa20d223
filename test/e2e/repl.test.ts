// The REPL on a real guest: Ctrl-C ends a command running in the VM, .shell
// talks to the VM's console. Pause on failure is driver logic, tested on fake
// guests in the fast tier (unit/repl-fake.test.ts).
import { defineReplTests } from "./repl-cases.js";

defineReplTests("tiny", ["repl"]);
