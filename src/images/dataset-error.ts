// A dataset that cannot be used as declared: a missing folder, no images,
// a single class... The message says where and what to change.
import { ExpectedFailure } from '../failure.js';

export class DatasetError extends ExpectedFailure {
  override name = 'DatasetError';
  readonly reason = 'data';
  constructor(
    message: string,
    /** The folder or file the problem is about, when there is one. */
    readonly location?: string,
  ) {
    super(message);
  }
}
