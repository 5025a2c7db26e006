import type { FunctionSpec } from "../service/types.js";

/** A registered function's definition, and the bytes it is estimated to hold once compiled (for the byte budgets). */
export interface SharedSpec {
  readonly spec: FunctionSpec;
  readonly bytes: number;
}

/**
 * What the processes of a clustered adjoint say to each other over the cluster's IPC channel
 * (structured clone: a spec's typed arrays cross as they are). A member asks, the primary answers
 * with the same `request` number.
 */
export type MemberMessage =
  /** A function a client registered on this member: every member must know its id before the client hears of it. */
  | {
      readonly type: "adjoint:register";
      readonly request: number;
      readonly id: string;
      readonly spec: FunctionSpec;
      readonly bytes: number;
    }
  /** Every function registered so far, asked for once, before the member takes traffic. */
  | { readonly type: "adjoint:snapshot"; readonly request: number }
  /** The whole service's metrics (prom-client's aggregation over every member). */
  | { readonly type: "adjoint:metrics"; readonly request: number }
  /** This member is listening. */
  | { readonly type: "adjoint:serving"; readonly httpPort: number; readonly grpcPort: number };

export type PrimaryMessage =
  | { readonly type: "adjoint:reply"; readonly request: number; readonly error?: string; readonly text?: string }
  | { readonly type: "adjoint:snapshot-reply"; readonly request: number; readonly specs: readonly (readonly [string, SharedSpec])[] }
  /** A function registered on another member, to be kept before the primary confirms the registration. */
  | { readonly type: "adjoint:learn"; readonly request: number; readonly id: string; readonly spec: FunctionSpec; readonly bytes: number };

/** The member's confirmation of `adjoint:learn`. */
export interface LearnedMessage {
  readonly type: "adjoint:learned";
  readonly request: number;
}

export function isAdjointMessage(m: unknown): m is { type: string; request?: number } {
  return (
    typeof m === "object" &&
    m !== null &&
    typeof (m as { type?: unknown }).type === "string" &&
    (m as { type: string }).type.startsWith("adjoint:")
  );
}
