-- Grafana panel: Account clusters by size
-- Same query as the panel in infra/grafana/dashboards/distillguard.json,
-- with $__timeFilter/$__timeInterval replaced by a fixed last-day window.
-- Plain SQL for `distillguard sql`.
SELECT
    cluster_id,
    uniqExact(account_id) AS accounts,
    max(updated_at) AS last_updated
FROM distillguard.cluster_members
WHERE updated_at >= now() - INTERVAL 1 DAY
GROUP BY cluster_id
ORDER BY accounts DESC
LIMIT 25
