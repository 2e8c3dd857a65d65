#!/usr/bin/env node
// The `ferrymail` command. It runs the TypeScript sources directly, which needs a Node that
// strips types by itself: 22.18 or later, or 24 (the version the project pins and tests with).
import { exitAfterFlush, main } from '../src/cli/main.ts';

exitAfterFlush(await main(process.argv.slice(2)));
