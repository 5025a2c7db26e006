import { invalid } from "./errors.js";

/**
 * Names chosen by clients (inputs, outputs, node ids, layers, attribute keys, the keys of points and
 * directions) are data, never property keys of an ordinary object: a name like `__proto__` written
 * into `{}` replaces the object's prototype, or through a nested record reaches Object.prototype
 * itself, and a name like `toString` read from `{}` finds the inherited method. Every record keyed by
 * a client's name is built with `record()` and read with `own()`.
 */

/**
 * Names no function may use. REST's JSON parser refuses bodies with `__proto__` and `constructor`
 * keys, so an input so named could never be given a value there; refusing them (and `prototype`)
 * where a function is defined keeps both transports answering alike.
 */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

/**
 * The prototype of every record: empty, frozen, itself without a prototype. Nothing is inherited
 * through it, and `__proto__` is an ordinary key beneath it. Records are made by a constructor over
 * it rather than by Object.create(null), which V8 keeps in slow dictionary mode: answers are built
 * from records, and that cost a fifth of the worked example's throughput.
 */
export const RECORD_PROTOTYPE: object = Object.freeze(Object.create(null));

const EmptyRecord = function (this: object) {} as unknown as new () => Record<string, never>;
(EmptyRecord as unknown as { prototype: object }).prototype = RECORD_PROTOTYPE;

/** An empty record: any string is an ordinary own key of it, none is inherited. */
export function record<T>(): Record<string, T> {
  return new EmptyRecord() as Record<string, T>;
}

/** A prototype-free record of the given entries (Object.fromEntries makes an ordinary object). */
export function recordOf<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out = record<T>();
  for (const [k, v] of entries) out[k] = v;
  return out;
}

/** The value of an own property, or undefined: a name never reads what an object inherits. */
export function own<T>(values: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(values, name) ? values[name] : undefined;
}

/** Refuses a reserved name where a function defines one; `field` says where in the request it is. */
export function checkName(name: string, field: string): string {
  if (RESERVED_NAMES.has(name)) {
    throw invalid(`${field}: the name ${name} is reserved (${[...RESERVED_NAMES].join(", ")} cannot name anything); choose another`, {
      field,
    });
  }
  return name;
}
