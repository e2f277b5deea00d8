"""The bench's report code (streams/bench.py) on small in-process inputs; the bench itself
runs on the real broker via `make bench`."""
import orjson

from distillguard.models.detector import DEV_KEY
from distillguard.streams.bench import bench_events, detector_stages, holds_every_partition, markdown, summarize, targets


def test_detector_stages_split_the_detector_time():
    lines = [orjson.dumps(ev) for ev in bench_events(300)]
    d = detector_stages(lines, DEV_KEY, runs=3, batch=100)
    assert d["events"] == 300
    stages = [d["parse_us"], d["account_stage_us"], d["cross_account_us"]]
    assert all(v > 0 for v in stages) and abs(sum(stages) - d["total_us"]) < 1e-6
    assert len(d["runs_us"]) == 3 and all(v > 0 for v in d["runs_us"])   # every fresh run kept


def test_the_report_has_faust_before_and_after_and_the_issue_15_targets():
    def consumer(eps, cpu):
        return {"eps": eps, "eps_runs": [eps], "cpu_us": cpu, "rss_mb": 100.0, "latency_ms": {}}
    micro = {"bytes_per_account": 2000, "bytes_per_account_p99": 2500, "bytes_per_account_max": 2600,
             "accounts": 10, "serialized_bytes_per_account": 2200, "features_state_us": 40.0, "parse_us": 10.0,
             "replay_eps": 5000, "replay_2jobs_eps": 7000, "replay_events": 100, "bytes_method": "x",
             "detector": {"parse_us": 10.0, "account_stage_us": 30.0, "cross_account_us": 15.0,
                          "total_us": 55.0, "runs_us": [57.5, 55.0, 54.0], "events": 100},
             "detector_python": {"parse_us": 20.0, "account_stage_us": 60.0, "cross_account_us": 30.0,
                                 "total_us": 110.0, "events": 100}}
    r = {"events": 1000, "partitions": 4, "rate_offered": 5000, "paced_events": 75000,
         "machine": {"cpus": 2, "python": "3.11"}, "micro": micro,
         "runs": {"micro": 1, "raw": 1, "faust": 1, "faust_stock": 1, "pipeline": 1, "pipeline_2workers": 1},
         "raw": consumer(100_000, 8), "faust_stock": consumer(7_000, 140), "faust": consumer(14_000, 70),
         "pipeline": {**consumer(8_000, 120), "latency_ms": {"p50": 300.0, "p99": 900.0}},
         "pipeline_2workers": {**consumer(15_000, 130), "rss_mb_each": [100.0, 90.0]}}
    s = summarize(r)
    assert s["ratio_faust_product_stock"] == 2.0 and s["ratio_faust_cpu_stock_product"] == 2.0
    met = {text: ok for text, _v, ok in targets(s)}
    assert met["bare Faust, product consumer ≥ 14,000 events/s"] is True
    assert met["detector in process (parse + all stages) ≤ 60 µs/event"] is True
    assert met["p99 ≤ 1,000 ms at 5k events/s offered"] is True
    text = markdown(r, s, [])
    assert "stock Faust (before)" in text and "product consumer" in text and "**55.0**" in text
    assert "(each stage the median of 3 fresh runs; their totals: 57.5, 55.0, 54.0)" in text
    assert "20.0 / 60.0 / 30.0 = 110.0 (compiled/Python x0.50)" in text and s["detector_python_us"] == 110.0


def test_workers_hold_every_partition_only_once_their_group_has_joined():
    assert holds_every_partition([[0, 2], [1, 3]], 4)
    assert holds_every_partition([[0, 1, 2, 3]], 4)
    assert not holds_every_partition([[0, 1, 2, 3], []], 4)        # the second has not joined yet
    assert not holds_every_partition([[0, 1, 2, 3], None], 4)      # no status page yet
    assert not holds_every_partition([[0, 1], [1, 2, 3]], 4)       # mid-rebalance: one partition twice
    assert not holds_every_partition([[0], [1, 2]], 4)             # one partition nobody holds
