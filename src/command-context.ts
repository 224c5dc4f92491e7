// What a `tlpipe` command receives: its positional arguments and the parsed options.
import type { ClusterValues } from './cluster/commands.js';

export interface CommandContext {
  args: string[];
  values: {
    set?: string[];
    force?: string[];
    from?: string;
    only?: string;
    'dry-run'?: boolean;
    download?: boolean;
    json?: boolean;
    verbose?: boolean;
    jobs?: string;
    'cache-dir'?: string;
    'keep-last'?: string;
    last?: string;
    out?: string;
    /** The remote cache (remote/commands.ts). */
    remote?: string;
    'no-remote'?: boolean;
    'remote-read-only'?: boolean;
    default?: boolean;
    'read-only'?: boolean;
  } & ClusterValues;
}
