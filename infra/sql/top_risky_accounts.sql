-- Grafana panel: Top risky accounts
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    arrayJoin(account_ids) AS account_id,
    count() AS alerts,
    round(sum(score), 3) AS total_score,
    round(max(score), 3) AS max_score,
    argMax(severity, score) AS worst_severity,
    groupUniqArray(detector) AS detectors,
    max(raised_at) AS last_alert
FROM distillguard.alerts_latest FINAL
WHERE raised_at >= now() - INTERVAL 1 DAY
GROUP BY account_id
ORDER BY total_score DESC, alerts DESC
LIMIT 25
