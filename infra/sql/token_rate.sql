-- Grafana panel: Token throughput (per interval)
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    toStartOfInterval(minute, INTERVAL 5 MINUTE) AS time,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens
FROM distillguard.account_minute
WHERE minute >= now() - INTERVAL 1 DAY
GROUP BY time
ORDER BY time
