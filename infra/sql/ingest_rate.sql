-- Grafana panel: Ingest rate (requests and errors per interval)
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    toStartOfInterval(minute, INTERVAL 5 MINUTE) AS time,
    sum(requests) AS requests,
    sum(errors) AS errors
FROM distillguard.account_minute
WHERE minute >= now() - INTERVAL 1 DAY
GROUP BY time
ORDER BY time
