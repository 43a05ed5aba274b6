#!/bin/sh
# A destination for benchmarks only, whose own cost is as low as a destination's can
# be: it drops every record and echoes each STATE line (grep, no JSON parse), so a host
# is measured rather than the destination. It does not check its input; a record whose
# data held the text "type":"STATE" would be echoed too. Never use it for data.
case "$1" in
  spec)
    echo '{"type":"SPEC","spec":{"connectionSpecification":{"type":"object","properties":{}},"supported_destination_sync_modes":["append","overwrite"]}}' ;;
  check)
    echo '{"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED"}}' ;;
  write)
    grep -F --line-buffered '"type":"STATE"'
    status=$?
    # grep exits 1 when nothing matched: no state is not a failure.
    [ "$status" -le 1 ] || exit "$status" ;;
  *)
    echo "usage: $0 spec|check|write [--config F] [--catalog F]" >&2
    exit 2 ;;
esac
