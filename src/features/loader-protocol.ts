// Messages between the extractor and a loader worker: image loading moved off
// the main thread for loaders that do real work in JavaScript (e.g. an exact
// resampler), so decoding can use every core instead of one event loop.

/** Where a loader worker finds its loader: an ES module exporting a factory. */
export interface LoaderModule {
  /** URL (file:) or absolute path of the module. */
  url: string | URL;
  /**
   * Name of the export to call once per worker with `options`; it returns the
   * loader: `(item, target, offset) => Promise<void | Float32Array>`. Default 'createLoader'.
   */
  exportName?: string;
  /** Passed to the factory (must survive structured cloning). */
  options?: unknown;
}

export interface LoaderInit {
  kind: 'init';
  url: string;
  exportName: string;
  options: unknown;
  /** Floats per image. */
  elements: number;
}

export interface LoadRequest {
  kind: 'load';
  id: number;
  item: unknown;
  /** A spent tensor buffer handed back for reuse, when one is free. */
  spare?: ArrayBuffer;
}

export type LoaderRequest = LoaderInit | LoadRequest;

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export type LoaderReply =
  | { kind: 'init-failed'; error: SerializedError }
  | { kind: 'loaded'; id: number; tensor: ArrayBuffer }
  | { kind: 'load-failed'; id: number; error: SerializedError };
