"""The checks behind an automatic decision on a candidate (python -m monitoring.rollout auto):
its error rate (the server's /metrics), its live skew (python -m monitoring's checks on the
rows it scored) and its A/B verdict (python -m monitoring.abtest). Any one that crosses its
threshold rolls the candidate back; the A/B verdict alone promotes it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring import abtest
from monitoring.ab_log import ABTestError
from monitoring.ab_stats import KEEP_TESTING, PROMOTE, ROLL_BACK
from monitoring.comparisons import MonitorError


@dataclass
class Verdict:
    decision: str  # promote, roll back or keep testing
    reason: str
    trigger: str
    evidence: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # checks that could not judge, and why


def error_rate(url: str, token: str | None, model: str, version: int) -> tuple[int, int]:
    """(failed, total) requests and shadow copies of one version since the server started:
    answers with a 5xx code, and shadow copies that failed."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=30)
    except requests.RequestException as error:
        raise ABTestError(f"cannot read {url}/metrics ({type(error).__name__})") from None
    if response.status_code != 200:
        raise ABTestError(f"{url}/metrics answered HTTP {response.status_code}")
    failed = total = 0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or labels.get("version") != str(version):
                continue
            if sample.name == "serving_requests_total":
                total += int(sample.value)
                failed += int(sample.value) if labels.get("code", "").startswith("5") else 0
            elif sample.name == "serving_shadow_predictions_total":
                total += int(sample.value)
                failed += int(sample.value) if labels.get("outcome") == "failed" else 0
    return failed, total


def skew_alerts(args, version: int) -> tuple[list[str], str | None]:
    """The monitor's alerts on the rows the candidate scored (its baseline from MLMD); or
    why it could not judge them."""
    from monitoring import monitor

    names = ("output_dir", "mysql_host", "mysql_port", "mysql_database", "mysql_user")
    window = argparse.Namespace(
        request_log=str(args.request_log),
        since="all",
        until=None,
        last=None,
        model_name=args.model_name,
        model_version=version,
        skew_threshold=args.skew_threshold,
        prediction_psi_threshold=args.prediction_psi_threshold,
        min_rows=args.min_requests,
        **{name: getattr(args, name) for name in names},
    )
    try:
        return monitor.monitor(window)["alerts"], None
    except MonitorError as error:
        return [], f"skew not judged: {error}"


def judge(args, state, token: str | None) -> Verdict:
    """Error rate, then the A/B report, then skew: the first that fails rolls back."""
    label, version = state.candidate
    notes: list[str] = []
    evidence: dict = {"metrics": {}}
    try:
        failed, total = error_rate(args.url, token, state.model, version)
    except ABTestError as error:  # no server to ask: the other checks still decide
        failed, total = 0, 0
        notes.append(f"error rate not judged: {error}")
    else:
        evidence["metrics"]["error_rate"] = {"failed": failed, "total": total}
        if total < args.min_requests:
            notes.append(
                f"error rate not judged: {total} requests of version {version} so far, "
                f"fewer than --min-requests {args.min_requests}"
            )
        elif failed / total > args.max_error_rate:
            reason = (
                f"error rate of candidate {version}: {failed:,} of {total:,} requests failed "
                f"({failed / total:.1%}), above --max-error-rate {args.max_error_rate:g}"
            )
            return Verdict(ROLL_BACK, reason, "error rate", evidence, notes)
    verdict = Verdict(KEEP_TESTING, "no outcomes file given: the A/B test cannot decide", "a/b")
    if args.outcomes is not None:
        report = abtest.build_report(_abtest_args(args, label))
        evidence.update(
            request_log=report["log"],
            outcomes=report["outcomes"]["path"],
            outcomes_sha256=report["outcomes"]["sha256"],
        )
        evidence["metrics"].update(
            arms=report["arms"], comparisons=report["comparisons"], decision=report["decision"]
        )
        found = report["decision"]
        verdict = Verdict(found["decision"], f"A/B verdict: {found['reason']}", "a/b verdict")
        needed = found["needed"]
        if found["decision"] == KEEP_TESTING and needed and "more outcomes" not in found["reason"]:
            verdict.reason += f" (about {needed:,} more outcomes)"
        if found["decision"] == ROLL_BACK:
            return Verdict(ROLL_BACK, verdict.reason, verdict.trigger, evidence, notes)
    if args.check_skew:
        alerts, problem = skew_alerts(args, version)
        evidence["metrics"]["skew_alerts"] = alerts
        if problem:
            notes.append(problem)
        elif alerts:
            reason = f"live skew alert on candidate {version}: {'; '.join(alerts[:3])}"
            return Verdict(ROLL_BACK, reason, "skew alert", evidence, notes)
    return Verdict(verdict.decision, verdict.reason, verdict.trigger, evidence, notes)


def _abtest_args(args, candidate: str) -> argparse.Namespace:
    return argparse.Namespace(
        request_log=args.request_log,
        outcomes=args.outcomes,
        model_config=args.model_config,
        rollout_file=args.rollout_file,
        control="stable",
        candidate=candidate,
        model_name=args.model_name,
        since="all",
        until=None,
        max_auc_drop=args.max_auc_drop,
        min_outcomes=args.min_outcomes,
        resamples=args.resamples,
        seed=args.seed,
    )


__all__ = ["PROMOTE", "ROLL_BACK", "KEEP_TESTING", "Verdict", "judge", "error_rate"]
