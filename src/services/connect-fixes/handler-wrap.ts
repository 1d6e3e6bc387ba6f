/**
 * Fixes to how connect-es serves requests are applied around its per-RPC handlers (see
 * client-faults.ts, deadlines.ts, grpc-trailers.ts): the one layer every protocol and every kind
 * of RPC passes through, and that connect-es lets a routes callback reach.
 *
 * Upstream: connect-es server interceptors (connectrpc/connect-es#527) run after a unary request
 * is parsed and see no response bytes, so they cannot do this; a hook over handlers or over how an
 * error becomes a response is asked for in docs/upstream/connect-es.md ("handler hook").
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalHandlerFn } from "@connectrpc/connect/protocol";

/** Wraps one RPC's handler; `handler` says which RPC (its method, path and protocol). */
export type HandlerWrap = (next: UniversalHandlerFn, handler: UniversalHandler) => UniversalHandlerFn;

/** Replaces every handler the router holds with `wrap` of it. */
export function wrapRouterHandlers(router: ConnectRouter, wrap: (handler: UniversalHandler) => UniversalHandlerFn): void {
  // The fastify plugin reads `router.handlers` after the routes callback returns: replacing the
  // entries in place is how a routes callback can wrap them.
  const handlers = router.handlers;
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i]!;
    handlers[i] = Object.assign(wrap(handler), {
      protocolNames: handler.protocolNames,
      service: handler.service,
      method: handler.method,
      requestPath: handler.requestPath,
      allowedMethods: handler.allowedMethods,
      supportedContentType: handler.supportedContentType,
    }) satisfies UniversalHandler;
  }
}

/**
 * Maps each chunk and runs `atEnd` once the body is done. `throw` and `return` are forwarded as
 * they are (an async generator would turn a write error's `throw` into a `return`), so the
 * handler still learns why its response was cut short.
 */
export function mapBody(body: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array, atEnd?: () => void): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const inner = body[Symbol.asyncIterator]();
      return {
        async next() {
          const result = await inner.next();
          if (result.done === true) {
            atEnd?.();
            return result;
          }
          return { done: false, value: map(result.value) };
        },
        throw: (e?: unknown) => inner.throw?.(e) ?? Promise.reject(e),
        return: (value?: unknown) => inner.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
      };
    },
  };
}
