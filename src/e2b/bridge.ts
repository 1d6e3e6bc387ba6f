/**
 * One implementation, two wire faces. envd's `filesystem.Filesystem` and `process.Process` carry
 * the same messages as the agent's own services under other names (field for field and number for
 * number; the agent's proto has envd's few extra fields as extensions), so a message crosses from
 * one face to the other by its encoding: serialised with one schema, read with the other.
 * Reading shares the buffer (protobuf-es reads bytes fields as views), so a process's output is
 * copied once on the way, by the serialisation.
 */
import { fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";

export function convert<From extends DescMessage, To extends DescMessage>(from: From, to: To, message: MessageShape<From>): MessageShape<To> {
  return fromBinary(to, toBinary(from, message));
}

/** Completes a response of the face before it is sent (envd's entries carry metadata). */
export type Finish = (response: MessageShape<DescMessage>, ctx: HandlerContext) => Promise<void>;

async function* convertEach(
  from: DescMessage,
  to: DescMessage,
  messages: AsyncIterable<MessageShape<DescMessage>>,
  ctx: HandlerContext,
  finish: Finish | undefined,
): AsyncGenerator<MessageShape<DescMessage>> {
  for await (const message of messages) {
    const converted = convert(from, to, message);
    await finish?.(converted, ctx);
    yield converted;
  }
}

type AnyHandler = (input: unknown, ctx: HandlerContext) => unknown;

/**
 * `face`'s implementation by `impl` of `own`: each RPC of `face` calls the RPC of the same name,
 * its request converted on the way in and its response (or each streamed one) on the way out.
 * `finish` completes a converted response (or each streamed one) before it is sent.
 */
export function bridgeService<Face extends DescService, Own extends DescService>(
  face: Face,
  own: Own,
  impl: ServiceImpl<Own>,
  finish: Partial<Record<string, Finish>> = {},
): ServiceImpl<Face> {
  const handlers: Record<string, AnyHandler> = {};
  const ownHandlers = impl as unknown as Record<string, AnyHandler>;
  for (const method of face.methods) {
    const target: DescMethod | undefined = own.methods.find((candidate) => candidate.localName === method.localName);
    const call = ownHandlers[method.localName];
    if (target === undefined || call === undefined) throw new Error(`${own.typeName} has no ${method.name} for ${face.typeName}`);
    const inward = (request: MessageShape<DescMessage>): MessageShape<DescMessage> => {
      try {
        return convert(method.input, target.input, request);
      } catch (err) {
        // JSON can hold what the binary form cannot (an enum of 1e300): the request is at fault.
        throw new ConnectError(`invalid ${method.input.typeName}: ${(err as Error).message}`, Code.InvalidArgument);
      }
    };
    const done = finish[method.localName];
    const outward = async (response: MessageShape<DescMessage>, ctx: HandlerContext): Promise<MessageShape<DescMessage>> => {
      const converted = convert(target.output, method.output, response);
      await done?.(converted, ctx);
      return converted;
    };
    switch (method.methodKind) {
      case "unary":
        handlers[method.localName] = async (request, ctx) =>
          outward((await call(inward(request as MessageShape<DescMessage>), ctx)) as MessageShape<DescMessage>, ctx);
        break;
      case "server_streaming":
        handlers[method.localName] = (request, ctx) =>
          convertEach(
            target.output,
            method.output,
            call(inward(request as MessageShape<DescMessage>), ctx) as AsyncIterable<MessageShape<DescMessage>>,
            ctx,
            done,
          );
        break;
      case "client_streaming":
        handlers[method.localName] = async (requests, ctx) => {
          const converted = (async function* () {
            for await (const request of requests as AsyncIterable<MessageShape<DescMessage>>) yield inward(request);
          })();
          return outward((await call(converted, ctx)) as MessageShape<DescMessage>, ctx);
        };
        break;
      default:
        throw new Error(`${face.typeName}/${method.name}: bidi streams are not bridged`);
    }
  }
  // The handlers are built from the descriptors themselves, which the types cannot follow.
  return handlers as unknown as ServiceImpl<Face>;
}
