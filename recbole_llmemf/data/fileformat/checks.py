"""The leakage and sanity checks on a dataset in memory: ``check_data`` (both importers, before
they write anything; ``llmemf-data check``) and ``loading_report`` (RecBole loading a dataset that
names a ``domain_field``)."""

from __future__ import annotations

import bisect
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from recbole_llmemf.data.fileformat.records import (
    ASIN,
    EVAL_SPLITS,
    EXAMPLES,
    SPLITS,
    Case,
    CheckReport,
    CrossDomainData,
    Item,
)

logger = logging.getLogger(__name__)


def _summary(problem: str, examples: list[str]) -> str:
    shown = "; ".join(examples[:EXAMPLES])
    more = f" (and {len(examples) - EXAMPLES} more)" if len(examples) > EXAMPLES else ""
    return f"{len(examples)} {problem}: {shown}{more}"


def check_items(items: Sequence[Item], domains: Sequence[str], asin: bool = True) -> list[str]:
    """Every item has one of the dataset's domains, is listed once, and (``asin``) its token is
    an ASIN."""
    errors = []
    no_domain = [item.token for item in items if not item.domain]
    if no_domain:
        errors.append(_summary("items have no domain", no_domain))
    unknown = [f"{i.token} ({i.domain})" for i in items if i.domain and i.domain not in domains]
    if unknown:
        errors.append(_summary(f"items have a domain other than {', '.join(domains)}", unknown))
    first_domain: dict[str, str] = {}
    overlap, twice = [], []
    for item in items:
        if item.token in first_domain:
            previous = first_domain[item.token]
            if previous != item.domain:
                overlap.append(f"{item.token} in {previous} and {item.domain}")
            else:
                twice.append(item.token)
        else:
            first_domain[item.token] = item.domain
    if overlap:
        errors.append(_summary("items belong to two domains (domains overlap)", overlap))
    if twice:
        errors.append(_summary("items are listed twice", twice))
    not_asin = [item.token for item in items if asin and not ASIN.match(item.token)]
    if not_asin:
        errors.append(
            _summary("item ids are not ASINs (10 upper-case letters or digits)", not_asin)
        )
    return errors


def unknown_items(data: CrossDomainData) -> tuple[dict[str, str], dict[str, str], int]:
    """Items used but not listed: ``(as targets or interactions, in histories, rows)``, each
    item mapped to where it is first used; ``rows`` counts the interactions and cases whose
    target is unknown (RecBole drops those rows, ``filter_inter_by_user_or_item``)."""
    known = {item.token for item in data.items}
    targets: dict[str, str] = {}
    histories: dict[str, str] = {}
    rows = 0
    for _, item, _ in data.interactions:
        if item not in known:
            targets.setdefault(item, data.first_use.get(item, "interactions"))
            rows += 1
    for split, cases in data.cases.items():
        for case in cases:
            if case.target not in known:
                targets.setdefault(case.target, data.first_use.get(case.target, split))
                rows += 1
            for item in case.history:
                if item not in known:
                    histories.setdefault(item, data.first_use.get(item, split))
    return targets, histories, rows


def check_references(data: CrossDomainData) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` of items the item file does not list, as RecBole loading the data
    would fare: a history item would have no domain (an error); an interaction or target of
    an unlisted item is a row RecBole drops (a warning)."""
    targets, histories, rows = unknown_items(data)
    errors, warnings = [], []
    if histories:
        examples = [f"{where}: '{item}'" for item, where in histories.items()]
        errors.append(
            _summary(f"history items are not listed in {data.name}.item (no domain)", examples)
        )
    if targets:
        first_item, first_where = next(iter(targets.items()))
        warnings.append(
            f"{rows:,} interactions name {len(targets):,} items that {data.name}.item does not "
            f"list (first: {first_where}: '{first_item}'); RecBole drops these interactions "
            "(filter_inter_by_user_or_item)"
        )
    return errors, warnings


def targets_of_test_cases(data: CrossDomainData) -> list[str]:
    """Items the test cases ask for: the test split's targets, or in the plain layout each user's
    last interaction in time (RecBole's leave-one-out split, ``eval_args: {split: {LS: ...}}``)."""
    if data.cases:
        return [case.target for case in data.cases.get("test", [])]
    last: dict[str, tuple[float, int, str]] = {}
    for position, (user, item, timestamp) in enumerate(data.interactions):
        last[user] = max(last.get(user, (timestamp, position, item)), (timestamp, position, item))
    return [item for _, _, item in last.values()]


def check_domains(data: CrossDomainData) -> list[str]:
    """Warnings: a domain whose items no interaction uses, or that no test case asks for (its
    results would silently be missing from every table)."""
    domain_of = {item.token: item.domain for item in data.items}
    used_items = {item for _, item, _ in data.interactions}
    for cases in data.cases.values():
        for case in cases:
            used_items.update(case.history)
            used_items.add(case.target)
    used = {domain_of.get(item) for item in used_items}
    listed = Counter(item.domain for item in data.items)
    tested = {domain_of.get(item) for item in targets_of_test_cases(data)}
    warnings = []
    for domain in data.domains:
        if domain not in used:
            warnings.append(
                f"domain {domain}: {listed[domain]:,} items listed but no interaction uses them"
            )
        elif domain not in tested:
            warnings.append(
                f"domain {domain}: no test case has a {domain} target; no {domain} "
                "results will be reported"
            )
    return warnings


def check_cases(data: CrossDomainData) -> tuple[list[str], list[str]]:
    """Shapes RecBole relies on: non-empty splits and histories, histories of at most max_len."""
    errors, warnings = [], []
    for split in SPLITS:
        cases = data.cases.get(split, [])
        if not cases:
            errors.append(f"the {split} split is empty")
        empty = [f"user {case.user} ({split})" for case in cases if not case.history]
        if empty:
            errors.append(_summary("cases have an empty history", empty))
        long = [
            f"user {c.user} ({split}, {len(c.history)})"
            for c in cases
            if len(c.history) > data.max_len
        ]
        if long:
            errors.append(_summary(f"histories are longer than max_len {data.max_len}", long))
    both = sorted(
        {c.user for c in data.cases.get("valid", [])} & {c.user for c in data.cases.get("test", [])}
    )
    if both:
        warnings.append(_summary("users have both a valid and a test case", both))
    return errors, warnings


def check_leakage(cases: dict[str, list[Case]]) -> list[str]:
    """No valid/test target occurs in the same user's training cases, as input or as target."""
    eval_users = {case.user for split in EVAL_SPLITS for case in cases.get(split, [])}
    seen: dict[str, set[str]] = defaultdict(set)
    for case in cases.get("train", []):
        if case.user in eval_users:
            seen[case.user].update(case.history)
            seen[case.user].add(case.target)
    leaks = [
        f"user {case.user} {split} target {case.target}"
        for split in EVAL_SPLITS
        for case in cases.get(split, [])
        if case.target in seen.get(case.user, ())
    ]
    return (
        [_summary("valid/test targets occur in the same user's training input (leakage)", leaks)]
        if leaks
        else []
    )


def check_time_order(data: CrossDomainData) -> list[str]:
    """Each case is the user's own interactions in time order, and training never sees the future.

    - the target is an interaction of the user at the case's timestamp;
    - the history items are interactions of the user whose times can be read in non-decreasing
      order, none later than the target (checked greedily: earliest feasible time per item);
    - no training case of a user is later than that user's valid or test target.
    """
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for user, item, timestamp in data.interactions:
        times[user][item].append(timestamp)
    for per_user in times.values():
        for values in per_user.values():
            values.sort()
    not_interaction, out_of_order = [], []
    for split, cases in data.cases.items():
        for case in cases:
            user_times = times.get(case.user, {})
            if case.timestamp not in user_times.get(case.target, ()):
                not_interaction.append(f"user {case.user} {split} target {case.target}")
                continue
            if not _ordered(case, user_times):
                out_of_order.append(f"user {case.user} {split} target {case.target}")
    errors = []
    if not_interaction:
        errors.append(
            _summary(
                "case targets are not interactions of their user at that time", not_interaction
            )
        )
    if out_of_order:
        errors.append(
            _summary(
                "histories are not the user's earlier interactions in time order", out_of_order
            )
        )
    eval_time: dict[str, float] = {}
    for split in EVAL_SPLITS:
        for case in data.cases.get(split, []):
            eval_time[case.user] = min(case.timestamp, eval_time.get(case.user, case.timestamp))
    future = [
        f"user {case.user} trains on {case.target} at {_time(case.timestamp)} > "
        f"{_time(eval_time[case.user])}"
        for case in data.cases.get("train", [])
        if case.user in eval_time and case.timestamp > eval_time[case.user]
    ]
    if future:
        errors.append(
            _summary("training cases are later than the same user's valid/test target", future)
        )
    return errors


def _time(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _ordered(case: Case, user_times: dict[str, list[float]]) -> bool:
    previous = float("-inf")
    for item in case.history:
        values = user_times.get(item, [])
        position = bisect.bisect_left(values, previous)
        if position == len(values):
            return False
        previous = values[position]
    return previous <= case.timestamp


def check_data(data: CrossDomainData) -> CheckReport:
    """All checks; errors make the tools refuse to write and ``llmemf-data check`` fail."""
    report = CheckReport()
    report.errors += check_items(data.items, data.domains, asin=data.ids_are_asins)
    errors, warnings = check_references(data)
    report.errors += errors
    report.warnings += warnings
    if data.cases:  # the split layout; RecBole splits a plain one itself
        errors, warnings = check_cases(data)
        report.errors += errors
        report.warnings += warnings
        report.errors += check_leakage(data.cases)
    if data.timed:
        report.errors += check_time_order(data)
    else:
        report.warnings.append(
            f"time order not checked: {data.name}.inter with every interaction, or the "
            "time field in the split files, is missing"
        )
    report.warnings += check_domains(data)
    return report


def loading_report(data: CrossDomainData) -> CheckReport:
    """What RecBole would get wrong without a word, for a dataset that names a ``domain_field``.

    Errors: item-file problems, and history items the item file does not list (they would have no
    domain). Warnings: interactions whose item the item file does not list (RecBole drops them),
    domains without interactions or without test cases.
    """
    report = CheckReport(errors=check_items(data.items, data.domains, asin=False))
    errors, warnings = check_references(data)
    report.errors += errors
    report.warnings += warnings + check_domains(data)
    return report
