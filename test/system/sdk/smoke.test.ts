import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSdkSession, type SdkSession } from "../../helpers/sdk.js";

let session: SdkSession;
beforeAll(async () => {
  session = await startSdkSession();
});
afterAll(async () => session?.close());

describe("sdk reaches a local agent", () => {
  it("through the control-plane stand-in, RPCs over http and files over https on one port", async () => {
    const sbx = session.sandbox;
    const info = await sbx.files.stat("/tmp");
    expect(info.type).toBe("directory");
    expect(await sbx.files.exists("/definitely-missing")).toBe(false);
    await sbx.files.write("/tmp/sdk-smoke.txt", "hello");
    expect(await sbx.files.read("/tmp/sdk-smoke.txt")).toBe("hello");
  });
});
