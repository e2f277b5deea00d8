-- Grafana panel: Alerts over time by detector / severity
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    toStartOfInterval(raised_at, INTERVAL 5 MINUTE) AS time,
    concat(detector, ' / ', severity) AS detector_severity,
    count() AS alerts
FROM distillguard.alerts_latest FINAL
WHERE raised_at >= now() - INTERVAL 1 DAY
GROUP BY time, detector_severity
ORDER BY time
