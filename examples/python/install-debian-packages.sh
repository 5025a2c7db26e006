#!/bin/sh
# The Debian packages the Python examples use (run as root; does nothing when all are there):
# python3-requests for REST; python3-grpcio and python3-protobuf for gRPC, with protoc
# (protobuf-compiler), grpc_python_plugin (protobuf-compiler-grpc) and google/protobuf/struct.proto
# (libprotobuf-dev) to generate the stubs; python3-numpy and python3-scipy for the optimiser;
# python3-pytest, python3-venv and python3-setuptools to install and test clients/python.
set -eu
PACKAGES="python3 python3-requests python3-grpcio python3-protobuf python3-numpy python3-scipy protobuf-compiler protobuf-compiler-grpc libprotobuf-dev python3-pytest python3-venv python3-setuptools"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
