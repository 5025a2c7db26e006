import fc from "fast-check";

/** Names a client may choose, the awkward ones included: keys Object.prototype knows, quotes, line separators, none. */
export const clientName = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.constantFrom("__proto__", "constructor", "toString", 'a"b', "é\n\u2028", ""),
);
