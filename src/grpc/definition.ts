import { create, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, file_google_protobuf_struct } from "@bufbuild/protobuf/wkt";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer, loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { bufferView } from "../runtime/shared-memory.js";
import { file_adjoint_v1_adjoint } from "./gen/adjoint/v1/adjoint_pb.js";

/**
 * A grpc-js service definition from a protobuf-es v2 service descriptor: each method's path and
 * streaming kind from the descriptor, its messages (de)serialised with toBinary/fromBinary. Handlers
 * and clients then work with the generated message types.
 *
 * With `rawRequests` (the server's side), requests reach the handler as the received bytes: the
 * handler admits them by size before paying for decoding, and answers bytes that do not decode with
 * INVALID_ARGUMENT (grpc-js would say INTERNAL). A handler may also answer with bytes it serialised
 * itself (to check the answer's size first); they are sent as they are.
 */
export function grpcServiceDefinition(service: DescService, rawRequests = false): ServiceDefinition {
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    const kind = method.methodKind;
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      originalName: method.localName,
      requestStream: kind === "client_streaming" || kind === "bidi_streaming",
      responseStream: kind === "server_streaming" || kind === "bidi_streaming",
      requestSerialize: (m) => bufferView(toBinary(method.input, m as never)),
      requestDeserialize: rawRequests ? (b: Buffer) => b : (b) => fromBinary(method.input, b),
      responseSerialize: (m) => (m instanceof Uint8Array ? bufferView(m) : bufferView(toBinary(method.output, m as never))),
      responseDeserialize: (b) => fromBinary(method.output, b),
    };
  }
  return definition as ServiceDefinition;
}

/**
 * The package definition that server reflection serves, built from the very descriptors the generated
 * code embeds (so reflection cannot drift from the messages, and no .proto file of ours is read at run time).
 */
export function reflectionPackage(): PackageDefinition {
  const set = create(FileDescriptorSetSchema, { file: [file_google_protobuf_struct.proto, file_adjoint_v1_adjoint.proto] });
  const adjoint = loadFileDescriptorSetFromBuffer(bufferView(toBinary(FileDescriptorSetSchema, set)));
  // The health service is listed too, from the .proto file that grpc-health-check ships.
  return { ...adjoint, ...loadSync(healthProtoPath) };
}
