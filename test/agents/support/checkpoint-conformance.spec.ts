// Run by vitest (globals on), from test/agents/checkpoint-conformance.test.ts: LangChain's checkpointer conformance
// suite through its programmatic API, validate(), with our initializer. (The package's validate-checkpointer CLI, 1.1.1,
// cannot load any initializer: its runner imports findPackageRoot, which its import_utils does not export.)
import { validate } from '@langchain/langgraph-checkpoint-validation'
import initializer from './checkpoint-initializer.js'

validate(initializer)
