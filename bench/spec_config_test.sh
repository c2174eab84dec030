#!/usr/bin/env bash
# Reference only: the spec's Makefile target `smtp-out-config-test` (run part), transcribed so
# the benchmark can time its fixed `sleep 5` against `invoke config-test`. As the spec wrote it,
# it mounts no certificate or DKIM key, so on this image it reports FAIL: that is the spec's
# known defect; the benchmark measures its time to a verdict.
# Usage: IMAGE=smtp-out bench/spec_config_test.sh
image=${IMAGE:-smtp-out}
name=smtp-out-test-$$
docker run --rm -d --name "$name" --label smtp-out.tools=1 --network none \
  -e POSTFIX_myhostname=test.local "$image" >/dev/null
sleep 5
errors=$(docker logs "$name" 2>&1 | grep -iE "error|warning|fatal|crit" | grep -v "warning: SASL")
docker stop -t 1 "$name" >/dev/null 2>&1 || true
if [ -n "$errors" ]; then
  echo "❌ Configuration validation FAILED - errors/warnings found:"
  echo "$errors"
  exit 1
fi
echo "✅ Configuration validation PASSED"
