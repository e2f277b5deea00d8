-- Grafana panel: Dead-letter queue rate by reason
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    toStartOfInterval(minute, INTERVAL 5 MINUTE) AS time,
    reason,
    sum(count) AS events
FROM distillguard.dlq_minute
WHERE minute >= now() - INTERVAL 1 DAY
GROUP BY time, reason
ORDER BY time
