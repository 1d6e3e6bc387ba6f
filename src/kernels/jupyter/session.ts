/**
 * One client session with one kernel over ZeroMQ: the five channels, replies matched to requests by
 * msg_id, and IOPub/stdin messages routed to whoever sent the request they answer. Knows nothing
 * about processes; the kernel closes the session when its process goes.
 */
import { randomUUID } from "node:crypto";
import { Dealer, Request, Subscriber, type Socket } from "zeromq";
import { KernelDiedError } from "../kernel.js";
import { decode, encode, newHeader, WireError, type JsonObject, type JupyterMessage } from "./wire.js";

/** The five sockets of a Jupyter kernel. */
export type KernelSocket = "shell" | "iopub" | "stdin" | "control" | "hb";

/** How to reach one kernel: a ZeroMQ endpoint per socket, and the key that signs every message. */
export interface KernelConnection {
  readonly endpoints: Readonly<Record<KernelSocket, string>>;
  readonly key: string;
}

export type Channel = "shell" | "control";

export interface RequestHandlers {
  readonly onIopub?: (message: JupyterMessage) => void;
  readonly onStdin?: (message: JupyterMessage) => void;
  /** Keep delivering IOPub messages this long after `idle`, for kernels that send some late. */
  readonly settleMs?: number;
}

interface Pending {
  readonly resolve: (reply: JupyterMessage) => void;
  readonly reject: (err: Error) => void;
}

/** What a request resolves to once the kernel is done with it: its reply, after IOPub went idle. */
export interface Completed {
  readonly reply: JupyterMessage;
}

/** Sends on one socket one message at a time: zeromq refuses a second send while one is blocked. */
class SendQueue {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly socket: Dealer) {}

  send(frames: Buffer[]): Promise<void> {
    const next = this.tail.then(() => this.socket.send(frames));
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class KernelSession {
  readonly sessionId = randomUUID();
  private readonly key: Buffer;
  // Kernels address input_request to the routing id of the shell socket that sent the request, on
  // their stdin ROUTER: shell and stdin must share one id, or the request is dropped and the
  // kernel waits for an answer forever.
  private readonly shell = new Dealer({ linger: 0, routingId: this.sessionId });
  private readonly control = new Dealer({ linger: 0, routingId: this.sessionId });
  private readonly stdin = new Dealer({ linger: 0, routingId: this.sessionId });
  private readonly iopub = new Subscriber({ linger: 0 });
  private readonly sends: Record<Channel | "stdin", SendQueue>;
  private heartbeat: Request | undefined;
  private readonly replies = new Map<string, Pending>();
  private readonly listeners = new Map<string, RequestHandlers>();
  /** Requests waiting for IOPub to go idle, failed together when the session closes. */
  private readonly idleWaiters = new Map<string, (err: Error) => void>();
  private closedWith: Error | undefined;

  constructor(
    private readonly connection: KernelConnection,
    private readonly username: string,
    private readonly onProtocolError: (err: Error) => void = () => undefined,
  ) {
    this.key = Buffer.from(connection.key, "utf8");
    this.sends = { shell: new SendQueue(this.shell), control: new SendQueue(this.control), stdin: new SendQueue(this.stdin) };
  }

  /** Connects every channel; ZeroMQ connects lazily, so this returns at once. */
  open(): void {
    const { endpoints } = this.connection;
    this.shell.connect(endpoints.shell);
    this.control.connect(endpoints.control);
    this.stdin.connect(endpoints.stdin);
    this.iopub.connect(endpoints.iopub);
    this.iopub.subscribe();
    for (const [socket, channel] of [
      [this.shell, "shell"],
      [this.control, "control"],
      [this.stdin, "stdin"],
      [this.iopub, "iopub"],
    ] as const) {
      void this.pump(socket, channel);
    }
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  private async pump(socket: Socket & AsyncIterable<Buffer[]>, channel: string): Promise<void> {
    try {
      for await (const frames of socket) {
        try {
          this.dispatch(channel, frames);
        } catch (err) {
          // A failing listener must not stop the channel for every later message.
          this.onProtocolError(err as Error);
        }
      }
    } catch (err) {
      if (!this.closed) this.onProtocolError(err as Error);
    }
  }

  private dispatch(channel: string, frames: Buffer[]): void {
    let message: JupyterMessage;
    try {
      message = decode(this.key, frames);
    } catch (err) {
      // A forged or garbled message is dropped, never acted on.
      if (err instanceof WireError) {
        this.onProtocolError(new Error(`dropped ${channel} message: ${err.message}`));
        return;
      }
      throw err;
    }
    const parentId = message.parentHeader.msg_id;
    if (parentId === undefined) return;
    if (channel === "iopub") {
      this.listeners.get(parentId)?.onIopub?.(message);
    } else if (channel === "stdin") {
      this.listeners.get(parentId)?.onStdin?.(message);
    } else {
      const pending = this.replies.get(parentId);
      this.replies.delete(parentId);
      pending?.resolve(message);
    }
  }

  /**
   * Sends a request and resolves with its reply. IOPub and stdin messages caused by it go to
   * `handlers` until `release(msgId)`.
   */
  request(channel: Channel, msgType: string, content: JsonObject, handlers?: RequestHandlers): { msgId: string; reply: Promise<JupyterMessage> } {
    const header = newHeader(msgType, this.sessionId, this.username);
    const reply = new Promise<JupyterMessage>((resolve, reject) => {
      if (this.closedWith !== undefined) return reject(this.closedWith);
      this.replies.set(header.msg_id, { resolve, reject });
      if (handlers !== undefined) this.listeners.set(header.msg_id, handlers);
      const frames = encode(this.key, { header, parentHeader: {}, metadata: {}, content });
      this.sends[channel].send(frames).catch((err: Error) => {
        this.replies.delete(header.msg_id);
        reject(this.closedWith ?? err);
      });
    });
    return { msgId: header.msg_id, reply };
  }

  /**
   * A request that is over only when both its reply and IOPub `status: idle` for it have arrived,
   * so every output it caused has been delivered.
   */
  async complete(channel: Channel, msgType: string, content: JsonObject, handlers: RequestHandlers = {}): Promise<Completed> {
    let markIdle: () => void = () => undefined;
    let failIdle: (err: Error) => void = () => undefined;
    const idle = new Promise<void>((resolve, reject) => {
      markIdle = resolve;
      failIdle = reject;
    });
    const { msgId, reply } = this.request(channel, msgType, content, {
      onStdin: handlers.onStdin,
      onIopub: (message) => {
        if (message.header.msg_type === "status" && message.content.execution_state === "idle") markIdle();
        else handlers.onIopub?.(message);
      },
    });
    if (this.closedWith !== undefined) failIdle(this.closedWith);
    else this.idleWaiters.set(msgId, failIdle);
    try {
      const [answer] = await Promise.all([reply, idle]);
      if (handlers.settleMs !== undefined && handlers.settleMs > 0) await new Promise((resolve) => setTimeout(resolve, handlers.settleMs));
      return { reply: answer };
    } finally {
      this.release(msgId);
    }
  }

  release(msgId: string): void {
    this.listeners.delete(msgId);
    this.replies.delete(msgId);
    this.idleWaiters.delete(msgId);
  }

  /** Answers an input_request on the stdin channel. */
  async replyStdin(parent: JupyterMessage, msgType: string, content: JsonObject): Promise<void> {
    const header = newHeader(msgType, this.sessionId, this.username);
    await this.sends.stdin.send(encode(this.key, { header, parentHeader: parent.header, metadata: {}, content }));
  }

  /** One heartbeat round trip; false when the kernel did not echo within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.closed) return false;
    if (this.heartbeat === undefined) {
      this.heartbeat = new Request({ linger: 0, receiveTimeout: timeoutMs, sendTimeout: timeoutMs });
      this.heartbeat.connect(this.connection.endpoints.hb);
    }
    const socket = this.heartbeat;
    try {
      await socket.send("ping");
      await socket.receive();
      return true;
    } catch {
      // A REQ socket that missed its reply cannot send again; start over with a fresh one.
      socket.close();
      if (this.heartbeat === socket) this.heartbeat = undefined;
      return false;
    }
  }

  /** Fails everything in flight with `reason` and closes the sockets; idempotent. */
  close(reason: Error = new KernelDiedError("session closed")): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = reason;
    for (const pending of this.replies.values()) pending.reject(reason);
    for (const fail of this.idleWaiters.values()) fail(reason);
    this.replies.clear();
    this.listeners.clear();
    this.idleWaiters.clear();
    for (const socket of [this.shell, this.control, this.stdin, this.iopub, this.heartbeat]) {
      if (socket !== undefined && !socket.closed) socket.close();
    }
  }
}
