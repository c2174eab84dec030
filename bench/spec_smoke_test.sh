#!/usr/bin/env bash
# Reference only: the spec's Makefile target `smtp-out-smoke-test`, transcribed to a script
# (Make's $$ became $) so the benchmark can time it against `invoke smoke-test` on the same
# container. Kept as the spec wrote it, including its two known defects: the queue check
# tests /var/spool/postfix/queue (absent on Debian) and `echo QUIT | nc` pipelines SMTP.
# Usage: CONTAINER=name PORT=port bench/spec_smoke_test.sh
container=${CONTAINER:-smtp-out}
echo "=== SMTP-OUT SMOKE TEST: $container ==="
echo ""
failed=0

check() { # NAME, then a command whose success means PASS
  local name="$1"; shift
  echo -n "✓ $name... "
  if "$@"; then echo "PASS"; else echo "FAIL"; failed=$((failed + 1)); fi
}

check "Container running" bash -c "docker ps --filter 'name=$container' --format '{{.Names}}' | grep -q '^$container\$'"
check "Postfix master process" bash -c "docker exec $container pgrep -x master > /dev/null"
check "OpenDKIM process" bash -c "docker exec $container pgrep -x opendkim > /dev/null"
check "OpenDKIM milter socket (8891)" bash -c "docker exec $container netstat -tln | grep -q ':8891'"
port=${PORT:-1587}
check "Port 587 accessible" bash -c "timeout 2 bash -c \"echo 'QUIT' | nc -w 1 localhost $port\" 2>/dev/null | grep -q '220'"
check "TLS configured" bash -c "docker exec $container postconf smtpd_use_tls | grep -q '= yes'"
check "IPv4 preference" bash -c "docker exec $container postconf smtp_address_preference | grep -q '= ipv4'"
check "Hostname (feedsubscription.com)" bash -c "docker exec $container postconf myhostname | grep -q '= feedsubscription.com'"
check "Virtual alias domains" bash -c "docker exec $container postconf virtual_alias_domains | grep -q '= feedsubscription.com'"
check "Transport maps" bash -c "docker exec $container postconf transport_maps | grep -q 'texthash:/etc/postfix/transport'"
check "DKIM milter configured" bash -c "docker exec $container postconf smtpd_milters | grep -q 'inet:127.0.0.1:8891'"
check "Queue directory writable" bash -c "docker exec $container test -w /var/spool/postfix/queue"
echo -n "✓ No errors in logs since boot... "
if docker logs "$container" 2>&1 | grep -iE "error|fatal|crit" | grep -vE "warning: SASL|Permission denied" > /dev/null; then
  echo "FAIL (errors found in logs)"; failed=$((failed + 1))
else
  echo "PASS"
fi
check "DKIM selector (mail)" bash -c "docker exec $container grep -q '^Selector.*mail' /etc/opendkim/opendkim.conf"

echo ""
if [ "$failed" -eq 0 ]; then
  echo "=== ✅ ALL TESTS PASSED ==="; exit 0
else
  echo "=== ❌ $failed TEST(S) FAILED ==="; exit 1
fi
