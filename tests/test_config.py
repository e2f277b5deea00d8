"""The detector TOML: [detector] and [clusters] tables, unknown keys an error."""
import pickle

import pytest

from distillguard.models.config import ClusterConfig, DetectorConfig, load_config
from distillguard.models.pipeline import CrossAccountPipeline


def test_defaults_without_a_file():
    assert load_config(None) == DetectorConfig()
    assert load_config(None).clusters == ClusterConfig()


def test_clusters_table_overrides_and_reaches_every_stage(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[detector]\nmedium = 0.55\n\n[clusters]\nlink_threshold = 0.8\nsync_ms = 5000\n'
                    'base_weight = { net = 0.3 }\nlow_tiers = ["", "free"]\n')
    cfg = load_config(path)
    assert cfg.medium == 0.55 and cfg.clusters.link_threshold == 0.8
    assert cfg.clusters.base_weight == {**ClusterConfig().base_weight, "net": 0.3}
    assert cfg.clusters.low_tiers == (None, "free")
    cross = pickle.loads(pickle.dumps(CrossAccountPipeline(cfg)))   # what replay --jobs 2 sends
    assert cross.linker.cfg.sync_ms == cross.observer.cfg.sync_ms == cross.clusters.engine.cc.sync_ms == 5000


@pytest.mark.parametrize("text, message", [
    ("[clusters]\nlink_treshold = 0.8\n", "unknown clusters setting(s) ['link_treshold']"),
    ("[clusters]\nbase_weight = { card = 0.5 }\n", "unknown clusters.base_weight setting(s) ['card']"),
    ("[detector]\nclusters = 1\n", "unknown detector setting(s) ['clusters']"),
    ("[cluster]\nsync_ms = 1\n", "unknown table(s) ['cluster']"),
])
def test_unknown_keys_are_an_error(tmp_path, text, message):
    path = tmp_path / "d.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config(path)
