"""Independent reference check of one abreport run.

Re-implements the contract's attribution (shared/contract.md) in pandas straight from the raw
Parquet partitions, then checks every number abreport wrote for each experiment named:

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
    EffectBayesianABTest;
  * each comparison's `inference` (the test the recommendation reads), recomputed: always-valid
    with gbstats' SequentialTwoSidedTTest (relative; absolute when the control mean is 0) at
    alpha/k with the comparison's tuning, or fixed-horizon with the Welch t and the delta method
    from scipy; ci, p_value and harm_p_value to 1e-7, and the non-inferiority of guardrails;
  * the plan: the last day, the units each test needs (power of the interval the rule reads,
    re-derived here), whether they are in, the inflow and the expected verdict date;
  * every check's status, derived from the raw data (srm with its practical gate,
    multi_variant_units at 1%, invalid_values, unknown_variant, missing_variant,
    missing_partitions);
  * the decision — recommendation, variant and reason codes — against the rule as
    src/decide.rs's module doc states it, applied here to the numbers recomputed here (the
    Rust is never called).

Usage: check_run.py JOB_TOML REPORT_DATE OUTPUT_ROOT EXPERIMENT_ID...
(the outputs of experiment X are under OUTPUT_ROOT/X/). Prints one line per check group. A
mismatch of a number exits 1 at once, naming it; disagreements with the documented rule are all
listed (`DECISION MISMATCH`), then exit 1.
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
# gbstats' default tuning, used until a design can be made.
DEFAULT_TUNING = 5000.0
# New units per day are averaged over this many days (src/analyze/plan.rs INFLOW_DAYS).
INFLOW_DAYS = 7
MULTI_VARIANT_FAIL_SHARE = 0.01


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


def has_partition(root, dataset, day):
    folder = root / dataset / f"date={day.isoformat()}"
    return folder.is_dir() and any(folder.glob("*.parquet"))


def to_micros(series):
    values = pd.to_datetime(series, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)


def as_date(value):
    return value if isinstance(value, date) else date.fromisoformat(value)


class Exact:
    """A statistic given by its two-pass moments, as gbstats' tests read one (n, mean,
    unadjusted_mean, variance): more precise than gbstats' sums of squares."""

    def __init__(self, x):
        self.n = len(x)
        self.mean = self.unadjusted_mean = float(x.mean()) if len(x) else 0.0
        self.variance = float(x.var(ddof=1)) if len(x) > 1 else 0.0

    def _has_zero_variance(self):
        return self.variance <= 0


def zero_variance(statistic):
    """gbstats' `_has_zero_variance`: a method on our `Exact`, a property on its statistics."""
    flag = statistic._has_zero_variance
    return flag() if callable(flag) else flag


# --- the test the recommendation reads, recomputed ---


def welch_df(sa, sb):
    a, b = sb.variance / sb.n, sa.variance / sa.n
    return (a + b) ** 2 / (a * a / (sb.n - 1) + b * b / (sa.n - 1))


def reference_inference(sa, sb, method, alpha_k, tuning, harm_bound_of):
    """The comparison as the rule tests it: (scale, estimate, ci, p(0), p(harm bound)), or a
    reason it cannot be tested. `harm_bound_of(scale)` is the harm bound or None."""
    if sa.n < 2 or sb.n < 2:
        return None, "fewer than 2 units"
    if method == "always_valid" and not (sa.variance > 0 and sb.variance > 0):
        return None, "no variance in a variant (always-valid needs both, as gbstats)"
    if method == "fixed_horizon" and not (sa.variance / sa.n + sb.variance / sb.n > 0):
        return None, "no variance"
    scale = "relative" if sa.unadjusted_mean != 0 else "absolute"
    bound = harm_bound_of(scale)
    if method == "always_valid":
        def test(null):
            config = SequentialConfig(alpha=alpha_k, sequential_tuning_parameter=tuning, difference_type=scale, test_value=null)
            return SequentialTwoSidedTTest(sa, sb, config)
        t0 = test(0.0)
        estimate, ci, p = float(t0.point_estimate), [float(x) for x in t0.confidence_interval], float(t0.p_value)
        harm = None if bound is None else float(test(bound).p_value)
        return (scale, estimate, ci, p, harm), None
    # Fixed horizon: Welch's t with Welch–Satterthwaite df of the difference, the delta method
    # on the relative scale (with the unadjusted treatment mean, as gbstats).
    df = welch_df(sa, sb)
    if scale == "relative":
        mc = sa.unadjusted_mean
        estimate = (sb.mean - sa.mean) / mc
        variance = sb.variance / (sb.n * mc * mc) + sb.unadjusted_mean ** 2 * sa.variance / (sa.n * mc ** 4)
    else:
        estimate = sb.mean - sa.mean
        variance = sb.variance / sb.n + sa.variance / sa.n
    se = math.sqrt(variance)
    half = stats.t.ppf(1 - alpha_k / 2, df) * se

    def p_of(null):
        return float(min(1.0, 2 * stats.t.sf(abs(estimate - null) / se, df)))

    harm = None if bound is None else p_of(bound)
    return (scale, float(estimate), [estimate - half, estimate + half], p_of(0.0), harm), None


def improves(effect, higher_is_better):
    return effect != 0 and (effect > 0) == higher_is_better


# --- the plan, re-derived ---


def rho_squared(alpha, tuning):
    two_log_alpha = -2 * math.log(alpha)
    return (two_log_alpha + math.log(1 + two_log_alpha)) / tuning


def plan_power(contrast, n_control, alpha, method, tuning):
    """Power of the level-(1 - alpha) interval to exclude the null on the effect's side."""
    distance, uvc, uvt, ratio = contrast
    variance = uvc / n_control + uvt / (ratio * n_control)
    if method == "fixed_horizon":
        h = stats.norm.ppf(1 - alpha / 2) * math.sqrt(variance)
    else:
        n = n_control * (1 + ratio)
        r2 = rho_squared(alpha, tuning)
        h = math.sqrt(variance * n) * math.sqrt(2 * (n * r2 + 1) * math.log(math.sqrt(n * r2 + 1) / alpha) / (n * n * r2))
    return stats.norm.cdf((distance - h) / math.sqrt(variance))


def required_control_units(contrast, alpha, target, method, tuning):
    lo, hi = 0.5, 1.0
    while plan_power(contrast, hi, alpha, method, tuning) < target:
        lo, hi = hi, hi * 2
        if hi > 1e15:
            return None
    for _ in range(200):
        mid = (lo + hi) / 2
        if plan_power(contrast, mid, alpha, method, tuning) >= target:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-10 * hi:
            break
    return hi


def relative_contrast(mean_c, var_c, var_t, true_effect, distance, ratio):
    if mean_c == 0:
        return None
    m2 = mean_c * mean_c
    contrast = (distance, (1 + true_effect) ** 2 * var_c / m2, var_t / m2, ratio)
    ok = all(math.isfinite(x) for x in contrast) and distance > 0 and ratio > 0 and contrast[1] > 0 and contrast[2] > 0
    return contrast if ok else None


# --- the rule of src/decide.rs's module doc, in Python ---


def documented_rule(ctx):
    """Recommendation, variant and reason codes by the ten rules of src/decide.rs's module doc,
    from the numbers and check statuses recomputed here. Returns (recommendation, variant,
    codes, uncertain codes): codes the doc leaves to the code are in `uncertain` and not compared."""
    checks, alpha, k, mde = ctx["checks"], ctx["alpha"], ctx["k"], ctx["mde"]
    warnings = [f"CHECK_WARNING:{name}" for name, status in checks.items() if status == "warn"]

    def done(recommendation, variant, codes, uncertain=()):
        return recommendation, variant, codes + warnings, set(uncertain)

    # 1. A configured variant has no units: inconclusive.
    if checks["missing_variant"] == "fail":
        return done("inconclusive", None, ["MISSING_VARIANT"])
    # 2. A failed SRM or multi-variant check: pause.
    for name in ("srm", "multi_variant_units"):
        if checks[name] == "fail":
            return done("pause", None, [f"DATA_QUALITY_FAILED:{name}"])
    # 3. No primary metric: inconclusive.
    primary = ctx["primary"]
    if primary is None:
        return done("inconclusive", None, ["NO_PRIMARY_METRIC"])
    treatments = ctx["treatments"]
    tests = ctx["tests"]  # (metric, variant) -> recomputed test or None
    plan = ctx["plan"]
    # 4. The primary cannot be tested yet (no events, no variance): continue; on or after the
    # last day, inconclusive (stop).
    if all(tests[(primary["name"], v)] is None for v in treatments):
        if ctx["report_date"] >= plan["last_day"]:
            return done("inconclusive", None, ["PRIMARY_NOT_TESTABLE", "HORIZON_REACHED:max_days"])
        return done("continue", None, ["TOO_EARLY", "HOLD_ROLLOUT"])

    guardrails = [m for m in ctx["metrics"] if m["role"] == "guardrail"]
    secondaries = [m for m in ctx["metrics"] if m["role"] == "secondary"]
    # Harm tests share alpha: alpha / (k (1 + guardrails)).
    harm_alpha = alpha / (k * (1 + len(guardrails)))

    def worse(metric, v):
        t = tests[(metric["name"], v)]
        return t is not None and t["significant"] and not improves(t["estimate"], metric["higher_is_better"])

    def better(metric, v):
        t = tests[(metric["name"], v)]
        return t is not None and t["significant"] and improves(t["estimate"], metric["higher_is_better"])

    def harmed(metric, v):
        t = tests[(metric["name"], v)]
        if t is None or t["harm_p"] is None:
            return False
        bound = t["harm_bound"]
        return t["estimate"] != bound and (t["estimate"] > bound) != metric["higher_is_better"] and t["harm_p"] < harm_alpha

    def untestable_and_worse(metric, v):
        # A guardrail that cannot be tested but whose variant mean is worse holds a win back.
        d = ctx["raw_differences"].get((metric["name"], v))
        return tests[(metric["name"], v)] is None and d is not None and d != 0 and (d > 0) != metric["higher_is_better"]

    def non_inferior(metric, v):
        t = tests[(metric["name"], v)]
        return t is not None and t["non_inferior"]

    def estimate(v):
        return tests[(primary["name"], v)]["estimate"] if tests[(primary["name"], v)] else 0.0

    # 5. Promote: primary significantly better, every margin guardrail non-inferior, no
    # guardrail and no secondary significantly worse.
    promotable = [
        v for v in treatments
        if better(primary, v)
        and all(non_inferior(g, v) for g in guardrails if g["margin"] is not None)
        and not any(worse(g, v) or untestable_and_worse(g, v) for g in guardrails)
        and not any(worse(s, v) for s in secondaries)
    ]
    if promotable:
        best = max(promotable, key=lambda v: estimate(v) if primary["higher_is_better"] else -estimate(v))
        def cleared(g):
            if g["margin"] is not None:
                return f"GUARDRAIL_NON_INFERIOR:{g['name']}"
            if tests[(g["name"], best)] is None:
                return f"GUARDRAIL_NOT_TESTABLE:{g['name']}"  # no events: no harm shown
            return f"GUARDRAIL_NO_HARM:{g['name']}"

        codes = ["PRIMARY_SIGNIFICANT_WIN"] + [cleared(g) for g in guardrails] + [
            f"OTHER_VARIANT_HARMFUL:{v}"
            for v in treatments
            if v != best and (harmed(primary, v) or any(harmed(g, v) for g in guardrails))
        ]
        return done("promote", best, codes)
    # 6. Rollback: the primary or a guardrail harmed at the shared harm level.
    harmful = [v for v in treatments if harmed(primary, v) or any(harmed(g, v) for g in guardrails)]
    if harmful:
        worst = min(harmful, key=lambda v: estimate(v) if primary["higher_is_better"] else -estimate(v))
        codes = (["PRIMARY_SIGNIFICANT_LOSS"] if harmed(primary, worst) else []) + [
            f"GUARDRAIL_SIGNIFICANT_LOSS:{g['name']}" for g in guardrails if harmed(g, worst)
        ]
        return done("rollback", worst, codes)
    # What holds a verdict back for a variant (named by rules 9 and 10): a margin guardrail not
    # yet shown non-inferior, or a guardrail without margin significantly worse but not harmed.
    def pending_of(v):
        out = []
        for g in guardrails:
            if harmed(g, v):
                continue
            if g["margin"] is not None and not non_inferior(g, v):
                out.append(f"GUARDRAIL_NOT_YET_NON_INFERIOR:{g['name']}")
            elif g["margin"] is None and worse(g, v):
                out.append(f"GUARDRAIL_WORSE_NOT_YET_HARMFUL:{g['name']}")
            elif g["margin"] is None and untestable_and_worse(g, v):
                out.append(f"GUARDRAIL_NOT_TESTABLE:{g['name']}")
        return out

    # 7. Trade-off: a primary win while a secondary, or a guardrail within its margin, is
    # significantly worse, and no guardrail is still pending.
    for v in treatments:
        losses = [
            f"GUARDRAIL_WITHIN_MARGIN_LOSS:{m['name']}" if m["role"] == "guardrail" else f"SECONDARY_SIGNIFICANT_LOSS:{m['name']}"
            for m in ctx["metrics"]
            if (m["role"] == "secondary" and worse(m, v))
            or (m["role"] == "guardrail" and m["margin"] is not None and non_inferior(m, v) and worse(m, v))
        ]
        if better(primary, v) and losses and not pending_of(v):
            return done("inconclusive", v, ["PRIMARY_SIGNIFICANT_WIN"] + losses + ["TRADE_OFF"])

    pending = []
    for v in treatments:
        for code in pending_of(v):
            if code not in pending:
                pending.append(code)

    # 8. No effect: every variant's interval rules out the MDE (its favourable end is below it).
    def rules_out_mde(v):
        t = tests[(primary["name"], v)]
        if t is None or t["scale"] != "relative":
            return False
        return t["ci"][1] < mde if primary["higher_is_better"] else t["ci"][0] > -mde

    if all(rules_out_mde(v) for v in treatments):
        return done("inconclusive", None, ["PRIMARY_NO_EFFECT"])
    # 9. Horizon: the planned sample is in (and the first quoted date has come), or the last day
    # has come, without a verdict.
    quoted = plan["first_expected_verdict_date"]
    sample_in = plan["sample_reached"] and (quoted is None or ctx["report_date"] >= quoted)
    if sample_in or ctx["report_date"] >= plan["last_day"]:
        code = "HORIZON_REACHED:sample" if sample_in else "HORIZON_REACHED:max_days"
        return done("inconclusive", None, [code] + pending)
    # 10. Otherwise continue, with what is pending and the advice to hold the rollout.
    codes = []
    for v in treatments:
        if better(primary, v):
            code = "PRIMARY_SIGNIFICANT_WIN"
        elif worse(primary, v):
            code = "PRIMARY_WORSE_NOT_YET_HARMFUL"
        else:
            code = "PRIMARY_NOT_SIGNIFICANT"
        if code not in codes:
            codes.append(code)
    codes += pending
    expected = plan["expected_verdict_date"]
    if expected is not None and expected > plan["last_day"]:
        codes.append("NOT_FEASIBLE_BY_LAST_DAY")
    return done("continue", None, codes + ["HOLD_ROLLOUT"])


# --- one experiment ---


def check_experiment(job, experiment, report_date, out_dir, root, exposures_all, events_all, lookback_days, disagreements):
    experiment_id = experiment["id"]
    metrics = {m["name"]: m for m in job["metrics"]}
    start = as_date(experiment["start"])
    end_micros = int(datetime.combine(report_date + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp() * 1_000_000)
    job_stats = job.get("stats", {})
    overrides = ("alpha", "power", "correction", "srm_p_value", "mde", "max_days")
    stats_cfg = {**job_stats, **{k: experiment[k] for k in overrides if k in experiment}}
    alpha = stats_cfg.get("alpha", 0.05)
    power_target = stats_cfg.get("power", 0.8)
    mde = stats_cfg.get("mde", 0.05)
    max_days = stats_cfg.get("max_days", 42)
    srm_p_threshold = stats_cfg.get("srm_p_value", 0.001)
    srm_min_deviation = job_stats.get("srm_min_deviation", 0.005)
    sequential = job_stats.get("sequential", True)
    prior_sd = job_stats.get("prior_stddev")
    configured = list(experiment["variants"].keys())
    control = experiment["control"]
    variants = [control] + [v for v in configured if v != control]
    treatments = variants[1:]
    k = max(1, len(treatments))
    alpha_k = alpha / k
    weights = {v: float(experiment["variants"][v]) for v in variants}
    results = json.loads((out_dir / "results.json").read_text())["experiments"][0]
    print(f"--- {experiment_id}")

    # --- allocation, by the contract's rules ---
    exposures = exposures_all[(exposures_all["experiment_id"] == experiment_id) & (exposures_all["_date"] >= start)].copy()
    exposures["micros"] = to_micros(exposures["ts"])
    # Exposures at or after the end of the report date are outside the window.
    exposures = exposures[exposures["micros"] < end_micros]
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
    events = events_all.merge(ok[["first"]], left_on="unit_id", right_index=True)
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
    guardrail_specs = [(g, None) if isinstance(g, str) else (g["metric"], g.get("margin")) for g in experiment.get("guardrails", [])]
    default_margin = job_stats.get("guardrail_margin")
    margins = {name: (margin if margin is not None else default_margin) for name, margin in guardrail_specs}
    roles = {experiment["primary"]: "primary"}
    roles.update({name: "secondary" for name in experiment.get("secondary", [])})
    roles.update({name: "guardrail" for name, _ in guardrail_specs})
    names = [experiment["primary"]] + experiment.get("secondary", []) + [name for name, _ in guardrail_specs]
    values, covariates = {}, {}
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

    # --- checks, derived from the raw data ---
    counts = [int((ok["variant"] == v).sum()) for v in variants]
    total_weight = sum(weights.values())
    expected_split = [sum(counts) * weights[v] / total_weight for v in variants]
    reference_checks = {}
    srm = next(c for c in results["checks"] if c["name"] == "srm")
    if sum(counts) == 0:
        reference_checks["srm"] = "pass"
    else:
        srm_p = float(stats.chisquare(counts, expected_split).pvalue)
        close(srm["p_value"], srm_p, "srm p_value vs scipy.chisquare", abs_tol=1e-300)
        deviation = max(abs(n / sum(counts) - weights[v] / total_weight) / (weights[v] / total_weight) for n, v in zip(counts, variants))
        if srm_p < srm_p_threshold:
            reference_checks["srm"] = "fail" if deviation >= srm_min_deviation else "warn"
        else:
            reference_checks["srm"] = "pass"
    multi = int((grouped["status"] == "multi_variant").sum())
    share = multi / len(grouped) if len(grouped) else 0.0
    reference_checks["multi_variant_units"] = "pass" if multi == 0 else ("fail" if share >= MULTI_VARIANT_FAIL_SHARE else "warn")
    used_events = set()
    for name in names:
        metric = metrics[name]
        used_events |= {metric["event"]} if metric["kind"] != "ratio" else {metric["numerator"]["event"], metric["denominator"]["event"]}
    counted_used = counted[counted["event"].isin(used_events)]
    raw_values = counted_used["value"].astype("float64")
    invalid = int((raw_values.notna() & ~np.isfinite(raw_values)).sum())
    reference_checks["invalid_values"] = "warn" if invalid else "pass"
    reference_checks["unknown_variant"] = "warn" if (~exposures["variant"].isin(configured)).any() else "pass"
    reference_checks["missing_variant"] = "fail" if min(counts) == 0 else "pass"
    window = [start + timedelta(days=i) for i in range((report_date - start).days + 1)]
    missing = [d for d in window if not (has_partition(root, "exposures", d) and has_partition(root, "events", d))]
    reference_checks["missing_partitions"] = "warn" if missing else "pass"
    reported_checks = {c["name"]: c["status"] for c in results["checks"]}
    for name, status in reference_checks.items():
        if reported_checks.get(name) != status:
            fail(f"check {name}: abreport {reported_checks.get(name)!r} vs reference {status!r}")
    print(f"checks: {', '.join(f'{n} {s}' for n, s in reference_checks.items())} match (srm p-value matches scipy)")

    # --- statistics ---
    p_values, p_adjusted = [], []
    extra_checks = 0
    inference_checks = 0
    method = "always_valid" if sequential else "fixed_horizon"
    plan = results.get("plan") or {}

    def tuning_of(v):
        if not sequential:
            return None
        if "planned_units" in experiment:
            return experiment["planned_units"] * (weights[control] + weights[v]) / total_weight
        if plan.get("tuning_source") == "default":
            return DEFAULT_TUNING
        # A design fixed by an earlier run from the data then: taken from abreport.
        taken = [c["inference"]["tuning"] for m in results["metrics"] for c in m["comparisons"] if c["variant"] == v and c.get("inference")]
        if len(set(taken)) > 1:
            fail(f"{v}: comparisons of one variant with different tunings {sorted(set(taken))}")
        return taken[0] if taken else None

    tests = {}
    raw_differences = {}  # (metric, variant) -> treatment mean - control mean, tested or not
    used_summaries = {}
    metric_info = []
    for metric_result in results["metrics"]:
        name = metric_result["name"]
        metric = metrics[name]
        role = roles[name]
        if metric_result["role"] != role:
            fail(f"{name}: role {metric_result['role']} vs {role}")
        margin = margins.get(name) if role == "guardrail" else None
        if metric_result.get("margin") != margin:
            fail(f"{name}: margin {metric_result.get('margin')!r} vs {margin!r} (guardrails named only have none)")
        higher = metric.get("higher_is_better", True)
        metric_info.append({"name": name, "role": role, "margin": margin, "higher_is_better": higher})
        stats_by_variant = {}
        for v in variants:
            mask = (ok["variant"] == v).values
            n_units = int(mask.sum())
            if n_units == 0:
                # A configured variant without units: no statistics, nothing to compare.
                stats_by_variant[v] = (None, None, None)
                row = next(r for r in metric_result["variants"] if r["variant"] == v)
                if row["units"] != 0 or row["mean"] is not None or row["variance"] is not None:
                    fail(f"{name}/{v}: a variant without units has statistics: {row}")
                continue
            if metric["kind"] == "ratio":
                num, den = values[name][0].values[mask], values[name][1].values[mask]
                if den.sum() == 0:
                    # The ratio is undefined: no mean, no variance, nothing to compare.
                    stats_by_variant[v] = (None, None, None)
                    row = next(r for r in metric_result["variants"] if r["variant"] == v)
                    if row["units"] != n_units or row["mean"] is not None:
                        fail(f"{name}/{v}: a ratio with a zero denominator has units {n_units} and no mean: {row}")
                    continue
                stat = RatioStatistic(
                    n=n_units,
                    m_statistic=SampleMeanStatistic(n=n_units, sum=float(num.sum()), sum_squares=float((num**2).sum())),
                    d_statistic=SampleMeanStatistic(n=n_units, sum=float(den.sum()), sum_squares=float((den**2).sum())),
                    m_d_sum_of_products=float((num * den).sum()),
                )
                # The contract's ratio variance is gbstats' variance of the ratio estimator times n.
                mean, variance, raw = stat.mean, stat.variance, None
                mean_d = den.mean()
                cov = np.cov(num, den, ddof=1)
                r = num.sum() / den.sum()
                variance_direct = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / mean_d**2
                close(variance_direct, variance, f"{name}/{v}: delta variance, numpy vs gbstats", rel=1e-6, abs_tol=1e-12)
            else:
                x = values[name].values[mask]
                stat = SampleMeanStatistic(n=n_units, sum=float(x.sum()), sum_squares=float((x**2).sum()))
                mean, variance, raw = x.mean(), x.var(ddof=1), x
                variance_direct = variance
            stats_by_variant[v] = (stat, raw, variance_direct)
            row = next(r for r in metric_result["variants"] if r["variant"] == v)
            if row["units"] != n_units:
                fail(f"{name}/{v}: units {row['units']} vs {n_units}")
            close(row["mean"], float(mean), f"{name}/{v}: mean")
            close(row["variance"], float(variance_direct), f"{name}/{v}: variance", abs_tol=1e-14)
        for comparison in metric_result["comparisons"]:
            v = comparison["variant"]
            (sa, raw_a, var_a), (sb, raw_b, var_b) = stats_by_variant[control], stats_by_variant[v]
            if sa is None or sb is None:
                if comparison.get("inference") is not None or comparison["p_value"] is not None:
                    fail(f"{name}/{v}: a variant without units or an undefined ratio is compared: {comparison}")
                tests[(name, v)] = None
                used_summaries[(name, v)] = None
                continue
            raw_differences[(name, v)] = float(sb.mean - sa.mean)
            cuped = name in covariates
            if cuped:
                # CUPED: gbstats' regression-adjusted statistics, theta from compute_theta over
                # the comparison's two variants.
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
                close(comparison["cuped_theta"], theta, f"{name}/{v}: CUPED theta vs gbstats compute_theta", rel=1e-7)
                if len(variants) == 2:
                    close(metric_result["cuped"]["theta"], theta, f"{name}: CUPED theta vs gbstats compute_theta", rel=1e-7)
                test_a, test_b = ra, rb
                exact_a, exact_b = ra, rb
            else:
                test_a, test_b = sa, sb
                exact_a, exact_b = (Exact(raw_a), Exact(raw_b)) if raw_a is not None else (sa, sb)
            used_summaries[(name, v)] = (exact_a, exact_b)

            # The test the recommendation reads.
            def harm_bound_of(scale, role=role, margin=margin, higher=higher):
                if role not in ("primary", "guardrail"):
                    return None
                if role == "guardrail" and margin is not None and scale == "relative":
                    return -margin if higher else margin
                return 0.0

            tuning = tuning_of(v)
            reference, why = reference_inference(exact_a, exact_b, method, alpha_k, tuning, harm_bound_of)
            mine = comparison.get("inference")
            where = f"{name}/{v}: inference"
            if reference is None:
                if mine is not None:
                    fail(f"{where}: abreport tests it, the reference cannot ({why}): {mine}")
                tests[(name, v)] = None
            else:
                scale, estimate, ci, p, harm = reference
                if mine is None:
                    fail(f"{where}: missing, the reference tests it: estimate {estimate}, ci {ci}")
                for key, want in (("method", method), ("scale", scale)):
                    if mine[key] != want:
                        fail(f"{where}.{key}: abreport {mine[key]!r} vs reference {want!r}")
                close(mine["level"], 1 - alpha_k, f"{where}.level (1 - alpha/k)", rel=1e-15)
                close(mine["tuning"], tuning, f"{where}.tuning")
                close(mine["estimate"], estimate, f"{where}.estimate", rel=1e-9)
                close(mine["ci"][0], ci[0], f"{where}.ci[0] vs {'gbstats' if sequential else 'scipy'}", rel=1e-7)
                close(mine["ci"][1], ci[1], f"{where}.ci[1] vs {'gbstats' if sequential else 'scipy'}", rel=1e-7)
                close(mine["p_value"], p, f"{where}.p_value", rel=1e-7, abs_tol=1e-300)
                close(mine["harm_p_value"], harm, f"{where}.harm_p_value", rel=1e-7, abs_tol=1e-300)
                significant = p < alpha_k
                direction = "neutral" if not significant else ("better" if improves(estimate, higher) else "worse")
                if mine["significant"] != significant or mine["direction"] != direction:
                    fail(f"{where}: significant {mine['significant']} {mine['direction']} vs {significant} {direction} (p {p}, alpha/k {alpha_k})")
                bound = harm_bound_of(scale)
                test = {"scale": scale, "estimate": estimate, "ci": ci, "p": p, "significant": significant, "harm_p": harm, "harm_bound": bound, "non_inferior": False}
                tests[(name, v)] = test
                inference_checks += 1
            if role == "guardrail" and margin is not None:
                # Non-inferior when the decision interval's worse end lies within the margin.
                t = tests[(name, v)]
                worse_end = None if t is None or t["scale"] != "relative" else (t["ci"][0] if higher else t["ci"][1])
                ni = worse_end is not None and (worse_end > -margin if higher else worse_end < margin)
                if t is not None:
                    t["non_inferior"] = ni
                mine_ni = comparison.get("non_inferiority") or {}
                close(mine_ni.get("bound"), worse_end, f"{name}/{v}: non_inferiority.bound", rel=1e-7)
                if mine_ni.get("non_inferior") != ni or mine_ni.get("margin") != margin:
                    fail(f"{name}/{v}: non_inferiority {mine_ni} vs non_inferior {ni}, margin {margin}")
            elif comparison.get("non_inferiority") is not None:
                fail(f"{name}/{v}: a non-inferiority test without a margin: {comparison['non_inferiority']}")

            # The contract's fixed-horizon numbers and the other views.
            fixed_testable = sa.n >= 2 and sb.n >= 2 and (var_a / sa.n + var_b / sb.n) > 0
            if not fixed_testable:
                if comparison["p_value"] is not None:
                    fail(f"{name}/{v}: p_value {comparison['p_value']} where the reference has no variance")
                continue
            absolute = TwoSidedTTest(test_a, test_b, FrequentistConfig(alpha=alpha, difference_type="absolute"))
            relative = TwoSidedTTest(test_a, test_b, FrequentistConfig(alpha=alpha, difference_type="relative"))
            # gbstats computes variances from sums of squares (less precise than numpy's
            # two-pass), so CIs are held to 1e-7 against it and to 1e-9 against scipy.
            close(comparison["ci_absolute"][0], absolute.confidence_interval[0], f"{name}/{v}: ci_absolute low vs gbstats", rel=1e-7)
            close(comparison["ci_absolute"][1], absolute.confidence_interval[1], f"{name}/{v}: ci_absolute high vs gbstats", rel=1e-7)
            if test_a.unadjusted_mean != 0:
                close(comparison["ci_relative"][0], relative.confidence_interval[0], f"{name}/{v}: ci_relative low vs gbstats", rel=1e-7)
                close(comparison["ci_relative"][1], relative.confidence_interval[1], f"{name}/{v}: ci_relative high vs gbstats", rel=1e-7)
                close(comparison["relative_effect"], relative.point_estimate, f"{name}/{v}: relative_effect vs gbstats", rel=1e-7)
            elif comparison["ci_relative"] is not None:
                fail(f"{name}/{v}: a relative interval over a control mean of 0")
            seq = comparison.get("sequential")
            if sequential and seq and seq.get("p_value") is not None:
                # Always-valid at the experiment's alpha: gbstats' SequentialTwoSidedTTest.
                seq_abs = SequentialTwoSidedTTest(test_a, test_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning, difference_type="absolute"))
                close(seq["tuning"], tuning, f"{name}/{v}: sequential tuning")
                for i in (0, 1):
                    close(seq["ci_absolute"][i], seq_abs.confidence_interval[i], f"{name}/{v}: sequential ci_absolute[{i}] vs gbstats", rel=1e-7)
                if test_a.unadjusted_mean != 0:
                    seq_rel = SequentialTwoSidedTTest(test_a, test_b, SequentialConfig(alpha=alpha, sequential_tuning_parameter=tuning, difference_type="relative"))
                    for i in (0, 1):
                        close(seq["ci_relative"][i], seq_rel.confidence_interval[i], f"{name}/{v}: sequential ci_relative[{i}] vs gbstats", rel=1e-7)
                close(seq["p_value"], seq_abs.p_value, f"{name}/{v}: sequential p_value vs gbstats", rel=1e-6, abs_tol=1e-12)
                extra_checks += 1
            elif sequential and not (zero_variance(test_a) or zero_variance(test_b)):
                fail(f"{name}/{v}: no always-valid numbers: {seq}")
            if comparison.get("bayesian") and test_a.unadjusted_mean != 0:
                prior = GaussianPrior(mean=0, variance=prior_sd**2, proper=True) if prior_sd else GaussianPrior()
                bayes = EffectBayesianABTest(test_a, test_b, EffectBayesianConfig(alpha=alpha, inverse=not higher, prior_effect=prior, difference_type="relative")).compute_result()
                mine_b = comparison["bayesian"]
                tolerance = 1e-7
                close(mine_b["chance_to_win"], bayes.chance_to_win, f"{name}/{v}: chance_to_win vs gbstats", rel=tolerance, abs_tol=1e-9)
                for i in (0, 1):
                    close(mine_b["ci_relative"][i], bayes.ci[i], f"{name}/{v}: Bayesian ci[{i}] vs gbstats", rel=tolerance)
                    close(mine_b["risk"][i], bayes.risk[i], f"{name}/{v}: risk[{i}] vs gbstats", rel=max(tolerance, 1e-6), abs_tol=1e-9)
                extra_checks += 1
            if cuped:
                # The unadjusted numbers are the plain Welch test of the raw values.
                welch = stats.ttest_ind(raw_b, raw_a, equal_var=False)
                close(comparison["unadjusted"]["p_value"], float(welch.pvalue), f"{name}/{v}: unadjusted p vs scipy", abs_tol=1e-300)
                t_stat = absolute.point_estimate / math.sqrt(absolute.variance)
                close(comparison["p_value"], float(2 * stats.t.sf(abs(t_stat), absolute.dof)), f"{name}/{v}: CUPED p vs gbstats t and scipy t.sf", rel=1e-6, abs_tol=1e-300)
            elif raw_a is not None:
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
    correction = {"holm": "holm", "bh": "fdr_bh", "none": None}[stats_cfg.get("correction", "holm")]
    expected_adjusted = multipletests(p_values, method=correction)[1] if correction and p_values else p_values
    for i, (got, want) in enumerate(zip(p_adjusted, expected_adjusted)):
        close(got, float(want), f"p_value_adjusted #{i} vs statsmodels")
    print(f"statistics: {len(p_values)} comparisons match scipy, gbstats and statsmodels ({extra_checks} sequential/Bayesian views)")
    print(f"inference: {inference_checks} decision tests match ({method}, level {1 - alpha_k:g})")

    # --- the plan ---
    last_day = start + timedelta(days=max(1, max_days) - 1)
    if as_date(plan["last_day"]) != last_day:
        fail(f"plan.last_day {plan['last_day']} vs start + max_days - 1 = {last_day}")
    guardrails_with_margin = [m for m in metric_info if m["role"] == "guardrail" and m["margin"] is not None and m["margin"] > 0]
    plan_alpha = alpha / k
    plan_power_target = 1 - (1 - power_target) / (1 + len(guardrails_with_margin))
    required = {v: 0 for v in variants}
    sized = True
    planned = 0
    primary_info = next((m for m in metric_info if m["role"] == "primary"), None)
    for v in treatments:
        ratio = weights[v] / weights[control]
        for m, distance, true_effect in [(primary_info, mde, mde)] + [(g, g["margin"], 0.0) for g in guardrails_with_margin]:
            pair = used_summaries.get((m["name"], v))
            contrast = None if pair is None else relative_contrast(pair[0].unadjusted_mean, pair[0].variance, pair[1].variance, true_effect, distance, ratio)
            n_c = None if contrast is None else required_control_units(contrast, plan_alpha, plan_power_target, method, tuning_of(v))
            if n_c is None:
                sized = False
                continue
            planned += 1
            required[control] = max(required[control], math.ceil(n_c))
            required[v] = max(required[v], math.ceil(n_c * ratio))
    reported_required = plan["required_units"]
    if min(counts) == 0:
        # A variant without units: how (whether) to size its tests is not specified; abreport
        # sizes them from the control's variance alone. Not checked.
        print(f"plan: not checked (a variant has no units; abreport's required units {reported_required})")
        sized, sample_reached = False, plan["sample_reached"]
    elif not sized or planned == 0:
        if any(r is not None for r in reported_required):
            fail(f"plan.required_units {reported_required}: the reference cannot size every test")
        sample_reached = False
    else:
        for v, got in zip(variants, reported_required):
            if got is None or abs(got - required[v]) > 1:
                fail(f"plan.required_units[{v}]: abreport {got} vs reference {required[v]}")
        sample_reached = all(c >= required[v] for c, v in zip(counts, variants))
        borderline = any(abs(c - required[v]) <= 1 for c, v in zip(counts, variants))
        if plan["sample_reached"] != sample_reached and not borderline:
            fail(f"plan.sample_reached {plan['sample_reached']} vs {sample_reached} (units {counts}, required {required})")
        sample_reached = plan["sample_reached"] if borderline else sample_reached
    inflow_from = max(report_date - timedelta(days=INFLOW_DAYS - 1), start)
    inflow_days = (report_date - inflow_from).days + 1
    first_day = pd.to_datetime(ok["first"], unit="us", utc=True).dt.date
    recent = ok[(first_day >= inflow_from) & (first_day <= report_date)]
    inflow = [int((recent["variant"] == v).sum()) / inflow_days for v in variants]
    for i, (got, want) in enumerate(zip(plan["inflow_per_day"], inflow)):
        close(got, want, f"plan.inflow_per_day[{variants[i]}]")
    expected_date = None
    if sized and planned:
        days = 0.0
        for c, v, per_day in zip(counts, variants, inflow):
            missing_units = max(0, required[v] - c)
            if missing_units == 0:
                continue
            if per_day <= 0:
                days = None
                break
            days = max(days, missing_units / per_day)
        if days is not None:
            expected_date = report_date + timedelta(days=math.ceil(days))
            got = plan["expected_verdict_date"]
            if got is None or abs((as_date(got) - expected_date).days) > 1:
                fail(f"plan.expected_verdict_date {got} vs reference {expected_date}")
            expected_date = as_date(got)
    print(f"plan: last day {last_day}, required {[required[v] if sized and planned else None for v in variants]}, sample reached {sample_reached}, expected {expected_date}")

    # --- the decision, by the documented rule ---
    context = {
        "checks": reference_checks,
        "alpha": alpha,
        "k": k,
        "mde": mde,
        "primary": primary_info,
        "metrics": metric_info,
        "treatments": treatments,
        "tests": tests,
        "raw_differences": raw_differences,
        "report_date": report_date,
        "plan": {
            "sample_reached": sample_reached,
            "last_day": last_day,
            "expected_verdict_date": expected_date,
            # State kept from earlier runs (the design's first quote), not derivable from this
            # run's data: taken as abreport recorded it.
            "first_expected_verdict_date": (
                date.fromisoformat(plan["first_expected_verdict_date"]) if plan.get("first_expected_verdict_date") else None
            ),
        },
    }
    recommendation, variant, codes, uncertain = documented_rule(context)
    decision = results["decision"]
    reported_codes = [c for c in decision["reason_codes"] if c not in uncertain]
    problems = []
    if decision["recommendation"] != recommendation:
        problems.append(f"recommendation {decision['recommendation']!r}, the documented rule says {recommendation!r}")
    if decision["variant"] != variant:
        problems.append(f"variant {decision['variant']!r}, the documented rule says {variant!r}")
    if sorted(set(reported_codes)) != sorted(set(codes)):
        problems.append(f"reason codes {decision['reason_codes']}, the documented rule gives {codes}")
    if recommendation == "continue" and decision["expected_verdict_date"] != (expected_date.isoformat() if expected_date else None):
        problems.append(f"expected_verdict_date {decision['expected_verdict_date']} vs the plan's {expected_date}")
    if problems:
        for problem in problems:
            line = f"DECISION MISMATCH ({experiment_id}): {problem}"
            print(line)
            disagreements.append(line)
    else:
        print(f"decision: {recommendation} {variant or ''} {codes} as the documented rule says")


def main():
    job_path, report_date, out_root, experiment_ids = sys.argv[1], date.fromisoformat(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    job = tomllib.loads(Path(job_path).read_text())
    root = (Path(job_path).parent / job["source"]["url"]).resolve()
    experiments = {e["id"]: e for e in job["experiments"]}
    first_start = min(as_date(experiments[i]["start"]) for i in experiment_ids)
    uses_cuped = any(m.get("cuped", False) for m in job["metrics"])
    lookback_days = job.get("stats", {}).get("cuped_lookback_days", 14) if uses_cuped else 0
    exposures = read_partitions(root, "exposures", first_start, report_date)
    events = read_partitions(root, "events", first_start - timedelta(days=lookback_days), report_date)
    events["micros"] = to_micros(events["ts"])
    disagreements = []
    for experiment_id in experiment_ids:
        check_experiment(job, experiments[experiment_id], report_date, out_root / experiment_id, root, exposures, events, lookback_days, disagreements)
    if disagreements:
        print(f"{len(disagreements)} disagreement(s) with the rule documented in src/decide.rs:")
        for line in disagreements:
            print("  " + line)
        sys.exit(1)
    print(f"all {len(experiment_ids)} experiment(s): comparisons match scipy, gbstats and statsmodels; decisions follow the documented rule")


if __name__ == "__main__":
    main()
