"Geolocation (H.4): great-circle distances against known city pairs and scikit-learn, kNN against scikit-learn, Country211 builder."
import numpy as np
import pandas as pd
import pytest

from clip_repro.geo import (COUNTRY211_SPLITS, IM2GPS_RADII_KM, build_country211, check_latlon, country_codes, geolocation_accuracy,
                            nearest_neighbour_geolocate, paper_table17, synthetic_photo_metadata)
from clip_repro.metrics import EARTH_RADIUS_KM, haversine_km

CITIES = {"london": (51.5074, -0.1278), "paris": (48.8566, 2.3522), "new_york": (40.7128, -74.0060),
          "los_angeles": (34.0522, -118.2437), "sydney": (-33.8688, 151.2093), "melbourne": (-37.8136, 144.9631)}


@pytest.mark.parametrize("a,b,km", [("london", "paris", 343.5), ("new_york", "los_angeles", 3935.7), ("sydney", "melbourne", 713.4)])
def test_known_city_pair_distances(a, b, km):
    from sklearn.metrics.pairwise import haversine_distances
    (la1, lo1), (la2, lo2) = CITIES[a], CITIES[b]
    d = float(haversine_km(la1, lo1, la2, lo2))
    assert d == pytest.approx(km, rel=2e-3)  # published great-circle figures for these city centres
    ref = haversine_distances(np.radians([[la1, lo1]]), np.radians([[la2, lo2]]))[0, 0] * EARTH_RADIUS_KM
    assert d == pytest.approx(ref, rel=1e-9)


def test_antipodes_and_threshold_edges():
    assert float(haversine_km(0, 0, 0, 180)) == pytest.approx(np.pi * EARTH_RADIUS_KM)
    km_per_deg = np.pi * EARTH_RADIUS_KM / 180
    true = np.zeros((2 * len(IM2GPS_RADII_KM), 2)) + [10.0, 20.0]
    pred = true.copy()
    for i, r in enumerate(IM2GPS_RADII_KM):  # one prediction just inside, one just outside each radius (due north)
        pred[2 * i, 0] += 0.99 * r / km_per_deg
        pred[2 * i + 1, 0] += 1.01 * r / km_per_deg
    acc = geolocation_accuracy(true, pred)
    n = len(pred)
    for i, r in enumerate(IM2GPS_RADII_KM):
        assert acc[r] == pytest.approx(100 * (2 * i + 1) / n)


def test_nearest_neighbour_matches_sklearn():
    from sklearn.neighbors import NearestNeighbors
    rng = np.random.default_rng(0)
    ref, q = rng.normal(size=(500, 32)), rng.normal(size=(60, 32)) * 3
    ll = np.c_[rng.uniform(-90, 90, 500), rng.uniform(-180, 180, 500)]
    pred, idx = nearest_neighbour_geolocate(q, ref, ll)
    ref_idx = NearestNeighbors(n_neighbors=1, metric="cosine").fit(ref).kneighbors(q, return_distance=False)[:, 0]
    assert np.array_equal(idx, ref_idx) and np.array_equal(pred, ll[ref_idx])
    with pytest.raises(ValueError, match="same D"): nearest_neighbour_geolocate(q[:, :5], ref, ll)
    with pytest.raises(ValueError, match="latitude"): nearest_neighbour_geolocate(q, ref, ll[:, ::-1])  # (lon, lat) by mistake


def test_country_codes_known_places():
    pts = [[48.5734, 7.7521],   # Strasbourg, France
           [48.5707, 7.8157],   # Kehl, Germany (5 km east across the Rhine)
           [46.2044, 6.1432],   # Geneva, Switzerland
           [42.6629, 21.1655],  # Pristina, Kosovo (XK, in OpenAI's Country211 classes)
           [-1.2921, 36.8219],  # Nairobi, Kenya
           [-30.0, -120.0],     # South Pacific, far from land
           [np.nan, np.nan]]    # no GPS
    assert country_codes(pts).tolist() == ["FR", "DE", "CH", "XK", "KE", "", ""]
    with pytest.raises(ValueError, match="latitude 100.0 outside"): country_codes([[100.0, 0.0]])


def _codes_meta(counts, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.concatenate([[c] * n for c, n in counts.items()])
    rng.shuffle(codes)
    meta = pd.DataFrame({"photo_id": np.arange(len(codes)), "latitude": 0.0, "longitude": 0.0})
    return meta, codes


def test_builder_balanced_seeded_and_disjoint():
    meta, codes = _codes_meta({"AD": 400, "AE": 310, "AF": 299, "ZW": 1000, "": 50})
    out = build_country211(meta, codes=codes, seed=1)
    assert sorted(out.country.unique()) == ["AD", "AE", "ZW"]  # AF has 299 < 300
    assert out.groupby("country").class_index.first().to_dict() == {"AD": 0, "AE": 1, "ZW": 2}
    assert (out.groupby(["country", "split"]).size().unstack()[list(COUNTRY211_SPLITS["published"])] ==
            pd.Series(COUNTRY211_SPLITS["published"])).all(axis=None)
    assert out.photo_id.is_unique and (codes[out.photo_id] == out.country).all()
    assert out.equals(build_country211(meta, codes=codes, seed=1))
    assert not out.photo_id.equals(build_country211(meta, codes=codes, seed=2).photo_id)
    app = build_country211(meta, codes=codes, splits="appendix")
    assert app.groupby("split").size().to_dict() == {"test": 300, "train": 600}
    # a country's draw does not depend on which other countries are present
    keep = codes != "AE"
    only = build_country211(meta[keep].reset_index(drop=True), codes=codes[keep], seed=1)
    for cc in ("AD", "ZW"):
        assert np.array_equal(out[out.country == cc].photo_id.to_numpy(), only[only.country == cc].photo_id.to_numpy())


def test_builder_errors():
    meta, codes = _codes_meta({"AD": 300})
    with pytest.raises(ValueError, match="need 300 photos per country but min_photos is 200"): build_country211(meta, 200, codes=codes)
    with pytest.raises(ValueError, match="no country has"): build_country211(meta, 400, codes=codes)
    with pytest.raises(KeyError, match="unknown split scheme"): build_country211(meta, codes=codes, splits="paper")
    with pytest.raises(KeyError, match="no column"): build_country211(meta.drop(columns="latitude"), codes=codes)
    bad = meta.copy(); bad.loc[3, "latitude"] = -91
    with pytest.raises(ValueError, match="latitude -91.0 outside"): build_country211(bad, codes=codes)
    with pytest.raises(ValueError, match="NaN"): check_latlon([[np.nan, 0]])


def test_builder_end_to_end_with_reverse_geocoding():
    meta = synthetic_photo_metadata(3000, seed=0)
    out = build_country211(meta, seed=0)
    assert sorted(out.country.unique()) == ["BR", "FR", "JP", "KE"]
    assert len(out) == 4 * 300


def test_table17():
    t = paper_table17()
    assert list(t.model) == ["ISNs", "CPlaNet", "CLIP", "Deep-Ret", "PlaNet"]
    means = t.filter(like="acc_").mean(axis=1).to_numpy()
    assert (np.diff(means) < 0).all()  # the caption's "ordered by average performance" holds
