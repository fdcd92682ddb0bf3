#!/usr/bin/env bash
# Makes a development CA and certificates for TLS / mutual TLS between the two services.
#
#   deploy/tls/make-dev-certs.sh [DIR]        (default: deploy/tls/dev, which git ignores)
#
# Writes:
#   ca.pem, ca.key                     the development CA (keep ca.key private; re-run to rotate)
#   recommendations.pem, .key          server certificate, subjectAltNames: recommendations,
#                                      localhost, 127.0.0.1 (rustls checks SANs, never the CN)
#   marketplace.pem, .key              client certificate for mutual TLS
#
# For development only: the keys are made readable by the containers' non-root user (65532).
# Requires openssl.
set -euo pipefail
DIR=${1:-"$(cd "$(dirname "$0")" && pwd)/dev"}
DAYS=${DAYS:-365}
mkdir -p "$DIR"
cd "$DIR"

command -v openssl >/dev/null || { echo "make-dev-certs: openssl is needed" >&2; exit 1; }

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout ca.key -out ca.pem -days "$DAYS" -subj "/O=Bookshop development/CN=Bookshop dev CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null

leaf() { # leaf NAME EXTENDED_KEY_USAGE SUBJECT_ALT_NAMES
  local name=$1 usage=$2 sans=$3
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$name.key" -out "$name.csr" -subj "/O=Bookshop development/CN=$name" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$usage" "$sans" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$DAYS" \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
leaf recommendations serverAuth "DNS:recommendations,DNS:localhost,IP:127.0.0.1"
leaf marketplace clientAuth "DNS:marketplace"
rm -f ca.srl

# The containers run as 65532, not as you: let them read the files (development only).
chmod 0644 ./*.pem ./*.key
chmod 0600 ca.key
echo "make-dev-certs: wrote $(ls "$DIR" | tr '\n' ' ')in $DIR"
