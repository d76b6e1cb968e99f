#!/usr/bin/env bash
# Post-deploy check (staging/prod): `pulumi up` starts each Auto Scaling
# group's instance refresh and returns. Waits for the latest refresh of each
# group to end and fails unless it succeeded: with AutoRollback a refresh
# whose new instances fail (their alarms fire) rolls back, and the stack's
# state still says the new version.
#
#   scripts/check-refresh.sh <stack> [timeout-seconds]
#
# Needs the Pulumi CLI (for the group names) and the AWS CLI v2.
set -euo pipefail

stack="${1:?usage: scripts/check-refresh.sh <stack> [timeout-seconds]}"
timeout="${2:-1800}"
interval="${CHECK_REFRESH_INTERVAL:-15}"

groups=()
for out in webAsgName apiAsgName; do
  if name=$(pulumi stack output "$out" --stack "$stack" 2>/dev/null) && [ -n "$name" ]; then
    groups+=("$name")
  fi
done
if [ "${#groups[@]}" -eq 0 ]; then
  echo "check-refresh: stack $stack has no Auto Scaling groups (the single shape replaces its instances instead)"
  exit 0
fi

deadline=$(( $(date +%s) + timeout ))
failed=0
for group in "${groups[@]}"; do
  while :; do
    status=$(aws autoscaling describe-instance-refreshes --auto-scaling-group-name "$group" \
      --max-records 1 --query 'InstanceRefreshes[0].Status' --output text)
    case "$status" in
      None|"")
        echo "check-refresh: $group: no instance refresh (nothing to roll)"
        break ;;
      Successful)
        echo "check-refresh: $group: the latest instance refresh succeeded"
        break ;;
      Pending|InProgress|Cancelling|RollbackInProgress|Baking)
        if [ "$(date +%s)" -ge "$deadline" ]; then
          echo "check-refresh: $group: still $status after ${timeout}s" >&2
          failed=1
          break
        fi
        sleep "$interval" ;;
      *)
        # Failed, Cancelled, RollbackSuccessful, RollbackFailed: the new
        # version is not what runs, whatever the stack's state says.
        reason=$(aws autoscaling describe-instance-refreshes --auto-scaling-group-name "$group" \
          --max-records 1 --query 'InstanceRefreshes[0].StatusReason' --output text)
        echo "check-refresh: $group: the latest instance refresh ended $status: $reason" >&2
        echo "check-refresh: see docs/operations.md; roll forward with a fixed build, or \`pulumi refresh\` to record what runs" >&2
        failed=1
        break ;;
    esac
  done
done
exit "$failed"
