"""Independent reference check of one abreport run.

Re-implements the contract's attribution (shared/contract.md) in pandas straight from the raw
Parquet partitions, then checks every number abreport wrote for an experiment:

  * allocation.parquet and units.parquet against the pandas attribution (exact; sums to 1e-12);
  * per-variant units, mean and variance against numpy (ddof=1) and, for ratio metrics,
    gbstats' RatioStatistic (delta method);
  * every comparison against scipy.stats.ttest_ind(equal_var=False) (p-value, absolute CI) and
    gbstats' TwoSidedTTest (absolute and relative CIs, with SampleMeanStatistic /
    RatioStatistic), at 1e-9 relative;
  * p_value_adjusted against statsmodels' multipletests (holm / fdr_bh);
  * the SRM p-value against scipy.stats.chisquare;
  * caps against numpy.percentile on the reference values, CUPED against gbstats'
    RegressionAdjustedStatistic (theta from compute_theta), always-valid intervals and p-values
    against gbstats' SequentialTwoSidedTTest, and the Bayesian view against gbstats'
    EffectBayesianABTest.

Usage: check_run.py JOB_TOML REPORT_DATE EXPERIMENT_ID OUTPUT_DIR
Prints one line per check group and exits 1 on the first mismatch, naming it.
"""
import json
import math
import sys
import tomllib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig, GaussianPrior
from gbstats.frequentist.tests import FrequentistConfig, SequentialConfig, SequentialTwoSidedTTest, TwoSidedTTest
from gbstats.models.statistics import RatioStatistic, RegressionAdjustedStatistic, SampleMeanStatistic, compute_theta
from scipy import stats
from statsmodels.stats.multitest import multipletests

REL = 1e-9


def fail(message):
    print("MISMATCH: " + message)
    sys.exit(1)


def close(actual, expected, what, rel=REL, abs_tol=1e-14):
    if expected is None or actual is None:
        if expected is not actual and not (expected is None and actual is None):
            fail(f"{what}: {actual!r} vs {expected!r}")
        return
    if not math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_tol):
        fail(f"{what}: abreport {actual!r} vs reference {expected!r}")


def read_partitions(root, dataset, first, last):
    frames = []
    day = first
    while day <= last:
        folder = root / dataset / f"date={day.isoformat()}"
        for file in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            frame = pq.read_table(file).to_pandas()
            frame["_date"] = day
            frames.append(frame)
        day += timedelta(days=1)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def to_micros(series):
    values = pd.to_datetime(series, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)


def main():
    job_path, report_date, experiment_id, out_dir = sys.argv[1], date.fromisoformat(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    job = tomllib.loads(Path(job_path).read_text())
    root = (Path(job_path).parent / job["source"]["url"]).resolve()
    experiments = {e["id"]: e for e in job["experiments"]}
    experiment = experiments[experiment_id]
    metrics = {m["name"]: m for m in job["metrics"]}
    start = experiment["start"] if isinstance(experiment["start"], date) else date.fromisoformat(experiment["start"])
    first_any = min(e["start"] for e in job["experiments"])
    end_micros = int(datetime.combine(report_date + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp() * 1_000_000)
    stats_cfg = {**job.get("stats", {}), **{k: experiment[k] for k in ("alpha", "correction", "srm_p_value") if k in experiment}}
    alpha = stats_cfg.get("alpha", 0.05)
    sequential = job.get("stats", {}).get("sequential", "schedule" in job)
    tuning = float(experiment.get("planned_units", 5000))
    prior_sd = job.get("stats", {}).get("prior_stddev")
    uses_cuped = any(metrics[m].get("cuped", False) for m in metrics)
    lookback_days = job.get("stats", {}).get("cuped_lookback_days", 14) if uses_cuped else 0
    configured = list(experiment["variants"].keys())
    control = experiment["control"]
    variants = [control] + [v for v in configured if v != control]

    # --- allocation, by the contract's rules ---
    exposures = read_partitions(root, "exposures", start, report_date)
    exposures = exposures[exposures["experiment_id"] == experiment_id].copy()
    exposures["micros"] = to_micros(exposures["ts"])
    grouped = exposures.groupby("unit_id").agg(
        first=("micros", "min"), exposures=("micros", "size"), variants=("variant", lambda v: tuple(sorted(set(v))))
    )
    grouped["status"] = np.where(
        grouped["variants"].map(len) > 1, "multi_variant", np.where(grouped["variants"].map(lambda v: v[0] in configured), "ok", "unknown_variant")
    )
    allocation = pq.read_table(out_dir / "allocation.parquet").to_pandas().set_index("unit_id")
    if len(allocation) != len(grouped):
        fail(f"allocation.parquet has {len(allocation)} units, reference {len(grouped)}")
    joined = grouped.join(allocation, rsuffix="_ab")
    if (joined["status"] != joined["status_ab"]).any():
        fail("allocation status differs for some units")
    if (joined["exposures"] != joined["exposures_ab"]).any():
        fail("exposure counts differ")
    first_ab = to_micros(joined["first_exposure_ts"])
    if (first_ab.values != joined["first"].values).any():
        fail("first exposure timestamps differ")
    print(f"allocation: {len(grouped)} units, statuses and first exposures match")

    # --- per-unit values ---
    ok = grouped[grouped["status"] == "ok"].copy()
    ok["variant"] = ok["variants"].map(lambda v: v[0])
    events = read_partitions(root, "events", first_any - timedelta(days=lookback_days), report_date)
    events["micros"] = to_micros(events["ts"])
    events = events.merge(ok[["first"]], left_on="unit_id", right_index=True)
    events["finite"] = events["value"].where(np.isfinite(events["value"].astype("float64")))
    counted = events[(events["micros"] >= events["first"]) & (events["micros"] < end_micros)]
    lookback = lookback_days * 86_400_000_000
    before = events[(events["micros"] < events["first"]) & (events["micros"] >= events["first"] - lookback)]

    def per_unit(event, aggregate, frame=None):
        frame = counted if frame is None else frame
        rows = frame[frame["event"] == event]
        if aggregate == "count":
            series = rows.groupby("unit_id").size().astype("float64")
        elif aggregate == "sum":
            series = rows.groupby("unit_id")["finite"].sum(min_count=0)
        else:
            series = rows.groupby("unit_id")["finite"].max()
        return series.reindex(ok.index).fillna(0.0)

    units = pq.read_table(out_dir / "units.parquet").to_pandas().set_index("unit_id").reindex(ok.index)
    if units["variant"].isna().any() or (units["variant"] != ok["variant"]).any():
        fail("units.parquet units or variants differ from the reference allocation")
    names = [experiment["primary"]] + experiment.get("secondary", []) + [g if isinstance(g, str) else g["metric"] for g in experiment.get("guardrails", [])]
    values, covariates = {}, {}
    results = json.loads((out_dir / "results.json").read_text())["experiments"][0]
    for name in names:
        metric = metrics[name]
        if metric["kind"] == "proportion":
            values[name] = (per_unit(metric["event"], "count") > 0).astype("float64")
            if metric.get("cuped"):
                covariates[name] = (per_unit(metric["event"], "count", before) > 0).astype("float64")
        elif metric["kind"] == "mean":
            values[name] = per_unit(metric["event"], metric.get("aggregate", "sum"))
            if metric.get("cuped"):
                covariates[name] = per_unit(metric["event"], metric.get("aggregate", "sum"), before)
            cap = metric.get("cap")
            if cap:
                limit = cap["absolute"] if "absolute" in cap else float(np.percentile(values[name].values, cap["percentile"] * 100))
                reported = next(m for m in results["metrics"] if m["name"] == name)["cap"]
                close(reported["value"], limit, f"{name}: cap value vs numpy.percentile")
                if reported["capped_units"] != int((values[name] > limit).sum()):
                    fail(f"{name}: capped_units {reported['capped_units']} vs {int((values[name] > limit).sum())}")
                values[name] = values[name].clip(upper=limit)
                if name in covariates:
                    covariates[name] = covariates[name].clip(upper=limit)
        else:
            n, d = metric["numerator"], metric["denominator"]
            values[name] = (per_unit(n["event"], n.get("aggregate", "sum")), per_unit(d["event"], d.get("aggregate", "sum")))
        pairs = [(name, values[name])] if metric["kind"] != "ratio" else [(f"{name}_numerator", values[name][0]), (f"{name}_denominator", values[name][1])]
        if name in covariates:
            pairs.append((f"{name}_pre", covariates[name]))
        for column, reference in pairs:
            diff = np.abs(units[column].values - reference.values)
            if (diff > 1e-9 * np.maximum(1.0, np.abs(reference.values))).any():
                fail(f"units.parquet column {column} differs from the reference (max diff {diff.max()})")
    print(f"units: {len(ok)} analyzable units, {len(names)} metrics match the reference attribution")

    # --- statistics ---
    p_values, p_adjusted = [], []
    extra_checks = 0
    for metric_result in results["metrics"]:
        name = metric_result["name"]
        metric = metrics[name]
        stats_by_variant = {}
        for v in variants:
            mask = (ok["variant"] == v).values
            if metric["kind"] == "ratio":
                num, den = values[name][0].values[mask], values[name][1].values[mask]
                stat = RatioStatistic(
                    n=int(mask.sum()),
                    m_statistic=SampleMeanStatistic(n=int(mask.sum()), sum=float(num.sum()), sum_squares=float((num**2).sum())),
                    d_statistic=SampleMeanStatistic(n=int(mask.sum()), sum=float(den.sum()), sum_squares=float((den**2).sum())),
                    m_d_sum_of_products=float((num * den).sum()),
                )
                mean, variance, raw = stat.mean, stat.variance * int(mask.sum()), None
                # The contract's ratio variance is gbstats' variance of the ratio estimator times n.
                variance = stat.variance
                mean_d = den.mean()
                cov = np.cov(num, den, ddof=1)
                r = num.sum() / den.sum()
                variance_direct = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / mean_d**2
                close(variance_direct, variance, f"{name}/{v}: delta variance, numpy vs gbstats", rel=1e-6)
            else:
                x = values[name].values[mask]
                stat = SampleMeanStatistic(n=int(mask.sum()), sum=float(x.sum()), sum_squares=float((x**2).sum()))
                mean, variance, raw = x.mean(), x.var(ddof=1), x
                variance_direct = variance
            stats_by_variant[v] = (stat, raw, variance_direct)
            row = next(r for r in metric_result["variants"] if r["variant"] == v)
            if row["units"] != int(mask.sum()):
                fail(f"{name}/{v}: units {row['units']} vs {int(mask.sum())}")
            close(row["mean"], float(mean), f"{name}/{v}: mean")
            close(row["variance"], float(variance_direct), f"{name}/{v}: variance")
        for comparison in metric_result["comparisons"]:
            v = comparison["variant"]
            (sa, raw_a, var_a), (sb, raw_b, var_b) = stats_by_variant[control], stats_by_variant[v]
            cuped = name in covariates
            if cuped:
                # CUPED: gbstats' regression-adjusted statistics, theta from compute_theta (with
                # two variants, the same as abreport's theta pooled over all variants).
                def adjusted(variant):
                    mask = (ok["variant"] == variant).values
                    y, x = values[name].values[mask], covariates[name].values[mask]
                    n = int(mask.sum())
                    return RegressionAdjustedStatistic(
                        n=n,
                        post_statistic=SampleMeanStatistic(n=n, sum=float(y.sum()), sum_squares=float((y**2).sum())),
                        pre_statistic=SampleMeanStatistic(n=n, sum=float(x.sum()), sum_squares=float((x**2).sum())),
                        post_pre_sum_of_products=float((x * y).sum()),
                        theta=0.0,
                    )
                ra, rb = adjusted(control), adjusted(v)
                theta = compute_theta(ra, rb)
                ra.theta = rb.theta = theta
                close(metric_result["cuped"]["theta"], theta, f"{name}: CUPED theta vs gbstats compute_theta", rel=1e-7)
                test_a, test_b = ra, rb
            else:
                test_a, test_b = sa, sb
            absolute = TwoSidedTTest(test_a, test_b, FrequentistConfig(alpha=alpha, difference_type="absolute")).compute_result()
            relative = TwoSidedTTest(test_a, test_b, FrequentistConfig(alpha=alpha, difference_type="relative")).compute_result()
            # gbstats computes variances from sums of squares (less precise than numpy's
            # two-pass), so CIs are held to 1e-7 against it and to 1e-9 against scipy.
            close(comparison["ci_absolute"][0], absolute.ci[0], f"{name}/{v}: ci_absolute low vs gbstats", rel=1e-7)
            close(comparison["ci_absolute"][1], absolute.ci[1], f"{name}/{v}: ci_absolute high vs gbstats", rel=1e-7)
            close(comparison["ci_relative"][0], relative.ci[0], f"{name}/{v}: ci_relative low vs gbstats", rel=1e-7)
            close(comparison["ci_relative"][1], relative.ci[1], f"{name}/{v}: ci_relative high vs gbstats", rel=1e-7)
            close(comparison["relative_effect"], relative.expected, f"{name}/{v}: relative_effect vs gbstats", rel=1e-7)
            if sequential:
                # Always-valid: gbstats' SequentialTwoSidedTTest with the same tuning.
                seq_abs = SequentialTwoSidedTTest(test_a, test_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning, difference_type="absolute")).compute_result()
                seq_rel = SequentialTwoSidedTTest(test_a, test_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning, difference_type="relative")).compute_result()
                mine = comparison["sequential"]
                close(mine["tuning"], tuning, f"{name}/{v}: sequential tuning")
                for i in (0, 1):
                    close(mine["ci_absolute"][i], seq_abs.ci[i], f"{name}/{v}: sequential ci_absolute[{i}] vs gbstats", rel=1e-7)
                    close(mine["ci_relative"][i], seq_rel.ci[i], f"{name}/{v}: sequential ci_relative[{i}] vs gbstats", rel=1e-7)
                close(mine["p_value"], seq_abs.p_value, f"{name}/{v}: sequential p_value vs gbstats", rel=1e-6, abs_tol=1e-12)
                extra_checks += 1
            prior = GaussianPrior(mean=0, variance=prior_sd**2, proper=True) if prior_sd else GaussianPrior()
            bayes = EffectBayesianABTest(test_a, test_b, EffectBayesianConfig(alpha=alpha, inverse=not metric_result["higher_is_better"], prior_effect=prior, difference_type="relative")).compute_result()
            mine = comparison["bayesian"]
            tolerance = 1e-7
            close(mine["chance_to_win"], bayes.chance_to_win, f"{name}/{v}: chance_to_win vs gbstats", rel=tolerance, abs_tol=1e-9)
            for i in (0, 1):
                close(mine["ci_relative"][i], bayes.ci[i], f"{name}/{v}: Bayesian ci[{i}] vs gbstats", rel=tolerance)
                close(mine["risk"][i], bayes.risk[i], f"{name}/{v}: risk[{i}] vs gbstats", rel=max(tolerance, 1e-6), abs_tol=1e-9)
            extra_checks += 1
            if cuped:
                # The unadjusted numbers are the plain Welch test of the raw values.
                welch = stats.ttest_ind(raw_b, raw_a, equal_var=False)
                close(comparison["unadjusted"]["p_value"], float(welch.pvalue), f"{name}/{v}: unadjusted p vs scipy", abs_tol=1e-300)
                t_stat = absolute.expected / absolute.uplift.stddev
                dof = TwoSidedTTest(test_a, test_b, FrequentistConfig(alpha=alpha, difference_type="absolute")).dof
                close(comparison["p_value"], float(2 * stats.t.sf(abs(t_stat), dof)), f"{name}/{v}: CUPED p vs gbstats t and scipy t.sf", rel=1e-6, abs_tol=1e-300)
                p_values.append(comparison["p_value"])
                p_adjusted.append(comparison["p_value_adjusted"])
                continue
            if raw_a is not None:
                welch = stats.ttest_ind(raw_b, raw_a, equal_var=False)
                ci = welch.confidence_interval(1 - alpha)
                close(comparison["p_value"], float(welch.pvalue), f"{name}/{v}: p_value vs scipy", abs_tol=1e-300)
                close(comparison["ci_absolute"][0], float(ci.low), f"{name}/{v}: ci_absolute low vs scipy")
                close(comparison["ci_absolute"][1], float(ci.high), f"{name}/{v}: ci_absolute high vs scipy")
                close(comparison["df"], float(welch.df), f"{name}/{v}: Welch df vs scipy")
            else:
                # Ratio metrics: the same Welch test on the delta-method variances.
                n_a, n_b = sa.n, sb.n
                se = math.sqrt(var_a / n_a + var_b / n_b)
                df = (var_a / n_a + var_b / n_b) ** 2 / ((var_a / n_a) ** 2 / (n_a - 1) + (var_b / n_b) ** 2 / (n_b - 1))
                p = 2 * stats.t.sf(abs((sb.mean - sa.mean) / se), df)
                close(comparison["p_value"], float(p), f"{name}/{v}: ratio p_value vs scipy t", abs_tol=1e-300)
            p_values.append(comparison["p_value"])
            p_adjusted.append(comparison["p_value_adjusted"])
    method = {"holm": "holm", "bh": "fdr_bh", "none": None}[stats_cfg.get("correction", "holm")]
    expected_adjusted = multipletests(p_values, method=method)[1] if method else p_values
    for i, (got, want) in enumerate(zip(p_adjusted, expected_adjusted)):
        close(got, float(want), f"p_value_adjusted #{i} vs statsmodels")
    print(f"statistics: {len(p_values)} comparisons match scipy, gbstats and statsmodels ({extra_checks} sequential/Bayesian views)")

    counts = [int((ok["variant"] == v).sum()) for v in variants]
    weights = [experiment["variants"][v] for v in variants]
    expected = [sum(counts) * w / sum(weights) for w in weights]
    srm = next(c for c in results["checks"] if c["name"] == "srm")
    close(srm["p_value"], float(stats.chisquare(counts, expected).pvalue), "srm p_value vs scipy.chisquare", abs_tol=1e-300)
    print("srm: chi-square p-value matches scipy")


if __name__ == "__main__":
    main()
