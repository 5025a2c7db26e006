import fc from "fast-check";
import secureJson from "secure-json-parse";
import { describe, expect, it } from "vitest";
import { DECODE_PIECE, jsonText, refusePoisonedKeys, splitJsonBody } from "../../src/runtime/json-body.js";

/**
 * A large JSON body read on a worker (runtime/json-body.ts) must be refused exactly when REST refuses
 * a small one (fastify's secure-json-parse), and its tensors moved out byte for byte.
 */

/** The split of `text` sent as UTF-8, as the worker reads a body. */
function splitText(text: string, memory?: Uint8Array): ReturnType<typeof splitJsonBody> {
  return splitJsonBody(Buffer.from(text), memory);
}

/** What secure-json-parse, as fastify runs it, says of `text`: refused, or not. */
function libraryRefuses(text: string): boolean {
  try {
    secureJson.parse(text, undefined, { protoAction: "error", constructorAction: "error" });
    return false;
  } catch {
    return true;
  }
}

function splitRefuses(text: string): boolean {
  try {
    splitText(text);
    return false;
  } catch {
    return true;
  }
}

function parseRefuses(text: string): boolean {
  try {
    JSON.parse(text);
    return false;
  } catch {
    return true;
  }
}

const POISONED = [
  '{"__proto__":{"polluted":1}}',
  '{"a":[1,[{"__proto__":1}]]}',
  '{"point":{"x":{"shape":[1],"data":[1]},"__proto__":{}}}',
  '{"\\u005f_proto__":{}}',
  '{"__pro\\u0074o__":1}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"a":{"constructor":{"prototype":null}}}',
  '[{"constructor":{"\\u0070rototype":1}}]',
];
const CLEAN = [
  '{"constructor":1}',
  '{"constructor":{"x":1}}',
  '{"constructor":{"x":{"prototype":1}}}',
  '{"proto":{},"_proto_":1,"__proto":2}',
  '{"a":"__proto__","b":["constructor","prototype"]}',
  '"__proto__"',
  "[]",
];

describe("refusing poisoned keys on the worker", () => {
  it("refuses what secure-json-parse refuses, escaped or nested, and nothing else", () => {
    for (const text of POISONED) {
      expect(libraryRefuses(text), text).toBe(true);
      expect(splitRefuses(text), text).toBe(true);
    }
    for (const text of CLEAN) {
      expect(libraryRefuses(text), text).toBe(false);
      expect(splitRefuses(text), text).toBe(false);
    }
  });

  it("agrees with secure-json-parse on random JSON where the dangerous keys may be anywhere", () => {
    const key = fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "x"), fc.string({ maxLength: 3 }));
    const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
      tree: fc.oneof(
        { depthSize: "small" },
        fc.integer(),
        fc.string({ maxLength: 4 }),
        fc.array(tie("tree"), { maxLength: 3 }),
        fc.array(fc.tuple(key, tie("tree")), { maxLength: 3 }).map((pairs) => {
          const o: Record<string, unknown> = {};
          for (const [k, v] of pairs) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
          return o;
        }),
      ),
    }));
    fc.assert(
      fc.property(tree, (value) => {
        const text = JSON.stringify(value);
        if (text === undefined) return;
        expect(splitRefuses(text)).toBe(libraryRefuses(text));
      }),
      { numRuns: 2000 },
    );
  });

  it("walks an array of a million numbers without a stack or a key per element", () => {
    const big = { point: { x: { shape: [1_000_000], data: new Array(1_000_000).fill(0.5) } } };
    expect(() => refusePoisonedKeys(big)).not.toThrow();
    expect(() => refusePoisonedKeys({ ...big, extra: [big, [JSON.parse('{"__proto__":1}')]] })).toThrow(SyntaxError);
  });
});

describe("moving a large body's tensors out of the JSON", () => {
  const f64 = Float64Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
  const f32 = Float32Array.from({ length: 7 }, (_, i) => i / 3);
  const base64 = (a: Float64Array | Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  const body = {
    function: { expression: "sum(a)+sum(b)+sum(c)" },
    point: {
      a: { shape: [10, 100], dtype: "float64", base64: base64(f64) },
      b: { shape: [7], dtype: "float32", base64: base64(f32) },
      c: { shape: [3], data: [1.5, -2, 1e-300] },
      // Its length promises 16 bytes, but the decoder skips the "*": 15 come out, so it stays as written
      // for the service to refuse in its own words.
      bad: { shape: [2], base64: "AAAAAAAAAA*AAAAAAAAAAA==" },
      // Declares more than it holds.
      short: { shape: [3], base64: base64(f64.subarray(0, 2)) },
    },
  };

  function bytesOf(split: ReturnType<typeof splitJsonBody>, name: string): Uint8Array {
    const t = (split.header as { point: Record<string, { binary: { offset: number; length: number } }> }).point[name];
    return (split.binary as Uint8Array).subarray(t.binary.offset, t.binary.offset + t.binary.length);
  }

  for (const offered of [false, true]) {
    it(`writes each tensor's bytes exactly, 8-byte aligned, ${offered ? "into the memory offered" : "into new memory"}, and leaves the malformed ones as written`, () => {
      const memory = offered ? new Uint8Array(new SharedArrayBuffer(64 * 1024)) : undefined;
      const split = splitText(JSON.stringify(body), memory);
      expect(split.inOffered).toBe(offered);
      expect(split.binary?.buffer).toBeInstanceOf(SharedArrayBuffer);
      if (offered) expect(split.binary?.buffer).toBe(memory?.buffer);
      expect(Buffer.from(bytesOf(split, "a")).equals(Buffer.from(f64.buffer))).toBe(true);
      expect(Buffer.from(bytesOf(split, "b")).equals(Buffer.from(f32.buffer))).toBe(true);
      expect(Array.from(new Float64Array(Uint8Array.from(bytesOf(split, "c")).buffer))).toEqual([1.5, -2, 1e-300]);
      const point = (split.header as { point: Record<string, { binary?: { offset: number } }> }).point;
      for (const name of ["a", "b", "c"]) expect((point[name].binary?.offset ?? -1) % 8).toBe(0);
      expect(point.bad).toEqual(body.point.bad);
      expect(point.short).toEqual(body.point.short);
    });
  }

  it("takes new memory when the offered memory is too small", () => {
    const split = splitText(JSON.stringify(body), new Uint8Array(new SharedArrayBuffer(64)));
    expect(split.inOffered).toBe(false);
    expect(Buffer.from(bytesOf(split, "a")).equals(Buffer.from(f64.buffer))).toBe(true);
  });

  it("reads the body's text as UTF-8, and ASCII as the same text made faster", () => {
    const named = { point: { "héllo ∇": 1 }, note: "ascii only" };
    const utf8 = Buffer.from(JSON.stringify(named));
    expect(jsonText(new Uint8Array(utf8))).toBe(JSON.stringify(named));
    const ascii = Buffer.from(JSON.stringify({ point: { x: 1 } }));
    expect(jsonText(ascii)).toBe(ascii.toString("utf8"));
    expect(splitText(`\ufeff${JSON.stringify(named)}`).header).toEqual(named);
  });
});

describe("lifting long base64 strings out of the text before parsing it", () => {
  const f64 = Float64Array.from({ length: 600 }, (_, i) => Math.cos(i) / 7);
  const long = Buffer.from(f64.buffer).toString("base64");
  const other = Buffer.from(Float64Array.from({ length: 700 }, (_, i) => i).buffer).toString("base64");

  /**
   * The split's header with each moved tensor's bytes put back as base64 (and the dtype it gains,
   * float64, dropped): what the client wrote, when nothing went wrong.
   */
  function unsplit(split: ReturnType<typeof splitJsonBody>): unknown {
    return JSON.parse(JSON.stringify(split.header), (_key, value) => {
      const ref = (value as { binary?: { offset: number; length: number } } | null)?.binary;
      if (ref === undefined || split.binary === undefined || typeof value !== "object") return value;
      const { binary: _, dtype: __, ...rest } = value as Record<string, unknown>;
      return { ...rest, base64: Buffer.from(split.binary.subarray(ref.offset, ref.offset + ref.length)).toString("base64") };
    });
  }

  /** Every base64 string as what it decodes to, encoded again. */
  function canonical(value: unknown): unknown {
    return JSON.parse(JSON.stringify(value), (key, v) =>
      key === "base64" && typeof v === "string" ? Buffer.from(v, "base64").toString("base64") : v,
    );
  }

  it("moves a long tensor and leaves every other long base64 string exactly as written, wherever it is", () => {
    const stand = `${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}:0`;
    const body = {
      function: { expression: "sum(a)", base64: other },
      point: {
        a: { shape: [600], base64: long },
        // Declares more than it holds, and holds a character the decoder skips: both stay for the service.
        wrong: { shape: [601], base64: long },
        skipped: { shape: [600], base64: `${long.slice(0, 100)}*${long.slice(101)}` },
      },
      extra: [{ base64: other }, { note: `"base64":"${other}` }, { base64: stand }],
    };
    const text = JSON.stringify(body);
    const split = splitText(text, new Uint8Array(new SharedArrayBuffer(64 * 1024)));
    const point = (split.header as { point: Record<string, unknown> }).point;
    expect(point.a).toEqual({ shape: [600], dtype: "float64", binary: { offset: 0, length: 4800 } });
    expect(Buffer.from((split.binary as Uint8Array).subarray(0, 4800)).equals(Buffer.from(f64.buffer))).toBe(true);
    expect(unsplit(split)).toEqual(body);
  });

  it("refuses a long base64 string with a raw control character, as JSON.parse does", () => {
    for (const where of ["point", "note"]) {
      const text = `{"${where}":{"a":{"shape":[600],"base64":"${long.slice(0, 50)}\n${long.slice(50)}"}}}`;
      expect(parseRefuses(text)).toBe(true);
      expect(() => splitText(text)).toThrow(SyntaxError);
    }
  });

  it("parses a body exactly as JSON.parse does after any one character is changed, added or removed", () => {
    const text = JSON.stringify({
      point: { a: { shape: [600], base64: long } },
      note: { base64: other },
      s: `x"base64":"y\\`,
      t: ["base64", { base64: long }],
    });
    // Half the edits land on the text around the strings (quotes, colons, backslashes), half anywhere.
    const structural = [...text].flatMap((c, i) => (/[A-Za-z0-9+/=]/.test(c) ? [] : [i]));
    const position = fc.oneof(fc.constantFrom(...structural), fc.nat(text.length - 1));
    const edit = fc.tuple(
      position,
      fc.constantFrom("insert", "replace", "remove"),
      fc.constantFrom('"', "\\", ":", " ", "A", "\n", "}", ","),
    );
    fc.assert(
      fc.property(edit, ([at, how, c]) => {
        const edited = text.slice(0, at) + (how === "remove" ? "" : c) + text.slice(how === "insert" ? at : at + 1);
        expect(splitRefuses(edited), edited.slice(Math.max(0, at - 20), at + 20)).toBe(parseRefuses(edited));
        if (parseRefuses(edited)) return;
        const split = splitText(edited);
        const parsed = JSON.parse(edited) as unknown;
        // A moved tensor is its bytes: compare what both decode to (the decoder skips what is not base64).
        expect(canonical(unsplit(split))).toEqual(canonical(parsed));
        // Nothing outside the point is moved, so it comes back exactly as written.
        if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
          const { point: _, ...rest } = split.header as Record<string, unknown>;
          const { point: __, ...expected } = parsed as Record<string, unknown>;
          expect(rest).toEqual(expected);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe("decoding a long lifted string where it lies in the body, piece by piece", () => {
  // 320,000 characters: five of the decoder's pieces.
  const values = Float64Array.from({ length: 30_000 }, (_, i) => Math.sin(i) * 1e3);
  const long = Buffer.from(values.buffer).toString("base64");
  const declared = values.byteLength;
  const PIECE = DECODE_PIECE;

  /** What the service makes of the string as the parser gives it: its bytes when its bound and its decoding are the declared length. */
  function wholeString(text: string): Buffer | undefined {
    if (Buffer.byteLength(text, "base64") !== declared) return undefined;
    const into = Buffer.alloc(declared);
    return into.write(text, "base64") === declared ? into : undefined;
  }

  it("moves exactly what decoding the whole string moves, whatever character is added or changed, and wherever", () => {
    const nearPieceEnds = [1, 2, 3, 4].flatMap((k) => [k * PIECE - 1, k * PIECE, k * PIECE + 1]);
    const at = fc.oneof(fc.constantFrom(...nearPieceEnds, long.length - 2, long.length - 1), fc.nat(long.length - 1));
    const character = fc.constantFrom(" ", "*", "=", "-", "_", "A", "é", "∇", "\t");
    fc.assert(
      fc.property(at, character, fc.boolean(), (where, c, insert) => {
        const edited = long.slice(0, where) + c + long.slice(insert ? where : where + 1);
        const body = { point: { a: { shape: [values.length], base64: edited } }, note: "héllo" };
        const split = splitText(JSON.stringify(body), new Uint8Array(new SharedArrayBuffer(256 * 1024)));
        const expected = wholeString(edited);
        const header = split.header as { point: { a: unknown }; note: string };
        expect(header.note).toBe("héllo");
        if (expected === undefined) {
          expect(header.point.a).toEqual(body.point.a);
          return;
        }
        expect(header.point.a).toEqual({ shape: [values.length], dtype: "float64", binary: { offset: 0, length: declared } });
        expect(Buffer.from((split.binary as Uint8Array).subarray(0, declared)).equals(expected)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it("decodes an unedited string to the client's numbers exactly, with UTF-8 text around it", () => {
    const body = { point: { "∇ héllo": { shape: [values.length], base64: long } }, function: { expression: "sum(∇)" } };
    const split = splitText(`\ufeff${JSON.stringify(body)}`);
    const moved = (split.header as { point: Record<string, { binary: { offset: number; length: number } }> }).point["∇ héllo"];
    const bytes = (split.binary as Uint8Array).slice(moved.binary.offset, moved.binary.offset + moved.binary.length);
    expect(Array.from(new Float64Array(bytes.buffer))).toEqual(Array.from(values));
    expect((split.header as { function: unknown }).function).toEqual(body.function);
  });

  it("refuses a raw control character anywhere in it, as JSON.parse does", () => {
    for (const where of [10, PIECE - 1, PIECE, 3 * PIECE + 7, long.length - 1]) {
      const text = `{"point":{"a":{"shape":[${values.length}],"base64":"${long.slice(0, where)}\u0001${long.slice(where)}"}}}`;
      expect(parseRefuses(text)).toBe(true);
      expect(() => splitText(text), String(where)).toThrow(SyntaxError);
    }
  });
});
