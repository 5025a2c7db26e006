#!/bin/sh
# Regenerates the committed gRPC stubs (adjoint/v1/adjoint_pb2.py, adjoint_pb2_grpc.py) from the
# repository's proto/ with Debian's protoc (protobuf-compiler) and grpc_python_plugin
# (protobuf-compiler-grpc); google/protobuf/struct.proto comes from libprotobuf-dev. The generated
# files import `adjoint.v1`, which is why the package is named `adjoint`. tests/test_stubs.py fails
# when the committed files differ from what this writes. Usage: generate.sh [OUTPUT_DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
proto="$here/../../proto"
plugin=$(command -v grpc_python_plugin)
includes="-I$proto"
[ -f /usr/include/google/protobuf/struct.proto ] && includes="$includes -I/usr/include"
# shellcheck disable=SC2086
protoc $includes --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$plugin" adjoint/v1/adjoint.proto
