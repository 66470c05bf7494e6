"""Identities that cannot merge (issue 24 item 5): a site, server or rule name that would
become another's once made safe for object keys, or that another already has, is refused
with one line naming it; retention rules are addressed per site."""

from __future__ import annotations

import pytest

from ev_ingest.store.keys import safe_part
from pipelines.config import ConfigError, PipelineConfig, load_config


def config(*sites: tuple[str, list[str]], **retention: object) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sites": [{"name": name, "servers": [{"name": s} for s in servers]} for name, servers in sites],
            "retention": {"days": 30, **retention},
        }
    )


@pytest.mark.parametrize(
    ("sites", "error"),
    [
        ([("HQ", ["nvr1"]), ("HQ.", ["nvr2"])], "may not begin or end"),  # both would be site=HQ
        ([("HQ", ["nvr1"]), ("_HQ", ["nvr2"])], "may not begin or end"),
        ([("H..Q", ["nvr1"])], "may not begin or end"),
        ([("HQ", ["nvr1"]), ("HQ", ["nvr2"])], "two sites are named 'HQ'"),
        ([("HQ", ["nvr1", "nvr1"])], "two servers are named 'nvr1'"),
        ([("HQ", ["nvr1", "nvr1."])], "may not begin or end"),
    ],
)
def test_names_that_would_merge_are_refused(sites, error) -> None:
    with pytest.raises(ValueError, match=error):
        config(*sites)


def test_every_accepted_name_is_its_own_key_segment() -> None:
    """The config's rule and the keys' rule agree: safe_part never changes an accepted name."""
    for name in ["HQ", "nvr-1", "a.b", "x_y", "Site.2026", "0", "a-b.c_d"]:
        assert config((name, [name])).sites[0].name == safe_part(name) == name


def test_retention_rules_are_addressed_by_site() -> None:
    # Site B's camera 1 must get B's 365 days, not a rule written for site A's server of the same name.
    two = [("A", ["nvr1"]), ("B", ["nvr1"])]
    policy = config(*two, sites={"B": {"days": 365}}, cameras={"A/nvr1/1": {"days": 7}}).retention
    assert policy.rule_for("B", "nvr1", 1) == ("GOVERNANCE", 365)
    assert policy.rule_for("A", "nvr1", 1) == ("GOVERNANCE", 7)
    assert config(*two, servers={"B/nvr1": {"days": 90}}).retention.rule_for("B", "nvr1", 1)[1] == 90
    with pytest.raises(ValueError, match="sites A, B each have a server 'nvr1'"):
        config(*two, cameras={"nvr1/1": {"days": 7}})
    with pytest.raises(ValueError, match="sites A, B each have a server 'nvr1'"):
        config(*two, servers={"nvr1": {"days": 7}})
    with pytest.raises(ValueError, match="no server 'nvr9' in site 'A'"):
        config(*two, cameras={"A/nvr9/1": {"days": 7}})
    with pytest.raises(ValueError, match="no site 'C'"):
        config(*two, sites={"C": {"days": 7}})
    # One site: the short form still works.
    assert config(("HQ", ["nvr1"]), cameras={"nvr1/1": {"days": 9}}).retention.rule_for("HQ", "nvr1", 1)[1] == 9


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "sites:\n  - name: HQ\n    servers: [{name: nvr1}]\nretention: {days: 7, days: 365}\n"),
        (".json", '{"sites": [{"name": "HQ", "servers": [{"name": "nvr1"}]}], "sites": []}'),
    ],
)
def test_a_key_given_twice_is_refused_in_one_line(tmp_path, suffix, text) -> None:
    path = tmp_path / f"ev{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match="given twice") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)
