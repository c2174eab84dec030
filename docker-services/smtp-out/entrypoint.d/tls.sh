# shellcheck shell=bash disable=SC2034,SC2153 # the stages share their variables (entrypoint.sh sources them all)
# Stage 4, TLS: the mounted certificate chain and key exist, are PEM, and match each other.
# Needs openssl only (tests/unit/test_entrypoint_tls.py runs it on the host).

: "${CERT:=$CONF_DIR/cert/smtp.cert}"
: "${CERT_KEY:=$CONF_DIR/cert/smtp.key}"

check_tls() {
  [ -f "$CERT" ] || fail "$CERT: TLS certificate not found (mount fullchain.pem there)"
  [ -f "$CERT_KEY" ] || fail "$CERT_KEY: TLS key not found (mount privkey.pem there)"
  local cert_out cert_pub key_pub expired=no
  # One openssl run for both questions (each costs ~20 ms): -checkend fails when expired.
  cert_out=$(openssl x509 -noout -pubkey -checkend 0 -in "$CERT" 2>/dev/null) || expired=yes
  cert_pub=$(printf '%s\n' "$cert_out" | sed -n '/-BEGIN PUBLIC KEY-/,/-END PUBLIC KEY-/p')
  [ -n "$cert_pub" ] || fail "$CERT: not a PEM certificate"
  key_pub=$(openssl pkey -pubout -in "$CERT_KEY" 2>/dev/null) \
    || fail "$CERT_KEY: not a readable PEM private key"
  [ "$cert_pub" = "$key_pub" ] || fail "$CERT_KEY: does not match the certificate in $CERT"
  if [ "$expired" = yes ]; then
    log "WARNING: $CERT has expired; clients that verify it will refuse STARTTLS"
  fi
}
