"""drugjax.accounts: each feature on hand-made timelines, and the synthetic world's shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drugjax.accounts import (FEATURE_NAMES, AccountFeatures, Blacklist, BlacklistError, account_table,
                              attach_timelines, hour_bin, with_known)


def post(pid, ts="2016-03-01T12:00:00+00:00", caption="", comments=(), drug=1):
    return {"id": pid, "timestamp": ts, "caption": caption, "comments": list(comments), "drug": drug, "tags": []}


def by_label(posts):
    """Post probability = its hand-set label (1 drug-related, 0 not)."""
    return np.array([float(p["drug"]) for p in posts])


def account(timeline, bio="", followers=100, following=10, name="a"):
    return {"username": name, "bio": bio, "followers": followers, "following": following, "timeline": timeline}


BL = Blacklist.from_terms(["dm to order", "hmu", "plug", "🔌", "cashapp"], {"phone number": r"\+?\d[\d ().-]{7,}\d"})


def table(accounts, **kw):
    return account_table(accounts, by_label, blacklist=BL, **kw)


def test_share_of_drug_posts_uses_the_threshold():
    acc = account([post("1", drug=1), post("2", drug=0), post("3", drug=0), post("4", drug=0)])
    assert table([acc]).features[0, FEATURE_NAMES.index("P")] == 0.25
    half = account_table([acc], lambda ps: np.full(len(ps), 0.5), blacklist=BL, threshold=0.5)
    assert half.features[0, 0] == 1.0  # >= threshold counts
    assert account_table([acc], lambda ps: np.full(len(ps), 0.5), blacklist=BL, threshold=0.6).features[0, 0] == 0.0


@pytest.mark.parametrize("hour, expected", [(0, 0), (5, 0), (6, 1), (11, 1), (12, 2), (17, 2), (18, 3), (23, 3)])
def test_hour_bin_boundaries(hour, expected):
    assert hour_bin(f"2016-03-01T{hour:02d}:59:59-05:00") == expected


def test_hours_are_read_in_the_posts_own_offset_and_utc_without_one():
    # 23:30 in New York is 04:30 UTC the next day: H4 in its own offset, not H1
    assert hour_bin("2016-03-01T23:30:00-05:00") == 3
    assert hour_bin("2016-03-02T04:30:00+00:00") == 0  # the same instant as a UTC-only client writes it
    assert hour_bin("2016-03-01T23:30:00") == 3  # no offset: taken as UTC


def test_hour_features_are_shares_of_drug_posts_only():
    acc = account([post("1", "2016-03-01T01:00:00+02:00"), post("2", "2016-03-01T02:00:00+02:00"),
                   post("3", "2016-03-01T19:00:00+02:00"), post("4", "2016-03-01T13:00:00+02:00", drug=0)])
    h = table([acc]).features[0, 1:5]
    np.testing.assert_allclose(h, [2 / 3, 0, 0, 1 / 3])
    assert np.flatnonzero(table([acc]).drug_hours[0]).tolist() == [1, 2, 19]
    assert table([account([post("1", drug=0)])]).features[0, 1:5].tolist() == [0, 0, 0, 0]


def test_relational_features_and_zero_followers():
    t = table([account([post("1")], followers=0, following=50), account([post("1")], followers=0, following=0),
               account([post("1")], followers=200, following=50)], log_counts=False)
    r = t.features[:, 5:8]
    assert r[0].tolist() == [0, 50, 50]  # following / max(followers, 1)
    assert r[1].tolist() == [0, 0, 0]
    assert r[2].tolist() == [200, 50, 0.25]
    assert t.problems["account with 0 followers and 0 following (R1-R3 are 0)"] == 1
    logged = table([account([post("1")], followers=200, following=50)])
    np.testing.assert_allclose(logged.features[0, 5:8], [math.log1p(200), math.log1p(50), math.log1p(0.25)])


def test_evidence_from_bio_and_drug_posts_only_with_context():
    acc = account([post("1", caption="fresh batch ＤＭ to order", comments=["need a plug", "nice"]),
                   post("2", caption="hmu for cakes +44 7700 900123", drug=0)],
                  bio="Call +1 (555) 123-4567 🔌")
    t = table([acc])
    assert t.features[0, FEATURE_NAMES.index("E")] == 1.0
    found = {(e.source, e.post_id, e.term) for e in t.evidence[0]}
    assert found == {("bio", None, "🔌"), ("bio", None, "phone number"), ("caption", "1", "dm to order"),
                     ("comment", "1", "plug")}  # post 2 is not drug-related: its hmu and phone are not read
    caption = next(e for e in t.evidence[0] if e.term == "dm to order")
    assert caption.context == "fresh batch dm to order"
    only_caption = account([post("1", caption="dm to order")])
    assert table([only_caption]).features[0, 8] == 0.0  # kept as evidence, not counted in E by default
    assert table([only_caption]).evidence[0][0].term == "dm to order"
    assert table([only_caption], evidence_sources=("bio", "caption", "comment")).features[0, 8] == 1.0
    assert not table([account([post("1", caption="unplugged acoustic set")])]).evidence[0]  # whole words


def test_evidence_context_is_cut_around_the_match():
    text = "x" * 50 + " hmu " + "y" * 50
    (e,) = BL.find(text, "bio")
    assert e.context.startswith("…") and e.context.endswith("…") and "hmu" in e.context
    assert len(e.context) == 2 * 30 + len("hmu") + 2


def test_bad_accounts_are_counted_not_fatal():
    accs = [account([], bio=""), {"username": "b", "followers": 3, "following": 1, "bio": "hmu",
                                  "timeline": [post("1"), post("1")]}]
    t = table(accs)
    assert t.features[0].tolist() == [0, 0, 0, 0, 0, math.log1p(100), math.log1p(10), math.log1p(0.1), 0]
    assert t.timeline_sizes.tolist() == [0, 1]
    assert t.features[1, 8] == 1.0  # the bio alone
    assert t.problems["account without timeline posts (P and H1-H4 are 0; E reads the bio only)"] == 1
    assert t.problems["account without a bio (E reads its drug-related posts only)"] == 1
    assert t.problems["duplicate post in a timeline (counted once)"] == 1


def test_orphan_timelines_are_counted():
    accs, problems = attach_timelines([{"username": "a", "bio": "", "followers": 1, "following": 1}],
                                      {"a": [post("1")], "ghost": [post("2"), post("3")]})
    assert [len(a["timeline"]) for a in accs] == [1]
    assert list(problems.values()) == [1] and "missing from the accounts" in next(iter(problems))


def test_known_probabilities_take_precedence_over_the_fallback():
    calls = []

    def fallback(posts):
        calls.append([p["id"] for p in posts])
        return np.full(len(posts), 0.9)

    prob = with_known({"1": 0.1}, fallback)([post("1"), post("2")])
    assert prob.tolist() == [0.1, 0.9] and calls == [["2"]]


def test_blacklist_file_loads_and_reports_bad_entries(tmp_path):
    bl = Blacklist.load()  # conf/blacklist.yaml
    assert {e.term for e in bl.find("dm to order, cashapp $kingpin 📦", "bio")} >= {"dm to order", "cashapp", "📦",
                                                                                    "cash app tag"}
    bad = tmp_path / "bl.yaml"
    bad.write_text("terms: [ok]\npatterns:\n  broken: '(unclosed'\n")
    with pytest.raises(BlacklistError, match="broken: not a regular expression"):
        Blacklist.load(bad)


def test_transformer_on_the_synthetic_world_separates_dealers():
    from drugjax.synthetic import world

    _, _, accs, timelines = world.plan("paper", 0)
    accs, problems = attach_timelines(accs, timelines)
    # the labelled 25 % of each timeline stand in for a classifier (unlabelled: not drug)
    features = AccountFeatures(probability=lambda ps: np.array([float(p["drug"] or 0) for p in ps]))
    x = features.fit_transform(accs)
    assert x.shape == (206, 9) and list(features.get_feature_names_out()) == list(FEATURE_NAMES)
    dealer = np.array([a["expert1"] for a in accs], bool)
    assert x[dealer, 0].mean() > x[~dealer, 0].mean()  # P
    assert x[dealer, 8].mean() > x[~dealer, 8].mean()  # E
    assert not problems
