import { describe, expect, it } from "vitest";
import { PathError, resolvePath } from "../../src/paths.js";
import type { User } from "../../src/users.js";

const user: User = { name: "user", uid: 1000, gid: 1000, home: "/home/user", shell: "/bin/bash", groups: [1000] };

describe("path resolution", () => {
  it.each([
    ["", "/home/user"],
    ["~", "/home/user"],
    ["~/a/b", "/home/user/a/b"],
    ["a/b", "/home/user/a/b"],
    ["./a/../b", "/home/user/b"],
    ["/tmp/x", "/tmp/x"],
    ["/tmp//x/", "/tmp/x"],
    ["/../../etc", "/etc"],
    ["/tmp/ünïcødé ✓", "/tmp/ünïcødé ✓"],
  ])("%j resolves to %j", (input, expected) => {
    expect(resolvePath(input, user)).toBe(expected);
  });

  it("refuses NUL bytes, other users' homes and over-long paths", () => {
    expect(() => resolvePath("/tmp/a\0b", user)).toThrow(PathError);
    expect(() => resolvePath("~root/x", user)).toThrow(PathError);
    expect(() => resolvePath(`/${"a".repeat(5000)}`, user)).toThrow(PathError);
  });
});
